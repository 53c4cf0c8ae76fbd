// Log lines written in one turn of the event loop leave in one write: under load that is one
// syscall for dozens of lines instead of one each (the access log is on every request's path).
// Lines are never held past the current turn, and a process exit writes whatever is pending.
import type { Writable } from 'node:stream';
import TransportStream from 'winston-transport';

const MESSAGE = Symbol.for('message');

export class LineBatcher {
  private pending: string[] = [];
  private scheduled = false;
  private readonly target: Writable;

  constructor(target: Writable) {
    this.target = target;
    // process.exit() from anywhere (the hard-stop watchdog included) still writes pending lines.
    process.once('exit', () => this.writePending());
  }

  push(line: string): void {
    this.pending.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.writePending());
    }
  }

  /** Writes pending lines now (synchronously for files and pipes), then waits for drain. */
  flush(): Promise<void> {
    this.writePending();
    if (!this.target.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.target.once('drain', () => resolve()));
  }

  private writePending(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
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
