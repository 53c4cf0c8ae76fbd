// bench/profile.ts: how `npm run bench -- profile` sorts perf samples into layers. A wrong rule
// would put a layer's CPU under another in bench/results/cpu-per-layer.md.
import { layerOf, ROUTING, RUNTIME, samplesPerLayer } from '../../bench/profile';

const frame = (symbol: string): string => `7f00deadbeef ${symbol} (/tmp/perf-1.map)`;

// Two samples as `perf script` prints them: a header line, then frames leaf first, then a blank.
const SCRIPT = [
  'node 4242 [001] 100.000001:     500000 cpu-clock:',
  `\t${frame('Builtins_JsonStringifier')}`,
  `\t${frame('JS:*write /srv/dist/src/telemetry/logger.js:47:23+0xc88')}`,
  `\t${frame('JS:*finish /srv/dist/src/http/observe.middleware.js:84:20+0x734')}`,
  `\t${frame('JS:*handle /srv/node_modules/router/index.js:150:43+0x10')}`,
  '',
  'node 4242 [000] 100.000501:     500000 cpu-clock:',
  '\tffffffff81000000 tcp_sendmsg_locked+0xd36 ([kernel.kallsyms])',
  `\t${frame('JS:*writev node:internal/stream_base_commons:122:23+0x10')}`,
  `\t${frame('JS:*send /srv/node_modules/express/lib/response.js:126:25+0x10e4')}`,
  `\t${frame('JS:* /srv/dist/bench/bench-service.js:25:37+0x80')}`,
  `\t${frame('JS:* /srv/dist/src/http/edge/compose.js:6:12+0x80')}`,
  '',
].join('\n');

describe('bench profile: samples by layer', () => {
  it('when a sample is in the logger called from the span code, then it is the access log (innermost wins)', () => {
    expect(samplesPerLayer(SCRIPT).get('access log')).toBe(1);
  });

  it("when a response write is under the route handler, then the kernel's send counts for the handler", () => {
    expect(samplesPerLayer(SCRIPT).get('route handler and its response (res.json)')).toBe(1);
  });

  it('when a sample is under the edge composer only, then the composer is not a layer of its own', () => {
    expect(layerOf([frame('JS:* /srv/dist/src/http/edge/compose.js:6:12+0x80')])).toBe(RUNTIME);
  });

  it("when the service's own duration histogram records under the observer, then it is metrics", () => {
    expect(
      layerOf([
        frame('JS:*record /srv/dist/src/telemetry/request-durations.js:60:11+0x1a0'),
        frame('JS:*finish /srv/dist/src/http/observe.middleware.js:84:20+0x734'),
      ]),
    ).toBe('metrics');
  });

  it('when the rate limit middleware is on the stack, then the sample is the rate limit', () => {
    expect(
      layerOf([
        frame('JS:*setHeader node:_http_outgoing:652:57+0x1'),
        frame('JS:*answer /srv/dist/src/http/edge/rate-limit.middleware.js:125:20+0x760'),
      ]),
    ).toBe('rate limit');
  });

  it('when only packages and Node frames are on the stack, then it is Express routing', () => {
    expect(
      layerOf([
        frame('JS:*matchLayer /srv/node_modules/router/index.js:570:20+0x1'),
        frame('JS:*parserOnIncoming node:_http_server:1025:26+0x1'),
      ]),
    ).toBe(ROUTING);
  });

  it('when AsyncLocalStorage hooks run under a middleware, then they are the request scope', () => {
    expect(
      layerOf([
        frame('JS:*emitInitScript node:internal/async_hooks:495:24+0x591'),
        frame('JS:*answer /srv/dist/src/http/edge/rate-limit.middleware.js:125:20+0x760'),
      ]),
    ).toBe('request scope (AsyncLocalStorage hooks)');
  });

  it('when the OTLP exporter serializes under the batch processor, then it is span export', () => {
    expect(
      layerOf([
        frame('JS:*encode /srv/node_modules/protobufjs/src/writer.js:1:1+0x1'),
        frame(
          'JS:*export /srv/node_modules/@opentelemetry/sdk-trace/build/src/export/BatchSpanProcessorBase.js:1:1+0x1',
        ),
      ]),
    ).toBe('span export (batch, OTLP/gRPC)');
  });
});
