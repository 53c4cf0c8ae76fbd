// Property-based tests of the POST /v1/orders body validation: generated valid orders are
// accepted as they are; any JSON value is either a valid order or a bounded ValidationError
// (never another error); text that PostgreSQL cannot store is refused naming its field; and the
// number of field errors listed is capped. Seeded, so every run checks the same cases.
import fc from 'fast-check';
import { MAX_FIELD_ERRORS, ValidationError } from '../../../src/errors/catalogue';
import { ACTIVE_CURRENCIES } from '../../../src/orders/domain/currencies';
import { totalCents } from '../../../src/orders/domain/order';
import {
  FIELD_NAME_SHOWN,
  validateOrderInput,
} from '../../../src/orders/domain/order-input.validation';

const SEED = 20_260_611;
const RUNS = 300;

interface Item {
  sku: string;
  quantity: number;
  unit_price_cents: number;
}
interface Order {
  customer_id: string;
  currency: string;
  items: Item[];
}

// ---------------------------------------------------------------------------------------------
// An oracle written from the rules, independently of the validator.

// eslint-disable-next-line no-control-regex -- C0 controls and DEL are what is looked for
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /\p{Cs}/u;

/** Text PostgreSQL stores as is: no NUL (nor any other C0 control, nor DEL), no lone surrogate. */
function isStorableText(value: string): boolean {
  return !CONTROL.test(value) && !LONE_SURROGATE.test(value);
}

function isText(value: unknown, max: number): value is string {
  return (
    typeof value === 'string' &&
    !/^\s*$/u.test(value) &&
    [...value].length <= max &&
    isStorableText(value)
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasExactly(value: Record<string, unknown>, names: readonly string[]): boolean {
  const keys = Object.keys(value);
  return keys.length === names.length && names.every((name) => Object.hasOwn(value, name));
}

function isValidItem(value: unknown): value is Item {
  if (!isPlainObject(value) || !hasExactly(value, ['sku', 'quantity', 'unit_price_cents']))
    return false;
  const { sku, quantity, unit_price_cents: price } = value;
  return (
    isText(sku, 64) &&
    typeof quantity === 'number' &&
    Number.isInteger(quantity) &&
    quantity >= 1 &&
    quantity <= 1000 &&
    typeof price === 'number' &&
    Number.isSafeInteger(price) &&
    price >= 0
  );
}

function isValidOrder(value: unknown): value is Order {
  if (!isPlainObject(value) || !hasExactly(value, ['customer_id', 'currency', 'items']))
    return false;
  const { customer_id: customer, currency, items } = value;
  if (!isText(customer, 100)) return false;
  if (typeof currency !== 'string' || !ACTIVE_CURRENCIES.has(currency)) return false;
  if (!Array.isArray(items) || items.length < 1 || items.length > 100) return false;
  if (!items.every(isValidItem)) return false;
  const total = items.reduce(
    (sum, item) => sum + BigInt(item.quantity) * BigInt(item.unit_price_cents),
    0n,
  );
  return total <= BigInt(Number.MAX_SAFE_INTEGER);
}

type Outcome = { accepted: unknown } | { refused: ValidationError } | { threw: unknown };

function validate(body: unknown): Outcome {
  try {
    return { accepted: validateOrderInput(body) };
  } catch (error) {
    return error instanceof ValidationError ? { refused: error } : { threw: error };
  }
}

function refusal(body: unknown): ValidationError {
  const outcome = validate(body);
  if ('refused' in outcome) return outcome.refused;
  throw new Error(`expected a ValidationError, got ${fc.stringify(outcome)}`);
}

function fieldsOf(error: ValidationError): string[] {
  return error.errors.map((e) => e.field);
}

function shown(field: string): string {
  return field.length > FIELD_NAME_SHOWN ? `${field.slice(0, FIELD_NAME_SHOWN)}...` : field;
}

// ---------------------------------------------------------------------------------------------
// Generators.

/** One code point a valid text may hold: no C0 control, no DEL, no surrogate. */
const textUnit = fc
  .oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    fc.integer({ min: 0x80, max: 0xd7ff }),
    fc.integer({ min: 0xe000, max: 0x10ffff }),
    fc.constantFrom(0x20, 0xa0, 0x2028, 0xfeff, 0x1f600),
  )
  .map((codePoint) => String.fromCodePoint(codePoint));

function validText(max: number): fc.Arbitrary<string> {
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.string({ unit: textUnit, minLength: 1, maxLength: max }) },
      { weight: 1, arbitrary: fc.string({ unit: textUnit, minLength: max, maxLength: max }) },
    )
    .filter((text) => text.trim() !== '');
}

const currency = fc.constantFrom(...ACTIVE_CURRENCIES);

function itemPriced(price: fc.Arbitrary<number>): fc.Arbitrary<Item> {
  return fc.record({
    sku: validText(64),
    quantity: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(1, 1000)),
    unit_price_cents: price,
  });
}

/** Any price, up to Number.MAX_SAFE_INTEGER (the total is kept safe by a filter below). */
const validItem = itemPriced(
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 1_000_000 }) },
    fc.maxSafeNat(),
    fc.constantFrom(0, Number.MAX_SAFE_INTEGER),
  ),
);
/** Prices low enough that 100 items of 1,000 never overflow the total. */
const cheapItem = itemPriced(fc.integer({ min: 0, max: 1_000_000 }));

const validOrder: fc.Arbitrary<Order> = fc
  .record({
    customer_id: validText(100),
    currency,
    items: fc.oneof(
      { weight: 4, arbitrary: fc.array(validItem, { minLength: 1, maxLength: 5 }) },
      fc.array(cheapItem, { minLength: 1, maxLength: 100, size: 'max' }),
    ),
  })
  .filter((order) => totalCents(order.items) !== undefined);

/** Characters that make text unstorable or odd: controls, DEL, lone surrogates, blanks. */
const hostileUnit = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  fc.constantFrom(
    '\u0000',
    '\u0001',
    '\t',
    '\n',
    '\u001f',
    '\u007f',
    '\ud800',
    '\udbff',
    '\udc00',
    '\udfff',
    ' ',
    '\u00a0',
    '\u2028',
    '\ufeff',
  ),
);

const anyJson = fc.jsonValue({ stringUnit: hostileUnit, maxDepth: 4 });

const oddNumber = fc.constantFrom(
  -0,
  -1,
  0,
  1.5,
  1e21,
  1001,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  Number.MAX_VALUE,
);

/** Mostly the valid arbitrary, sometimes anything JSON can hold in its place. */
function maybe<T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: good },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: oddNumber },
    { weight: 1, arbitrary: fc.string({ unit: hostileUnit, maxLength: 120 }) },
  );
}

const unknownMembers = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  fc.dictionary(fc.string({ unit: hostileUnit, maxLength: 80 }), anyJson, { maxKeys: 30 }),
);

/** Near-valid orders: members missing, wrong, odd or extra, anywhere in the body. */
const nearlyValidOrder: fc.Arbitrary<unknown> = fc
  .tuple(
    fc.record(
      {
        customer_id: maybe(validText(100)),
        currency: maybe(currency),
        items: maybe(
          fc.array(
            fc
              .tuple(
                fc.record(
                  {
                    sku: maybe(validText(64)),
                    quantity: maybe(fc.integer({ min: 1, max: 1000 })),
                    unit_price_cents: maybe(fc.maxSafeNat()),
                  },
                  { requiredKeys: [] },
                ),
                unknownMembers,
              )
              .map(([item, extra]) => ({ ...extra, ...item })),
            { minLength: 0, maxLength: 8 },
          ),
        ),
      },
      { requiredKeys: [] },
    ),
    unknownMembers,
  )
  .map(([order, extra]) => ({ ...extra, ...order }));

const ORDER_MEMBERS = ['customer_id', 'currency', 'items'] as const;
const ITEM_MEMBERS = ['sku', 'quantity', 'unit_price_cents'] as const;
type Member = (typeof ORDER_MEMBERS)[number] | (typeof ITEM_MEMBERS)[number];

const blank = fc.string({
  unit: fc.constantFrom(' ', '\t', '\n', '\u00a0', '\u2028', '\u3000', '\ufeff'),
  maxLength: 4,
});
const aroundLength = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: textUnit, minLength: max - 1, maxLength: max + 1 });

/** Values just inside and just outside each rule. */
const EDGES: Readonly<Record<Member, fc.Arbitrary<unknown>>> = {
  customer_id: fc.oneof(blank, aroundLength(100)),
  currency: fc.oneof(
    fc.stringMatching(/^[A-Z]{3}$/),
    fc.constantFrom('XXX', 'XTS', 'XAU', 'HRK', 'eur', 'EURO', ''),
  ),
  items: fc.oneof(
    fc.constant([]),
    fc.array(cheapItem, { minLength: 100, maxLength: 101, size: 'max' }),
  ),
  sku: fc.oneof(blank, aroundLength(64)),
  quantity: fc.oneof(
    fc.integer({ min: -1, max: 1001 }),
    fc.constantFrom(0, 1, 1000, 1001, 1.5, -0, '2'),
  ),
  unit_price_cents: fc.constantFrom(
    -1,
    -0,
    0,
    0.5,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 1,
    '1',
  ),
};

type Change =
  | { readonly kind: 'set'; readonly member: Member; readonly value: unknown }
  | { readonly kind: 'delete'; readonly member: Member }
  | {
      readonly kind: 'add';
      readonly inItem: boolean;
      readonly name: string;
      readonly value: unknown;
    };

const anyMember = fc.constantFrom<Member>(...ORDER_MEMBERS, ...ITEM_MEMBERS);
const change: fc.Arbitrary<Change> = fc.oneof(
  {
    weight: 3,
    arbitrary: anyMember.chain((member) =>
      fc
        .oneof({ weight: 3, arbitrary: EDGES[member] }, { weight: 1, arbitrary: anyJson })
        .map((value): Change => ({ kind: 'set', member, value })),
    ),
  },
  anyMember.map((member): Change => ({ kind: 'delete', member })),
  fc
    .record({
      inItem: fc.boolean(),
      name: fc.string({ unit: hostileUnit, maxLength: 80 }),
      value: anyJson,
    })
    .map((added): Change => ({ kind: 'add', ...added })),
);

function isItemMember(member: Member): boolean {
  return (ITEM_MEMBERS as readonly string[]).includes(member);
}

/** A valid order with exactly one change: a member set to another value, deleted, or added. */
const changedOrder: fc.Arbitrary<unknown> = fc
  .tuple(validOrder, fc.nat(), change)
  .map(([order, which, one]) => {
    const body = structuredClone(order) as unknown as Record<string, unknown>;
    const items = body.items as Record<string, unknown>[];
    const item = items[which % items.length] as Record<string, unknown>;
    const inItem = one.kind === 'add' ? one.inItem : isItemMember(one.member);
    const target = inItem ? item : body;
    if (one.kind === 'delete') delete target[one.member];
    else {
      const name = one.kind === 'add' ? one.name : one.member;
      // defineProperty: an own member even when it is named __proto__.
      Object.defineProperty(target, name, {
        value: one.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return body;
  });

const anyBody: fc.Arbitrary<unknown> = fc.oneof(
  anyJson,
  nearlyValidOrder,
  changedOrder,
  validOrder,
);

/** Inserts `inserted` at UTF-16 index `at` (modulo the length): may split a surrogate pair. */
function insertAt(text: string, at: number, inserted: string): string {
  const index = at % (text.length + 1);
  return text.slice(0, index) + inserted + text.slice(index);
}

const unstorable = fc.oneof(
  fc.constant('\u0000'),
  fc.integer({ min: 0x01, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.constant('\u007f'),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
);

// ---------------------------------------------------------------------------------------------

describe('order body validation, by property', () => {
  it('when an order is valid, then it is accepted unchanged', () => {
    fc.assert(
      fc.property(validOrder, (order) => {
        const before = structuredClone(order);
        // Act
        const accepted = validateOrderInput(order);
        // Assert
        expect(accepted).toEqual(before);
        expect(order).toEqual(before);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('when any JSON value is validated, then it is either a valid order returned as is, or a ValidationError of 1 to 20 field errors, and nothing else is thrown', () => {
    fc.assert(
      fc.property(anyBody, (body) => {
        // Act
        const outcome = validate(body);
        // Assert
        if ('threw' in outcome) throw outcome.threw;
        if ('accepted' in outcome) {
          expect(isValidOrder(outcome.accepted)).toBe(true);
          expect(outcome.accepted).toEqual(body);
          return;
        }
        const error = outcome.refused;
        expect(isValidOrder(body)).toBe(false);
        expect(error.code).toBe('VALIDATION_FAILED');
        expect(error.errors.length).toBeGreaterThanOrEqual(1);
        expect(error.errors.length).toBeLessThanOrEqual(MAX_FIELD_ERRORS);
        for (const { field, message } of error.errors) {
          expect(field.length).toBeGreaterThan(0);
          expect(field.length).toBeLessThanOrEqual(FIELD_NAME_SHOWN + 3);
          expect(message.length).toBeGreaterThan(0);
        }
        expect(error.extensions.errors).toBe(error.errors);
        expect(error.extensions.errors_truncated === true).toBe(error.truncated);
        if (error.truncated) expect(error.errors).toHaveLength(MAX_FIELD_ERRORS);
      }),
      { seed: SEED, numRuns: 600 },
    );
  });

  it('when a NUL, another control character or a lone surrogate is inserted into customer_id, then customer_id alone is refused', () => {
    fc.assert(
      fc.property(validOrder, fc.nat(), unstorable, (order, at, inserted) => {
        // Arrange
        const body = { ...order, customer_id: insertAt(order.customer_id, at, inserted) };
        // Act
        const error = refusal(body);
        // Assert
        expect(fieldsOf(error)).toEqual(['customer_id']);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("when a NUL, another control character or a lone surrogate is inserted into one item's sku, then that item's sku alone is refused", () => {
    fc.assert(
      fc.property(validOrder, fc.nat(), fc.nat(), unstorable, (order, which, at, inserted) => {
        // Arrange
        const index = which % order.items.length;
        const items = order.items.map((item, i) =>
          i === index ? { ...item, sku: insertAt(item.sku, at, inserted) } : item,
        );
        // Act
        const error = refusal({ ...order, items });
        // Assert
        expect(fieldsOf(error)).toEqual([`items[${index}].sku`]);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('when a body has more than 20 unknown members (21 to 5,000), then exactly 20 are listed and the error says it was truncated', () => {
    fc.assert(
      fc.property(
        validOrder,
        fc.integer({ min: 21, max: 5_000 }),
        fc.oneof(fc.string({ maxLength: 8 }), fc.string({ minLength: 60, maxLength: 200 })),
        (order, count, prefix) => {
          // Arrange
          const body: Record<string, unknown> = { ...order };
          for (let i = 0; i < count; i += 1) body[`${prefix}~${i}`] = i;
          const unknown = Object.keys(body).filter((name) => !Object.hasOwn(order, name));
          // Act
          const error = refusal(body);
          // Assert
          expect(error.errors).toHaveLength(MAX_FIELD_ERRORS);
          expect(fieldsOf(error)).toEqual(unknown.slice(0, MAX_FIELD_ERRORS).map(shown));
          expect(error.truncated).toBe(true);
          expect(error.extensions.errors_truncated).toBe(true);
        },
      ),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('when an otherwise valid order has 1 to 20 unknown members, then each is listed once and the error is not truncated', () => {
    fc.assert(
      fc.property(
        validOrder,
        fc.uniqueArray(
          fc.oneof(
            fc.string({ unit: hostileUnit, minLength: 1, maxLength: 8 }),
            fc.string({ unit: hostileUnit, minLength: 60, maxLength: 200 }),
          ),
          { minLength: 1, maxLength: MAX_FIELD_ERRORS },
        ),
        (order, names) => {
          // Arrange
          const unknown = names.filter((name) => !Object.hasOwn(order, name));
          fc.pre(unknown.length > 0);
          // fromEntries defines own members, even one named __proto__.
          const body = { ...order, ...Object.fromEntries(unknown.map((name) => [name, null])) };
          // Act
          const error = refusal(body);
          // Assert
          expect(error.errors).toHaveLength(unknown.length);
          expect(fieldsOf(error).sort()).toEqual(unknown.map(shown).sort());
          expect(error.truncated).toBe(false);
          expect(error.extensions).not.toHaveProperty('errors_truncated');
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
