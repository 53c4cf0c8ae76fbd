// The catalogue and runbook/errors.md must agree in both directions: every code (answered or
// only logged) has a heading that says what on-call does, and every heading is a code that
// exists. And every code the source emits is declared, with the category it is declared with.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  categoryOf,
  ERROR_CATALOGUE,
  ERROR_CODES,
  type ErrorCode,
  type KnownCode,
  OPERATIONAL_CATALOGUE,
  OPERATIONAL_CODES,
  type OperationalCode,
} from '../../src/errors/catalogue';

const ROOT = path.join(__dirname, '..', '..');
const runbook = readFileSync(path.join(ROOT, 'runbook', 'errors.md'), 'utf8');
const sections = runbook.split(/^## /m).slice(1);
const headings = sections.map((section) => section.split('\n')[0]?.trim() ?? '');
const ALL_CODES: readonly string[] = [...ERROR_CODES, ...OPERATIONAL_CODES];

function summaryOf(code: string): string {
  if (code in ERROR_CATALOGUE) {
    const spec = ERROR_CATALOGUE[code as ErrorCode];
    return `HTTP ${spec.status} · ${spec.category} · retryable: ${spec.retryable ? 'yes' : 'no'}`;
  }
  return `log only · ${OPERATIONAL_CATALOGUE[code as OperationalCode].category}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

describe('runbook/errors.md and the error catalogue', () => {
  it('when a code is in the catalogue (answered or only logged), then the runbook has a heading for it', () => {
    expect(ALL_CODES.filter((code) => !headings.includes(code))).toEqual([]);
  });

  it('when the runbook has a heading, then it names a code of the catalogue', () => {
    expect(headings.filter((heading) => !ALL_CODES.includes(heading))).toEqual([]);
  });

  it('when a code is documented, then its status, category and retryability match the catalogue, and on-call has something to do', () => {
    for (const section of sections) {
      const code = section.split('\n')[0]?.trim() ?? '';
      expect({ code, summary: section.includes(summaryOf(code)) }).toEqual({
        code,
        summary: true,
      });
      expect({ code, onCall: /What on-call does/.test(section) }).toEqual({ code, onCall: true });
    }
  });

  it('when codes are declared, then each is upper snake case and declared once', () => {
    for (const code of ALL_CODES) expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
    expect(new Set(ALL_CODES).size).toBe(ALL_CODES.length);
    expect(new Set(headings).size).toBe(headings.length);
  });

  it('when the source emits a code with a category, then the code is declared and the category is its own', () => {
    const found: { file: string; code: string; category: string | undefined }[] = [];
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(
        /error_code: '([A-Z_]+)',(?:\s*error_category: '(\w+)')?/g,
      )) {
        found.push({ file: path.relative(ROOT, file), code: match[1] ?? '', category: match[2] });
      }
      for (const match of text.matchAll(/errorCode(?: =|:) '([A-Z_]+)'/g)) {
        found.push({ file: path.relative(ROOT, file), code: match[1] ?? '', category: undefined });
      }
    }
    expect(found.length).toBeGreaterThan(10);
    const wrong = found.filter(
      ({ code, category }) =>
        !ALL_CODES.includes(code) ||
        (category !== undefined && categoryOf(code as KnownCode) !== category),
    );
    expect(wrong).toEqual([]);
  });
});
