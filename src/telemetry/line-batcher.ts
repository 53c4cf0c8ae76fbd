// Log lines leave standard output in batches: the lines of up to FLUSH_AFTER_MS (10 ms) in one
// write, or at once when FLUSH_AT_BYTES are pending. A write to a pipe is a synchronous syscall,
// and with two lines per order (access log, order.created) written once per event-loop turn the
// log lines cost about 230 µs of CPU per order, most of it in that write (`npm run bench` (e) with
// LOG_LEVEL=info against warn). A process exit (process.exit, the hard stop, the end of a shutdown) writes
// whatever is pending; only a SIGKILL can lose the last few milliseconds of lines.
import type { Writable } from 'node:stream';
import TransportStream from 'winston-transport';

const MESSAGE = Symbol.for('message');

/** The longest a line waits for others to share its write. */
export const FLUSH_AFTER_MS = 10;
/** Pending text that is written at once, whatever the time. */
export const FLUSH_AT_BYTES = 64 * 1024;

export class LineBatcher {
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly target: Writable;

  constructor(
    target: Writable,
    // process.exit() from anywhere (the hard-stop watchdog included) still writes pending lines.
    atExit: (write: () => void) => void = (write) => {
      process.once('exit', write);
    },
  ) {
    this.target = target;
    atExit(() => this.writePending());
  }

  push(line: string): void {
    this.pending.push(line);
    this.pendingBytes += line.length + 1;
    if (this.pendingBytes >= FLUSH_AT_BYTES) {
      this.writePending();
      return;
    }
    if (this.timer === undefined) {
      // Unref'd: pending lines never keep the process alive; its exit writes them.
      this.timer = setTimeout(() => this.writePending(), FLUSH_AFTER_MS);
      this.timer.unref();
    }
  }

  /** Writes pending lines now (synchronously for files and pipes), then waits for drain. */
  flush(): Promise<void> {
    this.writePending();
    if (!this.target.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.target.once('drain', () => resolve()));
  }

  private writePending(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    this.pendingBytes = 0;
    this.target.write(text);
  }
}

/** A winston transport that hands each rendered line to a LineBatcher. */
export class BatchedTransport extends TransportStream {
  private readonly batcher: LineBatcher;

  constructor(batcher: LineBatcher) {
    super();
    this.batcher = batcher;
  }

  override log(info: Record<symbol, unknown>, callback: () => void): void {
    this.batcher.push(String(info[MESSAGE]));
    callback();
  }
}
