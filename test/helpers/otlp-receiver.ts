// A real OTLP/gRPC trace receiver for tests: it stands in for an OpenTelemetry Collector.
//
// The server is a genuine @grpc/grpc-js server serving
// /opentelemetry.proto.collector.trace.v1.TraceService/Export over insecure HTTP/2, and it
// decodes the binary protobuf body with protobufjs and the OTLP v1 subset in ./proto. Alongside
// it live two misbehaving "collectors" for failure drills: a black hole (accepts TCP, never
// answers) and an endpoint on which nothing listens.
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** One span as the receiver decoded it from the wire. */
export interface ReceivedSpan {
  /** 32 lowercase hex characters. */
  traceId: string;
  /** 16 lowercase hex characters. */
  spanId: string;
  /** 16 lowercase hex characters, or '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: the API's SpanKind + 1 (0 unspecified, 1 internal, 2 server, 3 client...). */
  kind: number;
  attributes: Record<string, unknown>;
  /** Attributes of the resource the span was exported under. */
  resource: Record<string, unknown>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  startTimeUnixNano: bigint | string;
  endTimeUnixNano: bigint | string;
  events: { name: string; attributes: Record<string, unknown> }[];
}

export interface OtlpReceiver {
  /** e.g. http://127.0.0.1:PORT: pass it as the exporter's `url`. */
  endpoint: string;
  /** Every span received so far, in arrival order. */
  spans: ReceivedSpan[];
  /** How many Export calls were answered. */
  exportCalls: number;
  /** Resolves with all spans received once at least `count` have arrived. */
  waitForSpans(count: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export interface BlackHole {
  /** e.g. http://127.0.0.1:PORT */
  endpoint: string;
  /** How many TCP connections were accepted so far. */
  connections: number;
  close(): Promise<void>;
}

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const PROTO_DIR = path.join(__dirname, 'proto');
const SERVICE_PROTO = 'opentelemetry/proto/collector/trace/v1/trace_service.proto';
const DEFAULT_WAIT_MS = 5000;
const GRACEFUL_CLOSE_MS = 1000;

// Shapes of the plain objects protobufjs' toObject() gives for our schema, with the options in
// TO_OBJECT_OPTIONS (longs as decimal strings, enums as numbers, bytes as Uint8Array). Every
// field is optional because proto3 omits fields holding their default value.
interface WireKeyValue {
  key?: string;
  value?: WireAnyValue;
}
interface WireAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
  arrayValue?: { values?: WireAnyValue[] };
  kvlistValue?: { values?: WireKeyValue[] };
  bytesValue?: Uint8Array;
  /** Name of the member of the `value` oneof that is set (toObject's `oneofs: true`). */
  value?: string;
}
interface WireSpan {
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  parentSpanId?: Uint8Array;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string;
  endTimeUnixNano?: string;
  attributes?: WireKeyValue[];
  events?: { name?: string; attributes?: WireKeyValue[] }[];
  status?: { code?: number; message?: string };
}
interface WireExportRequest {
  resourceSpans?: {
    resource?: { attributes?: WireKeyValue[] };
    scopeSpans?: { spans?: WireSpan[] }[];
  }[];
}

const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  oneofs: true,
  defaults: false,
};

interface Codec {
  request: protobuf.Type;
  response: protobuf.Type;
}

let codec: Codec | undefined;

/** Loads the .proto files once; imports resolve against PROTO_DIR like protoc's -I. */
function loadCodec(): Codec {
  if (codec === undefined) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin: string, target: string): string =>
      path.isAbsolute(target) ? target : path.join(PROTO_DIR, target);
    root.loadSync(SERVICE_PROTO, { keepCase: false });
    root.resolveAll();
    codec = {
      request: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
      response: root.lookupType(
        'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse',
      ),
    };
  }
  return codec;
}

function toHex(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? '' : Buffer.from(bytes).toString('hex');
}

function decodeInt(decimal: string): number | bigint {
  const big = BigInt(decimal);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(big)
    : big;
}

/** AnyValue to plain JS: string, boolean, number (bigint beyond 2^53), array, object, bytes. */
function decodeAnyValue(value: WireAnyValue | undefined): unknown {
  switch (value?.value) {
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'intValue':
      return decodeInt(value.intValue ?? '0');
    case 'doubleValue':
      return value.doubleValue ?? 0;
    case 'arrayValue':
      return (value.arrayValue?.values ?? []).map(decodeAnyValue);
    case 'kvlistValue':
      return decodeAttributes(value.kvlistValue?.values);
    case 'bytesValue':
      return new Uint8Array(value.bytesValue ?? []);
    default:
      // An AnyValue with no member set is OTLP's "empty" value.
      return undefined;
  }
}

function decodeAttributes(keyValues: WireKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of keyValues ?? []) {
    out[kv.key ?? ''] = decodeAnyValue(kv.value);
  }
  return out;
}

function decodeExportRequest(body: Buffer): ReceivedSpan[] {
  const { request } = loadCodec();
  // toObject is typed as an index signature of `any`; the WireExportRequest interfaces above
  // describe exactly what it produces for this schema with TO_OBJECT_OPTIONS.
  const wire = request.toObject(request.decode(body), TO_OBJECT_OPTIONS) as WireExportRequest;
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of wire.resourceSpans ?? []) {
    const resource = decodeAttributes(resourceSpans.resource?.attributes);
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        spans.push({
          traceId: toHex(span.traceId),
          spanId: toHex(span.spanId),
          parentSpanId: toHex(span.parentSpanId),
          name: span.name ?? '',
          kind: span.kind ?? 0,
          attributes: decodeAttributes(span.attributes),
          resource: { ...resource },
          statusCode: span.status?.code ?? 0,
          startTimeUnixNano: BigInt(span.startTimeUnixNano ?? '0'),
          endTimeUnixNano: BigInt(span.endTimeUnixNano ?? '0'),
          events: (span.events ?? []).map((event) => ({
            name: event.name ?? '',
            attributes: decodeAttributes(event.attributes),
          })),
        });
      }
    }
  }
  return spans;
}

/** Formats host:port for a URL or a gRPC bind address, bracketing IPv6 literals. */
function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The service definition grpc-js would build from the .proto, made by hand: bodies pass through
 * as raw Buffers so that decoding happens in the handler, where a malformed body can be answered
 * with INVALID_ARGUMENT instead of failing inside grpc-js.
 */
const traceServiceDefinition: grpc.ServiceDefinition = {
  Export: {
    path: EXPORT_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer): Buffer => value,
    requestDeserialize: (bytes: Buffer): Buffer => bytes,
    responseSerialize: (value: Buffer): Buffer => value,
    responseDeserialize: (bytes: Buffer): Buffer => bytes,
  },
};

interface SpanWaiter {
  count: number;
  resolve: (spans: ReceivedSpan[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** Starts a real OTLP/gRPC trace receiver on `host` (default 127.0.0.1) and a free port. */
export async function startOtlpReceiver(options: { host?: string } = {}): Promise<OtlpReceiver> {
  const host = options.host ?? '127.0.0.1';
  const { response } = loadCodec();
  const emptyResponse = Buffer.from(response.encode(response.create({})).finish());

  const server = new grpc.Server();
  const waiters = new Set<SpanWaiter>();
  let closed = false;

  const settleWaiters = (): void => {
    for (const waiter of waiters) {
      if (receiver.spans.length >= waiter.count) {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
        waiter.resolve([...receiver.spans]);
      }
    }
  };

  const exportHandler: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    let spans: ReceivedSpan[];
    try {
      spans = decodeExportRequest(call.request);
    } catch (error) {
      callback({
        code: grpc.status.INVALID_ARGUMENT,
        details: `otlp-receiver could not decode ExportTraceServiceRequest: ${String(error)}`,
      });
      return;
    }
    receiver.exportCalls += 1;
    receiver.spans.push(...spans);
    callback(null, emptyResponse);
    settleWaiters();
  };

  server.addService(traceServiceDefinition, { Export: exportHandler });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      hostPort(host, 0),
      grpc.ServerCredentials.createInsecure(),
      (error: Error | null, boundPort: number) => {
        if (error) reject(error);
        else resolve(boundPort);
      },
    );
  });

  const receiver: OtlpReceiver = {
    endpoint: `http://${hostPort(host, port)}`,
    spans: [],
    exportCalls: 0,

    waitForSpans(count: number, timeoutMs: number = DEFAULT_WAIT_MS): Promise<ReceivedSpan[]> {
      if (receiver.spans.length >= count) return Promise.resolve([...receiver.spans]);
      if (closed) {
        return Promise.reject(new Error(`waitForSpans(${count}): the receiver is closed`));
      }
      return new Promise<ReceivedSpan[]>((resolve, reject) => {
        const waiter: SpanWaiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(
              new Error(
                `waitForSpans: expected at least ${count} span(s) within ${timeoutMs} ms, ` +
                  `but ${receiver.spans.length} arrived in ${receiver.exportCalls} Export call(s)` +
                  (receiver.spans.length > 0
                    ? ` (${receiver.spans.map((s) => s.name).join(', ')})`
                    : ''),
              ),
            );
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(
          new Error(
            `waitForSpans(${waiter.count}): the receiver was closed after ${receiver.spans.length} span(s)`,
          ),
        );
      }
      waiters.clear();
      // Graceful first (lets an in-flight Export finish), then force: a client that keeps its
      // HTTP/2 session open must not hold the test process hostage.
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, GRACEFUL_CLOSE_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };

  return receiver;
}

/**
 * A "collector" that accepts TCP connections on 127.0.0.1 and then says nothing, ever: no HTTP/2
 * settings, no response, no FIN. Exports to it can only end through the client's own deadline.
 */
export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    hole.connections += 1;
    sockets.add(socket);
    // Swallow resets from the client side; keep reading so its writes never block.
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  const hole: BlackHole = {
    endpoint: `http://127.0.0.1:${listeningPort(server)}`,
    connections: 0,
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server.listening) return;
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
      });
    },
  };
  return hole;
}

/** An http://127.0.0.1:PORT endpoint on which nothing listens: connections are refused. */
export async function closedPortEndpoint(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = listeningPort(server);
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
  });
  return `http://127.0.0.1:${port}`;
}

function listeningPort(server: net.Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error(`expected a TCP listening address, got ${String(address)}`);
  }
  return address.port;
}
