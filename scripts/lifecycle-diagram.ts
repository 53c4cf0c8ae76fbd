// npm run lifecycle:diagram: prints the lifecycle chart as Mermaid, generated from the machine;
// with `-- --write`, also updates the README's copy.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { toMermaid } from '../machines/lifecycle.diagram';
import { lifecycleMachine } from '../machines/lifecycle.machine';
import { packageRoot } from '../src/config/load-config';
import { LIFECYCLE_DIAGRAM, replaceSection } from './readme-sections';

const diagram = toMermaid(lifecycleMachine);
process.stdout.write(`${diagram}\n`);
if (process.argv.includes('--write')) {
  const file = path.join(packageRoot(), 'README.md');
  const block = `\`\`\`mermaid\n${diagram}\n\`\`\``;
  writeFileSync(file, replaceSection(readFileSync(file, 'utf8'), LIFECYCLE_DIAGRAM, block));
  process.stderr.write(`updated the lifecycle diagram in ${file}\n`);
}
