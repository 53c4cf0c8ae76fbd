// Reading one header's values as the client sent them (Node joins repeated ones).
import { headerValues } from '../../../src/orders/http/orders.routes';

describe('header values from the raw headers', () => {
  const raw = ['Host', 'x', 'Idempotency-Key', 'k1', 'content-type', 'application/json'];

  it('when the header is sent once, in any case, then its value comes back as is', () => {
    expect(headerValues(raw, 'idempotency-key')).toBe('k1');
    expect(headerValues(['IDEMPOTENCY-KEY', 'a, b'], 'idempotency-key')).toBe('a, b');
  });

  it('when it is sent twice, then both values come back, never joined', () => {
    expect(headerValues([...raw, 'idempotency-key', 'k2'], 'idempotency-key')).toEqual([
      'k1',
      'k2',
    ]);
  });

  it('when it is absent, then undefined', () => {
    expect(headerValues(['Host', 'x'], 'idempotency-key')).toBeUndefined();
  });
});
