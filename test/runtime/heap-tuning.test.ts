// The service turns V8's allocation-site pretenuring off for its process, unless node's own command
// line already chose (runtime/heap-tuning.ts; the running service is checked in
// heap-tuning.process.test.ts).
import { NO_PRETENURING, tuneHeap } from '../../src/runtime/heap-tuning';

function tunedWith(execArgv: readonly string[]): { tuned: boolean; flags: string[] } {
  const flags: string[] = [];
  const tuned = tuneHeap(execArgv, (flag) => flags.push(flag));
  return { tuned, flags };
}

it('when node was started without a pretenuring flag, then the service turns pretenuring off', () => {
  expect(tunedWith(['--enable-source-maps'])).toEqual({ tuned: true, flags: [NO_PRETENURING] });
  expect(NO_PRETENURING).toBe('--no-allocation-site-pretenuring');
});

it.each([
  '--allocation-site-pretenuring',
  '--no-allocation-site-pretenuring',
  '--allocation_site_pretenuring',
  '--no-allocation_site_pretenuring',
])('when node was started with %s, then the operator’s choice stands', (flag) => {
  expect(tunedWith(['--max-old-space-size=512', flag])).toEqual({ tuned: false, flags: [] });
});

it('when a flag only resembles the pretenuring one, then the service still turns pretenuring off', () => {
  expect(tunedWith(['--allocation-site-pretenuring-extra'])).toEqual({
    tuned: true,
    flags: [NO_PRETENURING],
  });
});
