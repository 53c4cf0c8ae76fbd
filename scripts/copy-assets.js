// tsc compiles TypeScript only: the files the ops listener's lifecycle page sends to browsers are
// copied next to the compiled page, in the output folder given (dist, or dist-test for the tests'
// entry points). scripts/bundle.js copies them next to the bundled entry point with the same
// function.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
/** The page's browser files, relative to the package root (and to an output folder's root). */
const CLIENT = path.join('src', 'http', 'lifecycle-page', 'client');

/** Copies the lifecycle page's browser files to `target` (a folder, made if missing). */
function copyLifecycleClient(target) {
  fs.cpSync(path.join(root, CLIENT), target, { recursive: true });
}

module.exports = { CLIENT, copyLifecycleClient };

if (require.main === module) {
  copyLifecycleClient(path.join(root, process.argv[2] ?? 'dist', CLIENT));
}
