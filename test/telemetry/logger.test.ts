import { captureLogger } from '../helpers/log-capture';

describe('log line schema', () => {
  it('when an event is logged as JSON, then the line has the envelope fields first and the event fields after', () => {
    const { logger, lines, records } = captureLogger({ env: 'staging' });
    logger.info('service.start', { version: '0.1.0', env: 'staging', bind: '127.0.0.1:8080' });
    const [record] = records();
    expect(Object.keys(record ?? {})).toEqual([
      'ts',
      'level',
      'event',
      'service',
      'version',
      'env',
      'bind',
    ]);
    expect(record).toMatchObject({
      level: 'info',
      event: 'service.start',
      service: 'ops-service',
      version: '0.1.0',
      env: 'staging',
      bind: '127.0.0.1:8080',
    });
    expect(new Date(String(record?.ts)).toISOString()).toBe(record?.ts);
    expect(lines()).toHaveLength(1);
  });

  it('when the format is pretty, then the line reads like the contract example and still carries every field', () => {
    const { logger, lines } = captureLogger({ env: 'staging', format: 'pretty' });
    logger.info('service.start', { bind: '127.0.0.1:8080' });
    logger.warn('shutdown.drain_timeout', { in_flight: 2, reason: 'two slow requests' });
    const [start, timeout] = lines();
    expect(start).toMatch(
      /^INFO service\.start version=0\.1\.0 env=staging bind=127\.0\.0\.1:8080 service=ops-service ts=\d{4}-\d\d-\d\dT[\d:.]+Z$/,
    );
    expect(timeout).toMatch(
      /^WARN shutdown\.drain_timeout version=0\.1\.0 env=staging in_flight=2 reason="two slow requests" service=ops-service ts=/,
    );
  });

  it('when fields try to overwrite the envelope, then the envelope wins', () => {
    const { logger, records } = captureLogger();
    logger.info('x.y', { event: 'other', level: 'error', service: 'evil', custom: 1 });
    expect(records()[0]).toMatchObject({
      event: 'x.y',
      level: 'info',
      service: 'ops-service',
      custom: 1,
    });
  });

  it('when a level is below the configured one, then nothing is written', () => {
    const { logger, lines } = captureLogger({ level: 'warn' });
    logger.info('quiet');
    logger.debug('quieter');
    logger.warn('loud');
    expect(lines()).toHaveLength(1);
    expect(logger.isLevelEnabled('info')).toBe(false);
    expect(logger.isLevelEnabled('error')).toBe(true);
  });
});

describe('request scope', () => {
  it('when a child logger is made for a request, then every line it writes carries the request fields', () => {
    const { logger, records } = captureLogger();
    const child = logger.child({
      request_id: 'req-1',
      trace_id: 'a'.repeat(32),
      span_id: 'b'.repeat(16),
    });
    child.info('order.created', { order_id: 'o-1' });
    child.child({ step: 2 }).info('nested');
    expect(records()[0]).toMatchObject({
      request_id: 'req-1',
      trace_id: 'a'.repeat(32),
      span_id: 'b'.repeat(16),
      order_id: 'o-1',
    });
    expect(records()[1]).toMatchObject({ request_id: 'req-1', step: 2 });
  });

  it('when a scope provider is given, then lines of the root logger carry the current scope', () => {
    let scope: Record<string, string> | undefined = { request_id: 'req-9' };
    const { logger, records } = captureLogger({ scope: () => scope });
    logger.info('inside');
    scope = undefined;
    logger.info('outside');
    expect(records()[0]).toMatchObject({ request_id: 'req-9' });
    expect(records()[1]).not.toHaveProperty('request_id');
  });
});

describe('JSON rendering', () => {
  // The record as the logger defines it: the envelope, then the scope, the child's fields and the
  // event's fields (which cannot overwrite the envelope), rendered by JSON.stringify.
  function reference(
    line: string,
    event: string,
    parts: { scope?: object; bound?: object; fields?: Record<string, unknown> },
  ): string {
    const parsed = JSON.parse(line) as { ts: string; level: string };
    const record: Record<string, unknown> = {
      ts: parsed.ts,
      level: parsed.level,
      event,
      service: 'ops-service',
      version: '0.1.0',
      env: 'test',
    };
    Object.assign(record, parts.scope, parts.bound);
    for (const [key, value] of Object.entries(parts.fields ?? {}))
      if (!['ts', 'level', 'event', 'service', 'version', 'env'].includes(key)) record[key] = value;
    return JSON.stringify(record);
  }

  const cases: [string, Record<string, unknown> | undefined][] = [
    ['no fields', undefined],
    ['empty fields', {}],
    ['flat', { method: 'GET', route: '/v1/orders/:id', status: 200, duration_ms: 0.4, bytes: 38 }],
    ['undefined and null', { a: undefined, b: null, c: 'x' }],
    ['nested', { dependency: { name: 'database', attempts: [1, 2] } }],
    ['escapes', { text: 'quote " backslash \\ newline \n separator \u2028 lone \ud800' }],
    ['numbers', { zero: -0, inf: Infinity, nan: Number.NaN, big: 1e21 }],
    ['integer-like keys', { 404: 2, name: 'x' }],
    ['envelope names', { level: 'error', event: 'other', custom: 1 }],
    ['a toJSON field', { toJSON: () => 'replaced', a: 1 }],
    ['a date', { at: new Date(0) }],
    [
      'non-ASCII and control characters',
      { a: 'caf\u00e9 \ud83d\ude00', b: 'bell \u0007', c: 'del \u007f' },
    ],
    ['booleans and null', { ok: true, aborted: false, none: null }],
    ['a key that needs escaping', { 'say "hi"': 1, 'tab\tkey': 'v' }],
    ['an array', { items: ['a', 'b'] }],
  ];

  it.each(cases)(
    'when the fields are %s, then the line is the record rendered by JSON.stringify',
    (_name, fields) => {
      for (const scope of [undefined, { request_id: 'r-1', trace_id: 'a'.repeat(32) }]) {
        for (const bound of [undefined, { step: 2 }]) {
          const { logger, lines } = captureLogger({ env: 'test', scope: () => scope });
          (bound === undefined ? logger : logger.child(bound)).info('e.v', fields);
          const [line = ''] = lines();
          expect(line).toBe(reference(line, 'e.v', { scope, bound, fields }));
        }
      }
    },
  );
});

describe('redaction at the logger', () => {
  const secret = 'postgres://orders:s3cr3t-pw@db:5432/orders';

  it('when a config secret appears anywhere in a line, then its value is replaced', () => {
    const { logger, lines } = captureLogger({ secrets: [secret] });
    logger.error('db.connect_failed', {
      reason: `could not connect to ${secret}: timeout`,
      nested: { copy: [secret] },
    });
    expect(lines()[0]).not.toContain('s3cr3t-pw');
    expect(lines()[0]).toContain('[REDACTED]');
  });

  it('when a flat line of plain strings and numbers carries credentials, then they are replaced as in any other line', () => {
    const { logger, records } = captureLogger({ secrets: [secret] });
    // One credential per line: each line is otherwise plain enough for the logger's fast path.
    const lines: Record<string, unknown>[] = [
      { token: 'abc', status: 200 },
      { api_key: 42, status: 200 },
      { secret: null, status: 200 },
      { password: true, status: 200 },
      { dsn: secret, status: 200 },
      { url: 'nats://svc:hunter2@nats:4222', status: 200 },
    ];
    for (const fields of lines) logger.info('flat', fields);
    const redacted = records().map(({ token, api_key, secret, password, dsn, url, status }) => ({
      token,
      api_key,
      secret,
      password,
      dsn,
      url,
      status,
    }));
    expect(redacted).toEqual([
      { token: '[REDACTED]', status: 200 },
      { api_key: '[REDACTED]', status: 200 },
      { secret: '[REDACTED]', status: 200 },
      { password: '[REDACTED]', status: 200 },
      { dsn: '[REDACTED]', status: 200 },
      { url: 'nats://svc:[REDACTED]@nats:4222', status: 200 },
    ]);
    // An empty value says there is none: it is kept.
    logger.info('flat', { authorization: '' });
    expect(records()[6]?.authorization).toBe('');
  });

  it('when a URL carries credentials, then the password part is replaced even if it is not a known secret', () => {
    const { logger, records } = captureLogger();
    logger.warn('nats.reconnect', { url: 'nats://svc:hunter2@nats:4222' });
    expect(records()[0]?.url).toBe('nats://svc:[REDACTED]@nats:4222');
  });

  it('when headers and credential-like fields are logged, then their values are replaced at any depth', () => {
    const { logger, lines, records } = captureLogger();
    logger.info('http.request', {
      headers: {
        authorization: 'Bearer abc.def',
        cookie: 'sid=xyz',
        'x-api-key': 'k-123',
        accept: 'application/json',
      },
      body: { user: { password: 'p@ss', passwd: 'p2', client_secret: 'cs', refresh_token: 'rt' } },
    });
    const text = lines()[0] ?? '';
    for (const value of ['abc.def', 'sid=xyz', 'k-123', 'p@ss', '"p2"', '"cs"', '"rt"'])
      expect(text).not.toContain(value);
    expect(records()[0]).toMatchObject({
      headers: { accept: 'application/json', authorization: '[REDACTED]' },
    });
  });

  it('when an error with a cause chain is logged, then name, message and cause are kept and secrets scrubbed', () => {
    const { logger, records } = captureLogger({ secrets: [secret] });
    const cause = Object.assign(new Error(`connect ECONNREFUSED for ${secret}`), {
      code: 'ECONNREFUSED',
    });
    logger.error('process.crash', { error: new Error('startup failed', { cause }) });
    const error = records()[0]?.error as {
      name: string;
      message: string;
      cause: { code: string; message: string };
    };
    expect(error.name).toBe('Error');
    expect(error.message).toBe('startup failed');
    expect(error.cause.code).toBe('ECONNREFUSED');
    expect(error.cause.message).not.toContain('s3cr3t-pw');
  });
});
