// Where the orders module keeps its database between startup and shutdown: opened by the startup
// check (so shutdown closes it even if startup fails later), usable once migrated.
import type { Db } from './db';

export class DatabaseSlot {
  private db: Db | undefined;
  private usable = false;

  /** The startup check opened it (not migrated yet). */
  opened(db: Db): void {
    this.db = db;
  }

  /** Migrated and answering: requests and workers may use it. */
  ready(): void {
    this.usable = this.db !== undefined;
  }

  /** The database, once ready. */
  current(): Db | undefined {
    return this.usable ? this.db : undefined;
  }

  /** Closes what was opened, ready or not. */
  async close(): Promise<void> {
    await this.db?.close();
  }
}
