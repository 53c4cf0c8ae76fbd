// npm run docs:config: rewrites the README's configuration table from the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { replaceReadmeTable } from '../src/config/config-docs';
import { packageRoot } from '../src/config/load-config';

async function main(): Promise<void> {
  const file = path.join(packageRoot(), 'README.md');
  const updated = replaceReadmeTable(readFileSync(file, 'utf8'));
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(updated, { ...options, filepath: file }));
  process.stdout.write(`updated the configuration table in ${file}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`docs:config failed: ${String(error)}\n`);
  process.exitCode = 1;
});
