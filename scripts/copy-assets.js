// tsc compiles TypeScript only: the files the ops listener's lifecycle page sends to browsers are
// copied next to the compiled page, in the output folder given (dist, or dist-test for the tests'
// entry points).
const fs = require('node:fs');
const path = require('node:path');

const out = path.resolve(__dirname, '..', process.argv[2] ?? 'dist');
const client = path.join('src', 'http', 'lifecycle-page', 'client');
fs.cpSync(path.join(__dirname, '..', client), path.join(out, client), { recursive: true });
