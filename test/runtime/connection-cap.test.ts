// The main listener's connection cap: the configured MAX_CONNECTIONS, lowered to fit under the
// process's open-files limit with descriptors kept for everything else.
import {
  connectionCap,
  openFilesLimit,
  RESERVED_DESCRIPTORS,
} from '../../src/runtime/connection-cap';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('the connection cap', () => {
  it('when /proc/self/limits is read, then the soft open-files limit is taken', () => {
    expect(openFilesLimit(() => LIMITS)).toBe(1024);
  });

  it('when the limit cannot be read or is unlimited, then it is unknown', () => {
    expect(
      openFilesLimit(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
    expect(openFilesLimit(() => LIMITS.replace('1024 ', 'unlimited '))).toBeUndefined();
  });

  it('when MAX_CONNECTIONS fits under the limit, then it is kept', () => {
    expect(connectionCap(500, 1024)).toBe(500);
    expect(connectionCap(10_000, undefined)).toBe(10_000);
  });

  it('when MAX_CONNECTIONS does not fit, then it is lowered to leave the reserve free', () => {
    expect(connectionCap(10_000, 1024)).toBe(1024 - RESERVED_DESCRIPTORS);
    expect(connectionCap(10_000, 100)).toBe(1);
  });
});
