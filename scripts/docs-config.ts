// npm run docs:config: rewrites the README's configuration table from the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { renderConfigTable } from '../src/config/config-docs';
import { packageRoot } from '../src/config/load-config';
import { CONFIG_TABLE, replaceSection } from './readme-sections';

async function main(): Promise<void> {
  const file = path.join(packageRoot(), 'README.md');
  const updated = replaceSection(readFileSync(file, 'utf8'), CONFIG_TABLE, renderConfigTable());
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(updated, { ...options, filepath: file }));
  process.stdout.write(`updated the configuration table in ${file}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`docs:config failed: ${String(error)}\n`);
  process.exitCode = 1;
});
