// Validation of the POST /v1/orders body: every problem is reported, one FieldError per field
// (the first problem of that field), so a client fixes its request in one round trip. Unknown
// members are refused rather than ignored: a misspelt field must not be silently dropped.
//
// Bounded work for hostile bodies: at most MAX_FIELD_ERRORS problems are listed and validation
// stops at the next one (a body of 30,000 unknown members used to cost ~60 ms of CPU and a 1.3 MB
// answer), and a field name is echoed back at most FIELD_NAME_SHOWN characters long.
//
// Text must be storable as is (domain/text.ts): refused here, naming the field, never left for
// PostgreSQL to refuse (issue #11: that counted as a database outage).
import { type FieldError, MAX_FIELD_ERRORS, ValidationError } from '../../errors/catalogue';
import { ACTIVE_CURRENCIES } from './currencies';
import { unstorableText } from './text';
import { type OrderInput, type OrderItem, totalCents } from './order';

export const LIMITS = {
  customerIdMax: 100,
  skuMax: 64,
  itemsMin: 1,
  itemsMax: 100,
  quantityMin: 1,
  quantityMax: 1000,
} as const;

export const FIELD_NAME_SHOWN = 64;

const ORDER_FIELDS = new Set(['customer_id', 'currency', 'items']);
const ITEM_FIELDS = new Set(['sku', 'quantity', 'unit_price_cents']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The problems found so far; adding one past the cap stops validation (throws). */
class Problems {
  readonly list: FieldError[];

  constructor(extra: readonly FieldError[]) {
    this.list = extra.slice(0, MAX_FIELD_ERRORS);
  }

  add(field: string, message: string): void {
    if (this.list.length >= MAX_FIELD_ERRORS) {
      throw new ValidationError(this.list, { truncated: true });
    }
    const shown =
      field.length > FIELD_NAME_SHOWN ? `${field.slice(0, FIELD_NAME_SHOWN)}...` : field;
    this.list.push({ field: shown, message });
  }
}

/** A member's path for an answer: an empty name is shown as `""`, never as nothing. */
function memberPath(parent: string | undefined, name: string): string {
  const shown = name === '' ? '""' : name;
  return parent === undefined ? shown : `${parent}.${shown}`;
}

/** Length in characters (code points), not UTF-16 units. */
function length(text: string): number {
  return [...text].length;
}

function checkText(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.trim() === '') return 'must not be empty';
  if (length(value) > max) return `must be at most ${max} characters`;
  return unstorableText(value);
}

function checkItem(value: unknown, at: string, problems: Problems): OrderItem | undefined {
  if (!isObject(value)) {
    problems.add(at, 'must be an object with sku, quantity and unit_price_cents');
    return undefined;
  }
  const before = problems.list.length;
  for (const name of Object.keys(value)) {
    if (!ITEM_FIELDS.has(name)) problems.add(memberPath(at, name), 'unknown field');
  }
  const sku = checkText(value.sku, LIMITS.skuMax);
  if (sku !== undefined) problems.add(`${at}.sku`, sku);
  const { quantity, unit_price_cents: price } = value;
  if (
    typeof quantity !== 'number' ||
    !Number.isInteger(quantity) ||
    quantity < LIMITS.quantityMin ||
    quantity > LIMITS.quantityMax
  ) {
    problems.add(
      `${at}.quantity`,
      `must be an integer from ${LIMITS.quantityMin} to ${LIMITS.quantityMax}`,
    );
  }
  if (typeof price !== 'number' || !Number.isSafeInteger(price) || price < 0) {
    problems.add(
      `${at}.unit_price_cents`,
      'must be a non-negative integer (minor units) up to 9007199254740991',
    );
  }
  if (problems.list.length > before) return undefined;
  return {
    sku: value.sku as string,
    quantity: quantity as number,
    unit_price_cents: price as number,
  };
}

/**
 * The body as an OrderInput, or a ValidationError listing every field that is wrong (at most
 * MAX_FIELD_ERRORS of them; `truncated` when validation stopped there).
 */
export function validateOrderInput(body: unknown, extra: readonly FieldError[] = []): OrderInput {
  const problems = new Problems(extra);
  if (!isObject(body)) {
    problems.add('body', 'must be a JSON object with customer_id, currency and items');
    throw new ValidationError(problems.list);
  }
  for (const name of Object.keys(body)) {
    if (!ORDER_FIELDS.has(name)) problems.add(memberPath(undefined, name), 'unknown field');
  }
  const customer = checkText(body.customer_id, LIMITS.customerIdMax);
  if (customer !== undefined) problems.add('customer_id', customer);

  const { currency } = body;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    problems.add('currency', 'must be an ISO 4217 code: three upper-case letters');
  } else if (!ACTIVE_CURRENCIES.has(currency)) {
    problems.add('currency', `${currency} is not an active ISO 4217 currency`);
  }

  const items: OrderItem[] = [];
  if (!Array.isArray(body.items)) {
    problems.add('items', `must be an array of ${LIMITS.itemsMin} to ${LIMITS.itemsMax} items`);
  } else if (body.items.length < LIMITS.itemsMin || body.items.length > LIMITS.itemsMax) {
    problems.add(
      'items',
      `must hold ${LIMITS.itemsMin} to ${LIMITS.itemsMax} items, not ${body.items.length}`,
    );
  } else {
    body.items.forEach((value: unknown, index) => {
      const item = checkItem(value, `items[${index}]`, problems);
      if (item !== undefined) items.push(item);
    });
    if (items.length === body.items.length && totalCents(items) === undefined) {
      problems.add('items', 'the order total exceeds 9007199254740991 minor units');
    }
  }

  if (problems.list.length > 0) throw new ValidationError(problems.list);
  return { customer_id: body.customer_id as string, currency: currency as string, items };
}
