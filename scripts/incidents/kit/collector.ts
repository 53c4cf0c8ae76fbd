// A stand-in OpenTelemetry Collector for the incident drills: a real gRPC server (@grpc/grpc-js,
// insecure HTTP/2) that answers every OTLP trace Export with an empty success and counts the
// calls and their bytes. It does not decode spans (test/helpers/otlp-receiver.ts does, for tests
// that look inside them): a drill only needs to see whether exports still get through.
import * as grpc from '@grpc/grpc-js';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface Collector {
  /** http://127.0.0.1:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  readonly port: number;
  /** Export calls answered so far. */
  exports(): number;
  /** Bytes of the export requests answered so far. */
  bytes(): number;
  close(): Promise<void>;
}

const identity = (buffer: Buffer): Buffer => buffer;

export async function startCollector(): Promise<Collector> {
  let exports = 0;
  let bytes = 0;
  const server = new grpc.Server();
  const definition: grpc.ServiceDefinition = {
    Export: {
      path: EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: 'export',
    },
  };
  server.addService(definition, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      exports += 1;
      bytes += call.request.length;
      // An empty ExportTraceServiceResponse: every field at its default, zero bytes on the wire.
      callback(null, Buffer.alloc(0));
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    );
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    exports: () => exports,
    bytes: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
