import { type ConfigResult, formatProblem, loadConfig } from '../../src/config/load-config';
import { type TempDir, tempDir } from '../helpers/temp-dir';

let dir: TempDir;

beforeEach(() => {
  dir = tempDir();
});

afterEach(() => {
  dir.remove();
});

function load(env: Record<string, string> = {}): ConfigResult {
  return loadConfig({ env, configDir: dir.path });
}

function loaded(env: Record<string, string> = {}) {
  const result = load(env);
  if (!result.ok)
    throw new Error(
      `expected a valid config, got:\n${result.problems.map(formatProblem).join('\n')}`,
    );
  return result;
}

function problemLines(env: Record<string, string> = {}): string[] {
  const result = load(env);
  if (result.ok) throw new Error('expected the config to be invalid');
  return result.problems.map(formatProblem);
}

describe('precedence: defaults < config/default.json < config/<APP_ENV>.json < CONFIG_FILE < env', () => {
  beforeEach(() => {
    dir.write('default.json', {
      http: { port: 1001, keepAliveTimeoutMs: 1001 },
      log: { level: 'warn' },
    });
    dir.write('staging.json', {
      http: { port: 1002 },
      telemetry: { endpoint: 'http://collector:4317' },
      auth: {
        mode: 'jwt',
        jwksUrl: 'https://idp.example.com/jwks.json',
        issuer: 'https://idp.example.com/',
        audience: 'ops-service',
      },
    });
  });

  it('when no layer sets a key, then the schema default is used', () => {
    const { config, sources } = loaded({ APP_ENV: 'staging' });
    expect(config.ops.port).toBe(9464);
    expect(sources['ops.port']).toBe('default');
  });

  it('when default.json sets a key, then it overrides the schema default', () => {
    const { config, sources } = loaded({ APP_ENV: 'staging' });
    expect(config.log.level).toBe('warn');
    expect(config.http.keepAliveTimeoutMs).toBe(1001);
    expect(sources['log.level']).toBe('config/default.json');
  });

  it('when <APP_ENV>.json sets a key, then it overrides default.json for that key only', () => {
    const { config, sources } = loaded({ APP_ENV: 'staging' });
    expect(config.http.port).toBe(1002);
    expect(sources['http.port']).toBe('config/staging.json');
    expect(config.http.keepAliveTimeoutMs).toBe(1001);
  });

  it('when APP_ENV names another environment, then that environment file is not read', () => {
    const { config } = loaded({ APP_ENV: 'test' });
    expect(config.http.port).toBe(1001);
    expect(config.env).toBe('test');
  });

  it('when CONFIG_FILE sets a key, then it overrides the environment file', () => {
    const file = dir.write('override.json', { http: { port: 1003 } });
    const { config, sources } = loaded({ APP_ENV: 'staging', CONFIG_FILE: file });
    expect(config.http.port).toBe(1003);
    expect(sources['http.port']).toBe(`CONFIG_FILE ${file}`);
    expect(config.log.level).toBe('warn');
  });

  it('when an environment variable is set, then it overrides every file', () => {
    const file = dir.write('override.json', { http: { port: 1003 } });
    const { config, sources } = loaded({ APP_ENV: 'staging', CONFIG_FILE: file, PORT: '1004' });
    expect(config.http.port).toBe(1004);
    expect(sources['http.port']).toBe('env PORT');
    expect(config.http.keepAliveTimeoutMs).toBe(1001);
  });

  it('when the telemetry keys are set by their OpenTelemetry names, then they are used', () => {
    const { config } = loaded({
      OTEL_SERVICE_NAME: 'orders-eu',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
    });
    expect(config.telemetry).toMatchObject({
      serviceName: 'orders-eu',
      endpoint: 'http://127.0.0.1:4317',
      samplerRatio: 0.25,
    });
  });
});

describe('the loaded config', () => {
  it('when loaded, then it is deeply frozen', () => {
    const { config } = loaded();
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.shutdown)).toBe(true);
    expect(() => {
      (config.shutdown as { delayMs: number }).delayMs = 1;
    }).toThrow(TypeError);
  });

  it('when only the key order of a file differs, then the config hash is the same', () => {
    dir.write('default.json', { http: { port: 1, host: '127.0.0.1' } });
    const first = loaded().hash;
    dir.write('default.json', { http: { host: '127.0.0.1', port: 1 } });
    expect(loaded().hash).toBe(first);
    expect(first).toMatch(/^[0-9a-f]{16}$/);
  });

  it('when a value changes, then the config hash changes', () => {
    const first = loaded().hash;
    expect(loaded({ SHUTDOWN_DELAY_MS: '1234' }).hash).not.toBe(first);
  });

  it('when a secret is set, then the redacted view hides it and the secrets list holds it', () => {
    const url = 'postgres://orders:hunter2-secret@db.internal:5432/orders';
    const result = loaded({ DATABASE_URL: url });
    expect(result.config.database.url).toBe(url);
    expect(result.redacted).toMatchObject({ database: { url: '[REDACTED]' } });
    expect(JSON.stringify(result.redacted)).not.toContain('hunter2');
    expect(result.secrets).toContain(url);
  });
});

describe('invalid configuration: one clear line per problem', () => {
  it('when a config file holds malformed JSON, then the line names the file and the position', () => {
    dir.write('default.json', '{\n  "http": { "port": 8080, }\n}\n');
    const lines = problemLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^config\/default\.json \(from config directory\): malformed JSON: .* at line 2 column \d+$/,
    );
  });

  it('when CONFIG_FILE names a file that does not exist, then the line names the file and the variable', () => {
    const lines = problemLines({ CONFIG_FILE: '/nonexistent/ops.json' });
    expect(lines).toEqual([
      '/nonexistent/ops.json (from env CONFIG_FILE): config file does not exist',
    ]);
  });

  it('when APP_ENV is unknown, then the line lists the known environments', () => {
    expect(problemLines({ APP_ENV: 'prod' })).toEqual([
      'env = "prod" (from env APP_ENV): expected one of development, test, staging, production',
    ]);
  });

  it('when a port is out of range, then the line gives the key, the value, its source and the range', () => {
    expect(problemLines({ PORT: '70000' })).toEqual([
      'http.port = "70000" (from env PORT): expected a TCP port from 0 to 65535 (0 picks a free port)',
    ]);
  });

  it('when a budget is not a number, then the line says a whole number of milliseconds was expected', () => {
    expect(problemLines({ SHUTDOWN_DRAIN_TIMEOUT_MS: '20s' })).toEqual([
      'shutdown.drainTimeoutMs = "20s" (from env SHUTDOWN_DRAIN_TIMEOUT_MS): expected a whole number of milliseconds from 0 to 3600000',
    ]);
  });

  it('when a file has an unknown key, nested or at the top, then each one is reported with its file', () => {
    dir.write('default.json', { http: { prot: 8080 }, colour: 'blue' });
    expect(problemLines().sort()).toEqual([
      'colour (from config/default.json): unknown key: not in the config schema',
      'http.prot (from config/default.json): unknown key: not in the config schema',
    ]);
  });

  it('when a file gives a value of the wrong type, then the line names the file as the source', () => {
    dir.write('default.json', { shutdown: { flushTimeoutMs: 'soon' } });
    expect(problemLines()).toEqual([
      'shutdown.flushTimeoutMs = "soon" (from config/default.json): expected a whole number of milliseconds from 0 to 3600000',
    ]);
  });

  it('when a file gives a value where the schema has a group of keys, then that is reported', () => {
    dir.write('default.json', { shutdown: 5 });
    expect(problemLines()[0]).toMatch(
      /^shutdown = 5 \(from config\/default\.json\): expected an object with the keys delayMs/,
    );
  });

  it('when several things are wrong, then every problem is reported, not only the first', () => {
    dir.write('default.json', { nope: true });
    const lines = problemLines({ PORT: '-1', LOG_LEVEL: 'loud', OTEL_TRACES_SAMPLER_ARG: '2' });
    expect(lines).toHaveLength(4);
    expect(lines.join('\n')).toContain(
      'log.level = "loud" (from env LOG_LEVEL): expected one of error, warn, info, debug',
    );
    expect(lines.join('\n')).toContain(
      'telemetry.samplerRatio = "2" (from env OTEL_TRACES_SAMPLER_ARG): expected a number from 0 to 1',
    );
  });

  it('when delay + drain + close + flush does not fit inside the hard stop, then the cross-key rule names every key and source', () => {
    const lines = problemLines({
      SHUTDOWN_DRAIN_TIMEOUT_MS: '25000',
      SHUTDOWN_HARD_STOP_MS: '30000',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('env SHUTDOWN_DRAIN_TIMEOUT_MS for shutdown.drainTimeoutMs');
    expect(lines[0]).toContain('env SHUTDOWN_HARD_STOP_MS for shutdown.hardStopMs');
    expect(lines[0]).toContain('default for shutdown.delayMs');
    expect(lines[0]).toContain(
      '(5000 + 25000 + 1500 + 3000 = 34500 ms) must be less than the hard stop deadline (30000 ms)',
    );
  });

  const JWT = {
    AUTH_MODE: 'jwt',
    AUTH_JWKS_URL: 'https://idp.example.com/jwks.json',
    AUTH_ISSUER: 'https://idp.example.com/',
    AUTH_AUDIENCE: 'ops-service',
  };

  it('when staging has no OTLP endpoint, then that is invalid', () => {
    expect(problemLines({ APP_ENV: 'staging', ...JWT })).toEqual([
      'env + telemetry.endpoint (from env APP_ENV for env, default for telemetry.endpoint): an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is required in staging',
    ]);
  });

  it.each(['staging', 'production'])(
    'when %s runs with authentication off, then that is invalid (every caller would be anonymous)',
    (env) => {
      expect(
        problemLines({ APP_ENV: env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' }),
      ).toEqual([
        `env + auth.mode (from env APP_ENV for env, default for auth.mode): AUTH_MODE=off is only allowed with APP_ENV development or test; ${env} needs AUTH_MODE=jwt with AUTH_JWKS_URL or AUTH_JWKS_FILE, AUTH_ISSUER and AUTH_AUDIENCE`,
      ]);
    },
  );

  it('when AUTH_MODE=jwt has no key source, no issuer and no audience, then each is named', () => {
    expect(problemLines({ AUTH_MODE: 'jwt' })).toEqual([
      'auth.jwksUrl + auth.jwksFile (from default for auth.jwksUrl, default for auth.jwksFile): AUTH_MODE=jwt needs exactly one key source: AUTH_JWKS_URL or AUTH_JWKS_FILE',
      'auth.issuer (from default for auth.issuer): AUTH_MODE=jwt needs AUTH_ISSUER',
      'auth.audience (from default for auth.audience): AUTH_MODE=jwt needs AUTH_AUDIENCE',
    ]);
  });

  it('when AUTH_MODE=jwt names both a JWKS URL and a file, then that is invalid', () => {
    expect(problemLines({ ...JWT, AUTH_JWKS_FILE: '/etc/jwks.json' })).toEqual([
      'auth.jwksUrl + auth.jwksFile (from env AUTH_JWKS_URL for auth.jwksUrl, env AUTH_JWKS_FILE for auth.jwksFile): AUTH_MODE=jwt needs exactly one key source: AUTH_JWKS_URL or AUTH_JWKS_FILE',
    ]);
  });

  it('when AUTH_ALGORITHMS names HS256 or none, then that is invalid (asymmetric signatures only)', () => {
    for (const algorithms of ['RS256,HS256', 'none']) {
      expect(problemLines({ ...JWT, AUTH_ALGORITHMS: algorithms })[0]).toMatch(
        /^auth\.algorithms = .* \(from env AUTH_ALGORITHMS\): expected a comma-separated list of RS256, .*\(asymmetric signatures only\)$/,
      );
    }
  });

  it('when production has authentication and an OTLP endpoint, then it is valid', () => {
    const { config } = loaded({
      APP_ENV: 'production',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
      ...JWT,
    });
    expect(config.auth).toMatchObject({ mode: 'jwt', tenantClaim: 'tenant_id' });
  });

  it.each([
    ['DATABASE_PREPARED_STATEMENTS', 'database.preparedStatements'],
    ['DATABASE_PIPELINE', 'database.pipeline'],
  ])(
    'when %s is not true or false, then that is invalid (a typo is not read as true)',
    (env, key) => {
      expect(problemLines({ [env]: 'flase' })).toEqual([
        `${key} = "flase" (from env ${env}): expected true or false`,
      ]);
    },
  );

  it('when DATABASE_PIPELINE=false, then the database config says so (it is on by default)', () => {
    expect(loaded().config.database.pipeline).toBe(true);
    expect(loaded({ DATABASE_PIPELINE: 'false' }).config.database.pipeline).toBe(false);
  });

  it('when NATS_SUBJECT_PREFIX is not one subject token, then that is invalid', () => {
    expect(problemLines({ NATS_SUBJECT_PREFIX: 'a.b' })).toEqual([
      'nats.subjectPrefix = "a.b" (from env NATS_SUBJECT_PREFIX): expected empty, or 1-32 letters, digits, "_" or "-" (one subject token)',
    ]);
  });

  it('when the body timeout is not below the whole-request timeout, then that is invalid (the request timeout would cut slow bodies off first)', () => {
    expect(problemLines({ HTTP_BODY_TIMEOUT_MS: '30000' })).toEqual([
      'http.bodyTimeoutMs + http.requestTimeoutMs (from env HTTP_BODY_TIMEOUT_MS for http.bodyTimeoutMs, default for http.requestTimeoutMs): the body timeout (30000 ms) must be below the whole-request timeout (30000 ms), or slow bodies are cut off by the request timeout instead',
    ]);
    expect(load({ HTTP_BODY_TIMEOUT_MS: '29999' }).ok).toBe(true);
  });

  it('when both listeners are given the same port, then that is invalid', () => {
    expect(problemLines({ PORT: '9000', OPS_PORT: '9000' })[0]).toContain(
      'the main and ops listeners cannot share port 9000',
    );
  });
});

describe('secrets never appear in output', () => {
  const password = 'pa55-Wo.rd-never-print';

  it('when a secret has an invalid value, then the problem line shows <redacted> instead of it', () => {
    const lines = problemLines({
      DATABASE_URL: `mysql://orders:${password}@db/orders`,
      NATS_URL: `http://u:${password}@nats`,
    });
    expect(lines).toEqual([
      'database.url = <redacted> (from env DATABASE_URL): expected a postgres:// or postgresql:// URL, or empty to turn it off',
      'nats.url = <redacted> (from env NATS_URL): expected nats:// URLs separated by commas, or empty to run without a broker',
    ]);
    expect(lines.join('\n')).not.toContain(password);
  });
});
