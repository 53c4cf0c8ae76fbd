// The production entry point, dist/main.js, is one file: tsc's output (dist/src) and the packages
// it requires, bundled by esbuild (its WebAssembly build: no per-platform binary, so `npm ci` keeps
// working everywhere). Starting from one file spares Node the resolving, stat-ing and reading of
// about a thousand files before the service can answer /ready (bench/README.md, "Startup").
//
// What stays outside, loaded from node_modules when first used:
//   - @statelyai/inspect and PGlite, ES modules the service loads with a real import() only when
//     asked to (the inspector; no DATABASE_URL), PGlite finding its WebAssembly by import.meta.url;
//   - pg-native, pg's optional native driver (not installed; pg only asks for it on request).
// Everything else is inside, once: one copy of each package, so the OTLP exporter loaded at the
// first export shares the SDK's modules instead of loading its own. jose, an ES module too, is
// inside: Node's ES module loader took about 50 ms of startup to load it from node_modules.
//
// dist/main.js.map maps the bundle back to the TypeScript sources (through tsc's maps): run with
// `NODE_OPTIONS=--enable-source-maps` to get src/*.ts lines in stack traces.
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild-wasm');
const { copyLifecycleClient } = require('./copy-assets');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');

/** Loaded by the service with import() or on request only: never bundled. */
const EXTERNAL = ['@statelyai/inspect', '@electric-sql/pglite', 'pg-native'];

async function bundle() {
  const result = await esbuild.build({
    entryPoints: [path.join(dist, 'src', 'main.js')],
    outfile: path.join(dist, 'main.js'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: EXTERNAL,
    // Readable stack traces without a source map: names and layout are kept.
    minify: false,
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'eof',
    logLevel: 'warning',
    metafile: true,
  });
  // The lifecycle page reads its browser files from its own folder: the bundle's is dist/.
  copyLifecycleClient(path.join(dist, 'client'));
  const inputs = Object.keys(result.metafile.inputs).length;
  const bytes = fs.statSync(path.join(dist, 'main.js')).size;
  process.stdout.write(
    `dist/main.js: ${inputs} modules, ${(bytes / 1024 / 1024).toFixed(1)} MiB (scripts/bundle.js)\n`,
  );
}

bundle().catch((error) => {
  process.stderr.write(`bundle: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
