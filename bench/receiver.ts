// The live OTLP/gRPC receiver for scenarios (c) and (d): the project's real test receiver,
// test/helpers/otlp-receiver.ts (a @grpc/grpc-js server decoding ExportTraceServiceRequest with
// protobufjs), loaded from its source file at run time rather than imported:
// - that helper finds its .proto files at `${__dirname}/proto`; tsc does not copy them, so its
//   compiled copy under dist/test/helpers/ would look in a folder that does not exist;
// - an import of ../test from bench/ would make tsconfig.build.json compile test/ code, and the
//   Docker build context has no test/ (.dockerignore): `npm run build` in the image would fail.
// So the helper is transpiled (typescript's transpileModule, no type check) and evaluated with
// __dirname = <package root>/test/helpers, which is where its proto/ folder is.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import ts from 'typescript';
import { packageRoot } from '../src/config/load-config';

/** The part of the helper's OtlpReceiver the bench uses (checked when it is created). */
export interface BenchReceiver {
  readonly endpoint: string;
  /** Spans received so far; the bench empties it as it counts, to keep its own memory flat. */
  readonly spans: unknown[];
  readonly exportCalls: number;
  close(): Promise<void>;
}

type CommonJsWrapper = (
  exports: Record<string, unknown>,
  require: NodeJS.Require,
  module: { exports: Record<string, unknown> },
  filename: string,
  dirname: string,
) => void;

function isBenchReceiver(value: unknown): value is BenchReceiver {
  if (typeof value !== 'object' || value === null) return false;
  const receiver = value as Record<string, unknown>;
  return (
    typeof receiver.endpoint === 'string' &&
    Array.isArray(receiver.spans) &&
    typeof receiver.exportCalls === 'number' &&
    typeof receiver.close === 'function'
  );
}

let startFn: (() => Promise<unknown>) | undefined;

function loadHelper(): () => Promise<unknown> {
  if (startFn !== undefined) return startFn;
  const helperDir = path.join(packageRoot(), 'test', 'helpers');
  const filename = path.join(helperDir, 'otlp-receiver.ts');
  const { outputText } = ts.transpileModule(readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  });
  // The same wrapper Node puts around a CommonJS file; require resolves from the helper's folder.
  const wrapper = vm.compileFunction(
    outputText,
    ['exports', 'require', 'module', '__filename', '__dirname'],
    { filename },
  ) as CommonJsWrapper;
  const helper = { exports: {} as Record<string, unknown> };
  wrapper(helper.exports, createRequire(filename), helper, filename, helperDir);
  const start = helper.exports.startOtlpReceiver;
  if (typeof start !== 'function') {
    throw new Error(`${filename} does not export startOtlpReceiver() any more`);
  }
  startFn = start as () => Promise<unknown>;
  return startFn;
}

/** Starts the helper's receiver on 127.0.0.1 and a free port. */
export async function startReceiver(): Promise<BenchReceiver> {
  const receiver = await loadHelper()();
  if (!isBenchReceiver(receiver)) {
    throw new Error(
      'startOtlpReceiver() no longer returns { endpoint, spans, exportCalls, close }',
    );
  }
  return receiver;
}
