// The catalogue and runbook/errors.md must agree in both directions: every code has a heading
// that says what on-call does, and every heading is a code that exists.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CATALOGUE, ERROR_CODES, type ErrorCode } from '../../src/errors/catalogue';

const runbook = readFileSync(path.join(__dirname, '..', '..', 'runbook', 'errors.md'), 'utf8');
const sections = runbook.split(/^## /m).slice(1);
const headings = sections.map((section) => section.split('\n')[0]?.trim() ?? '');

describe('runbook/errors.md and the error catalogue', () => {
  it('when a code is in the catalogue, then the runbook has a heading for it', () => {
    expect(ERROR_CODES.filter((code) => !headings.includes(code))).toEqual([]);
  });

  it('when the runbook has a heading, then it names a code of the catalogue', () => {
    expect(headings.filter((heading) => !(ERROR_CODES as string[]).includes(heading))).toEqual([]);
  });

  it('when a code is documented, then its status, category and retryability match the catalogue, and on-call has something to do', () => {
    for (const section of sections) {
      const code = section.split('\n')[0]?.trim() as ErrorCode;
      const spec = ERROR_CATALOGUE[code];
      expect({
        code,
        summary: section.includes(
          `HTTP ${spec.status} · ${spec.category} · retryable: ${spec.retryable ? 'yes' : 'no'}`,
        ),
      }).toEqual({
        code,
        summary: true,
      });
      expect({ code, onCall: /What on-call does/.test(section) }).toEqual({ code, onCall: true });
    }
  });

  it('when codes are declared, then each is upper snake case and declared once', () => {
    for (const code of ERROR_CODES) expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
    expect(new Set(headings).size).toBe(headings.length);
  });
});
