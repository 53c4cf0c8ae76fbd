// Versioned SQL migrations (migrations/NNN_name.sql), applied at startup inside the database
// startup check. All pending files run in one transaction under a transaction-level advisory lock:
// replicas starting together queue on the lock and the later ones find nothing left to do; a
// failed migration leaves nothing half-applied; a crash releases the lock with the connection.
// Applied versions are recorded in `schema_migrations` with a checksum, and an applied file that
// was edited afterwards stops the startup (write a new migration instead).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Db } from './db';

// Any fixed 64-bit number shared by every replica of this service: "ops\0migr" in ASCII.
const MIGRATION_LOCK_ID = '8029755461917354354';

const FILE_NAME = /^(\d{3,})_[a-z0-9_]+\.sql$/;

export interface Migration {
  readonly version: string;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export interface MigrationReport {
  readonly applied: readonly string[];
  readonly total: number;
  readonly ms: number;
}

export function readMigrations(directory: string): Migration[] {
  let files: string[];
  try {
    files = readdirSync(directory);
  } catch (error) {
    throw new Error(`cannot read the migrations folder ${directory}`, { cause: error });
  }
  const migrations = files
    .filter((file) => FILE_NAME.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(directory, file), 'utf8');
      return {
        version: FILE_NAME.exec(file)?.[1] ?? file,
        name: file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
  if (migrations.length === 0) throw new Error(`no migrations found in ${directory}`);
  const versions = new Set(migrations.map((m) => m.version));
  if (versions.size !== migrations.length) {
    throw new Error(`two migrations in ${directory} share a version number`);
  }
  return migrations;
}

export async function migrate(
  db: Db,
  migrations: readonly Migration[],
  signal?: AbortSignal,
): Promise<MigrationReport> {
  const startedAt = performance.now();
  const applied = await db.transaction(async (tx) => {
    // Replicas starting together wait here for each other, longer than the pool's lock_timeout.
    await tx.query("SELECT set_config('lock_timeout', '0', true)");
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
    await tx.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version text PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await tx.query<{ version: string; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations',
    );
    const known = new Map(rows.map((row) => [row.version, row]));
    const pending: string[] = [];
    for (const migration of migrations) {
      const done = known.get(migration.version);
      if (done !== undefined) {
        if (done.checksum !== migration.checksum) {
          throw new Error(
            `migration ${migration.name} was changed after it was applied (as ${done.name}); add a new migration instead`,
          );
        }
        continue;
      }
      await tx.exec(migration.sql);
      await tx.query(
        'INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
        [migration.version, migration.name, migration.checksum],
      );
      pending.push(migration.name);
    }
    return pending;
  }, signal);
  return { applied, total: migrations.length, ms: Math.round(performance.now() - startedAt) };
}
