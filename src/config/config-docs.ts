// Renders the configuration reference (the README table) from the schema itself, so the
// documentation cannot drift from what the loader accepts.
import { schema } from './schema';
import { leavesOf } from './schema-walk';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/</g, '\\<').replace(/\n/g, ' ');
}

function shownDefault(value: unknown, sensitive: boolean): string {
  if (value === '') return '(empty)';
  if (sensitive) return '(secret)';
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

export function renderConfigTable(): string {
  const rows = leavesOf(schema).map((leaf) =>
    [
      `\`${leaf.env ?? ''}\``,
      `\`${leaf.key}\``,
      shownDefault(leaf.default, leaf.sensitive),
      cell(leaf.format) + (leaf.sensitive ? ' (secret, never logged)' : ''),
      cell(leaf.doc),
    ].join(' | '),
  );
  return [
    '| Environment variable | Key | Default | Format | What it does |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row} |`),
  ].join('\n');
}

/** Cells of a markdown table, whitespace-insensitive (Prettier re-aligns tables). */
export function tableCells(markdown: string): string[][] {
  return markdown
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('|') && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
}
