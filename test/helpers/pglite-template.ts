// Fresh PGlite data directories, fast: most of a cold PGlite start is initdb (seconds), so PGlite
// initialises one empty cluster once per jest run and each suite starts on a copy of it (the same
// empty cluster, in a fraction of the time). jest's globalSetup reserves a folder and names it in
// the environment, which every suite inherits; the first suite that opens PGlite fills it;
// globalTeardown removes it.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from '../../src/orders/db/db';

const FOLDER_ENV = 'OPS_TEST_PGLITE_TEMPLATE';

/** jest's globalSetup. */
export function reserveTemplateFolder(): void {
  process.env[FOLDER_ENV] = mkdtempSync(path.join(os.tmpdir(), 'ops-pglite-template-'));
}

/** jest's globalTeardown. */
export function removeTemplateFolder(): void {
  const folder = process.env[FOLDER_ENV];
  if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
}

/**
 * Makes `target` the data directory of a fresh, empty PGlite, `open` being how PGlite is opened
 * (the adapter). Without a template folder (jest run without the globalSetup) it leaves `target`
 * alone: PGlite then runs initdb there itself.
 */
export async function freshPgliteData(
  target: string,
  open: (dataDir: string) => Promise<Db>,
): Promise<void> {
  const folder = process.env[FOLDER_ENV];
  if (folder === undefined) return;
  const template = path.join(folder, 'data');
  if (!existsSync(path.join(template, 'PG_VERSION'))) {
    const building = path.join(folder, `building-${process.pid}-${randomBytes(4).toString('hex')}`);
    await (await open(building)).close();
    try {
      renameSync(building, template);
    } catch {
      // Another suite (a parallel jest worker) made it first.
      rmSync(building, { recursive: true, force: true });
    }
  }
  cpSync(template, target, { recursive: true });
}
