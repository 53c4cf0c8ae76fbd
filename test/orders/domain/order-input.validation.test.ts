// The edge of POST /v1/orders, without I/O: body validation (one entry per field), the total in
// integer cents, the request fingerprint and the Idempotency-Key header.
import {
  AppError,
  type FieldError,
  MAX_FIELD_ERRORS,
  ValidationError,
} from '../../../src/errors/catalogue';
import { ACTIVE_CURRENCIES } from '../../../src/orders/domain/currencies';
import {
  canonicalJson,
  fingerprintOf,
  orderFingerprint,
} from '../../../src/orders/domain/fingerprint';
import { isOrderId, totalCents } from '../../../src/orders/domain/order';
import { validateOrderInput } from '../../../src/orders/domain/order-input.validation';
import { parseIdempotencyKey } from '../../../src/orders/http/idempotency-key.header';

const VALID = {
  customer_id: 'customer-42',
  currency: 'EUR',
  items: [{ sku: 'SKU-1', quantity: 2, unit_price_cents: 1999 }],
};

function fieldErrors(body: unknown): FieldError[] {
  try {
    validateOrderInput(body);
  } catch (error) {
    if (error instanceof ValidationError) return [...error.errors];
    throw error;
  }
  throw new Error('expected a ValidationError');
}

function fields(body: unknown): string[] {
  return fieldErrors(body).map((e) => e.field);
}

describe('order body validation', () => {
  it('when the body is valid, then it is accepted as is', () => {
    expect(validateOrderInput(VALID)).toEqual(VALID);
  });

  it('when several fields are wrong, then there is exactly one entry per field', () => {
    const errors = fieldErrors({
      customer_id: '',
      currency: 'eur',
      items: [{ sku: '', quantity: 0, unit_price_cents: -1, colour: 'red' }],
      coupon: 'FREE',
    });
    expect(errors.map((e) => e.field).sort()).toEqual(
      [
        'coupon',
        'currency',
        'customer_id',
        'items[0].colour',
        'items[0].quantity',
        'items[0].sku',
        'items[0].unit_price_cents',
      ].sort(),
    );
    expect(new Set(errors.map((e) => e.field)).size).toBe(errors.length);
  });

  it.each([
    ['missing', undefined],
    ['a number', 42],
    ['blank', '   '],
    ['101 characters', 'c'.repeat(101)],
  ])('when customer_id is %s, then it is refused', (_what, value) => {
    expect(fields({ ...VALID, customer_id: value })).toEqual(['customer_id']);
  });

  it('when customer_id is 100 characters (or 100 emoji), then it is accepted', () => {
    expect(() => validateOrderInput({ ...VALID, customer_id: 'c'.repeat(100) })).not.toThrow();
    expect(() => validateOrderInput({ ...VALID, customer_id: '😀'.repeat(100) })).not.toThrow();
  });

  it.each(['eur', 'EURO', 'E1R', 'XXX', 'XTS', 'XAU', 'ABC', 'HRK', 'VEF', 42])(
    'when currency is %p, then it is refused (not an active ISO 4217 currency)',
    (currency) => {
      expect(fields({ ...VALID, currency })).toEqual(['currency']);
    },
  );

  it.each(['EUR', 'USD', 'JPY', 'CHF', 'XOF', 'VES', 'ZWG'])(
    'when currency is %s, then it is accepted',
    (currency) => {
      expect(() => validateOrderInput({ ...VALID, currency })).not.toThrow();
    },
  );

  it('when the currency list is read, then it holds only three upper-case letter codes', () => {
    expect(ACTIVE_CURRENCIES.size).toBeGreaterThan(140);
    for (const code of ACTIVE_CURRENCIES) expect(code).toMatch(/^[A-Z]{3}$/);
  });

  it.each([
    ['not an array', { sku: 'a' }],
    ['empty', []],
    ['101 items', Array.from({ length: 101 }, () => VALID.items[0])],
  ])('when items is %s, then items is refused', (_what, items) => {
    expect(fields({ ...VALID, items })).toEqual(['items']);
  });

  it('when there are exactly 100 items, then they are accepted', () => {
    const items = Array.from({ length: 100 }, (_, i) => ({
      sku: `S${i}`,
      quantity: 1,
      unit_price_cents: 1,
    }));
    expect(validateOrderInput({ ...VALID, items }).items).toHaveLength(100);
  });

  it.each([
    ['sku', ''],
    ['sku', 'x'.repeat(65)],
    ['sku', 7],
    ['quantity', 0],
    ['quantity', 1001],
    ['quantity', 1.5],
    ['quantity', '2'],
    ['unit_price_cents', -1],
    ['unit_price_cents', 10.5],
    ['unit_price_cents', Number.MAX_SAFE_INTEGER + 1],
    ['unit_price_cents', null],
  ])('when an item has %s = %p, then that field of that item is refused', (field, value) => {
    const items = [VALID.items[0], { ...VALID.items[0], [field]: value }];
    expect(fields({ ...VALID, items })).toEqual([`items[1].${field}`]);
  });

  it('when an item is not an object, then that item is refused', () => {
    expect(fields({ ...VALID, items: [VALID.items[0], 'SKU-2'] })).toEqual(['items[1]']);
  });

  it('when the body is not an object, then the body is refused', () => {
    expect(fields([VALID])).toEqual(['body']);
    expect(fields(undefined)).toEqual(['body']);
  });

  it('when the total would exceed Number.MAX_SAFE_INTEGER, then items is refused (no rounding)', () => {
    const items = [
      { sku: 'A', quantity: 1000, unit_price_cents: Number.MAX_SAFE_INTEGER },
      { sku: 'B', quantity: 1, unit_price_cents: 1 },
    ];
    expect(fieldErrors({ ...VALID, items })).toEqual([
      { field: 'items', message: expect.stringContaining('exceeds') as unknown },
    ]);
  });

  it.each([
    ['a NUL', 'a\u0000b'],
    ['a newline', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['an unpaired high surrogate', 'a\ud800b'],
    ['an unpaired low surrogate', '\udfff'],
  ])(
    'when customer_id or a sku holds %s (text PostgreSQL cannot store, or control text), then that field is refused by name',
    (_what, text) => {
      expect(fields({ ...VALID, customer_id: text })).toEqual(['customer_id']);
      const items = [VALID.items[0], { sku: text, quantity: 1, unit_price_cents: 1 }];
      expect(fields({ ...VALID, items })).toEqual(['items[1].sku']);
    },
  );

  it('when text holds a paired surrogate (an emoji) or a C1 character, then it is accepted', () => {
    expect(() =>
      validateOrderInput({ ...VALID, customer_id: 'c-\ud83d\ude00-\u0085' }),
    ).not.toThrow();
  });

  it('when a body has 30,000 unknown members, then only the first 20 problems are listed and the answer says validation stopped', () => {
    const body: Record<string, unknown> = { ...VALID };
    for (let i = 0; i < 30_000; i += 1) body[`unknown_${i}`] = i;
    let error: ValidationError | undefined;
    try {
      validateOrderInput(body);
    } catch (thrown) {
      error = thrown as ValidationError;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect(error?.errors).toHaveLength(MAX_FIELD_ERRORS);
    expect(error?.errors[0]).toEqual({ field: 'unknown_0', message: 'unknown field' });
    expect(error?.truncated).toBe(true);
    expect(error?.extensions).toMatchObject({ errors_truncated: true });
    expect(error?.detail).toMatch(/first 20/);
  });

  it('when there are exactly 20 problems, then all are listed and nothing says truncated', () => {
    const body: Record<string, unknown> = { ...VALID };
    for (let i = 0; i < 20; i += 1) body[`unknown_${i}`] = i;
    const errors = fieldErrors(body);
    expect(errors).toHaveLength(20);
    try {
      validateOrderInput(body);
    } catch (thrown) {
      expect((thrown as ValidationError).truncated).toBe(false);
      expect((thrown as ValidationError).extensions).not.toHaveProperty('errors_truncated');
    }
  });

  it('when an unknown member has an empty name, then it is named "" (never an empty field)', () => {
    expect(fields({ ...VALID, '': 1 })).toEqual(['""']);
    const items = [{ ...VALID.items[0], '': 1 }];
    expect(fields({ ...VALID, items })).toEqual(['items[0].""']);
  });

  it('when an unknown member name is long, then it is echoed cut to 64 characters', () => {
    const name = `<b>${'n'.repeat(10_000)}`;
    expect(fields({ ...VALID, [name]: 1 })).toEqual([`${name.slice(0, 64)}...`]);
  });

  it('when the header is malformed too, then its entry comes with the body entries', () => {
    const extra = { field: 'Idempotency-Key', message: 'bad' };
    expect(() => validateOrderInput({ ...VALID, currency: 'XXX' }, [extra])).toThrow(
      ValidationError,
    );
    try {
      validateOrderInput({ ...VALID, currency: 'XXX' }, [extra]);
    } catch (error) {
      expect((error as ValidationError).errors.map((e) => e.field)).toEqual([
        'Idempotency-Key',
        'currency',
      ]);
    }
  });
});

describe('the total in integer cents', () => {
  it('when items are summed, then the total is exact', () => {
    expect(
      totalCents([
        { sku: 'a', quantity: 3, unit_price_cents: 1999 },
        { sku: 'b', quantity: 1, unit_price_cents: 1 },
      ]),
    ).toBe(5998);
  });

  it('when the sum is exactly Number.MAX_SAFE_INTEGER, then it is returned; one more is refused', () => {
    expect(totalCents([{ sku: 'a', quantity: 1, unit_price_cents: Number.MAX_SAFE_INTEGER }])).toBe(
      Number.MAX_SAFE_INTEGER,
    );
    expect(
      totalCents([
        { sku: 'a', quantity: 1, unit_price_cents: Number.MAX_SAFE_INTEGER },
        { sku: 'b', quantity: 1, unit_price_cents: 1 },
      ]),
    ).toBeUndefined();
  });
});

describe('the request fingerprint', () => {
  it.each([
    ['the example order', VALID],
    [
      'strings that JSON escapes, unicode and several items',
      {
        customer_id: 'c "quoted" \\ back\\slash é 😀 \u0085',
        currency: 'JPY',
        items: [
          { sku: 'Ü-1 ', quantity: 1000, unit_price_cents: 0 },
          { sku: '</script>', quantity: 1, unit_price_cents: Number.MAX_SAFE_INTEGER },
        ],
      },
    ],
  ])(
    'when a validated order is fingerprinted directly (%s), then it is the generic fingerprint of the same body',
    (_case, body) => {
      const input = validateOrderInput(body);
      expect(orderFingerprint(input)).toBe(fingerprintOf(body));
      expect(orderFingerprint(input)).toBe(fingerprintOf(input));
    },
  );

  it('when the same body comes with members in another order or other spacing, then the fingerprint is the same', () => {
    const reordered = JSON.parse(
      '{ "items": [ {"unit_price_cents":1999, "quantity":2, "sku":"SKU-1"} ], "currency":"EUR", "customer_id":"customer-42" }',
    ) as unknown;
    expect(fingerprintOf(reordered)).toBe(fingerprintOf(VALID));
    expect(fingerprintOf(VALID)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('when any value changes (or items change order), then the fingerprint changes', () => {
    const base = fingerprintOf(VALID);
    expect(fingerprintOf({ ...VALID, customer_id: 'customer-43' })).not.toBe(base);
    expect(fingerprintOf({ ...VALID, items: [{ ...VALID.items[0], quantity: 3 }] })).not.toBe(base);
    const two = {
      ...VALID,
      items: [
        { sku: 'A', quantity: 1, unit_price_cents: 1 },
        { sku: 'B', quantity: 1, unit_price_cents: 1 },
      ],
    };
    expect(fingerprintOf({ ...two, items: [...two.items].reverse() })).not.toBe(fingerprintOf(two));
  });

  it('when canonical JSON is written, then members are sorted and there is no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'] })).toBe('{"a":[true,null,"x"],"b":1}');
  });
});

describe('the Idempotency-Key header', () => {
  it('when it is absent, then IDEMPOTENCY_KEY_MISSING is thrown', () => {
    expect(() => parseIdempotencyKey(undefined)).toThrow(AppError);
    try {
      parseIdempotencyKey(undefined);
    } catch (error) {
      expect((error as AppError).code).toBe('IDEMPOTENCY_KEY_MISSING');
    }
  });

  it.each([
    ['a bare key', 'order-2026-0001', 'order-2026-0001'],
    [
      'a structured-field string',
      '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
      '8e03978e-40d5-43e8-bc93-6894a57f9324',
    ],
    ['an escaped quote inside', '"a\\"b"', 'a"b'],
    ['255 characters', 'k'.repeat(255), 'k'.repeat(255)],
    ['spaces and punctuation', 'a b~!', 'a b~!'],
  ])('when it is %s, then the key is read', (_what, header, key) => {
    expect(parseIdempotencyKey(header)).toEqual({ ok: true, key });
  });

  it.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['a control character', 'a\tb'],
    ['an empty quoted string', '""'],
    ['a malformed quoted string', '"a"b"'],
  ])('when it is %s, then it is a field error (VALIDATION_FAILED)', (_what, header) => {
    expect(parseIdempotencyKey(header)).toMatchObject({
      ok: false,
      error: { field: 'Idempotency-Key' },
    });
  });

  it('when the header is sent twice (Node would join them as "k1, k2"), then it is a field error, never one key', () => {
    expect(parseIdempotencyKey(['k1', 'k2'])).toEqual({
      ok: false,
      error: {
        field: 'Idempotency-Key',
        message: 'must be sent once; the request carries it more than once',
      },
    });
    expect(parseIdempotencyKey(['k1'])).toEqual({ ok: true, key: 'k1' });
  });
});

describe('order ids', () => {
  it('when an id is a UUID, then it can name an order; anything else cannot', () => {
    expect(isOrderId('0b0e7a2e-4a43-4b8c-9a36-2f0d1c7f5e11')).toBe(true);
    expect(isOrderId('0B0E7A2E-4A43-4B8C-9A36-2F0D1C7F5E11')).toBe(true);
    for (const id of ['42', 'nope', '0b0e7a2e4a434b8c9a362f0d1c7f5e11', "1' OR '1'='1"]) {
      expect(isOrderId(id)).toBe(false);
    }
  });
});
