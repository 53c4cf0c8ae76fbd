import { readFileSync } from 'node:fs';
import path from 'node:path';
import { renderConfigTable, tableCells } from '../../src/config/config-docs';
import { CONFIG_TABLE, readSection } from '../../scripts/readme-sections';
import { schema } from '../../src/config/schema';
import { leavesOf } from '../../src/config/schema-walk';

describe('the README configuration table', () => {
  const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

  it('when the schema changes, then the README table must be regenerated (npm run docs:config)', () => {
    const section = readSection(readme, CONFIG_TABLE);
    expect(section).toBeDefined();
    expect(tableCells(section ?? '')).toEqual(tableCells(renderConfigTable()));
  });

  it('when the table is rendered, then every schema key and environment variable has a row with a doc', () => {
    const rows = tableCells(renderConfigTable()).slice(1);
    const leaves = leavesOf(schema);
    expect(rows).toHaveLength(leaves.length);
    for (const leaf of leaves) {
      expect(leaf.env).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(leaf.doc.length).toBeGreaterThan(10);
      expect(rows.some((row) => row[0] === `\`${leaf.env}\`` && row[1] === `\`${leaf.key}\``)).toBe(
        true,
      );
    }
  });

  it('when a key is a secret, then its default is not shown and the row says it is never logged', () => {
    const row = tableCells(renderConfigTable()).find((cells) => cells[1] === '`database.url`');
    expect(row?.[3]).toContain('secret, never logged');
  });
});
