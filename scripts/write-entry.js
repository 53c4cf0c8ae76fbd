// tsc keeps the source layout (dist/src, dist/machines); the contract's entry point is
// dist/main.js, so the build writes that one-line shim.
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
fs.writeFileSync(path.join(dist, 'main.js'), "'use strict';\nrequire('./src/main.js');\n");
