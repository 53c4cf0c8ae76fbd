// The stdout batcher of the logger: lines share writes within a short window, a large batch
// leaves at once, flush() writes now, and a process exit writes whatever is pending.
import { setTimeout as delay } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { FLUSH_AFTER_MS, FLUSH_AT_BYTES, LineBatcher } from '../../src/telemetry/line-batcher';

function collector() {
  const writes: string[] = [];
  const target = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { writes, target };
}

it('when lines arrive within the window, then they leave together in one write, after at most FLUSH_AFTER_MS', async () => {
  const { writes, target } = collector();
  const batcher = new LineBatcher(target);
  batcher.push('{"a":1}');
  await new Promise((resolve) => setImmediate(resolve));
  batcher.push('{"b":2}');
  expect(writes).toEqual([]);
  await delay(FLUSH_AFTER_MS + 20);
  expect(writes).toEqual(['{"a":1}\n{"b":2}\n']);
  batcher.push('{"c":3}');
  await delay(FLUSH_AFTER_MS + 20);
  expect(writes).toEqual(['{"a":1}\n{"b":2}\n', '{"c":3}\n']);
});

it('when FLUSH_AT_BYTES are pending, then they are written at once', () => {
  const { writes, target } = collector();
  const batcher = new LineBatcher(target);
  const line = 'x'.repeat(1023);
  for (let i = 0; i < FLUSH_AT_BYTES / 1024; i += 1) batcher.push(line);
  expect(writes).toHaveLength(1);
  expect(writes[0]).toBe(
    `${Array.from({ length: FLUSH_AT_BYTES / 1024 }, () => line).join('\n')}\n`,
  );
});

it('when flush() is called, then pending lines are written now', async () => {
  const { writes, target } = collector();
  const batcher = new LineBatcher(target);
  batcher.push('{"now":true}');
  await batcher.flush();
  expect(writes).toEqual(['{"now":true}\n']);
  await delay(FLUSH_AFTER_MS + 20);
  expect(writes).toHaveLength(1);
});

it('when the process exits, then pending lines are written', () => {
  const { writes, target } = collector();
  let exit: () => void = () => undefined;
  const batcher = new LineBatcher(target, (write) => {
    exit = write;
  });
  batcher.push('{"last":true}');
  exit();
  expect(writes).toEqual(['{"last":true}\n']);
});
