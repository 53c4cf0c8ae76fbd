// A lock file next to the embedded database's data directory: `<dir>.lock` holding the owner's
// pid. A second process on the same directory fails at startup with a clear message instead of
// corrupting the data; a lock left by a process that died (kill -9) is taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

export interface DirectoryLock {
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireDirectoryLock(directory: string): DirectoryLock {
  const file = `${directory}.lock`;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new Error(
          `the embedded database ${directory} is in use by process ${owner} (lock file ${file})`,
          { cause: error },
        );
      }
      // Stale: its owner is gone.
      rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock the embedded database ${directory} (lock file ${file})`);
}
