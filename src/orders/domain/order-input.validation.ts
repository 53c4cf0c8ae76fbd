// Validation of the POST /v1/orders body: every problem is reported, one FieldError per field
// (the first problem of that field), so a client fixes its request in one round trip. Unknown
// members are refused rather than ignored: a misspelt field must not be silently dropped.
import { type FieldError, ValidationError } from '../../errors/catalogue';
import { ACTIVE_CURRENCIES } from './currencies';
import { type OrderInput, type OrderItem, totalCents } from './order';

export const LIMITS = {
  customerIdMax: 100,
  skuMax: 64,
  itemsMin: 1,
  itemsMax: 100,
  quantityMin: 1,
  quantityMax: 1000,
} as const;

const ORDER_FIELDS = new Set(['customer_id', 'currency', 'items']);
const ITEM_FIELDS = new Set(['sku', 'quantity', 'unit_price_cents']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Length in characters (code points), not UTF-16 units. */
function length(text: string): number {
  return [...text].length;
}

function checkText(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.trim() === '') return 'must not be empty';
  if (length(value) > max) return `must be at most ${max} characters`;
  return undefined;
}

function checkItem(value: unknown, at: string, errors: FieldError[]): OrderItem | undefined {
  if (!isObject(value)) {
    errors.push({
      field: at,
      message: 'must be an object with sku, quantity and unit_price_cents',
    });
    return undefined;
  }
  const before = errors.length;
  for (const name of Object.keys(value)) {
    if (!ITEM_FIELDS.has(name)) errors.push({ field: `${at}.${name}`, message: 'unknown field' });
  }
  const sku = checkText(value.sku, LIMITS.skuMax);
  if (sku !== undefined) errors.push({ field: `${at}.sku`, message: sku });
  const { quantity, unit_price_cents: price } = value;
  if (
    typeof quantity !== 'number' ||
    !Number.isInteger(quantity) ||
    quantity < LIMITS.quantityMin ||
    quantity > LIMITS.quantityMax
  ) {
    errors.push({
      field: `${at}.quantity`,
      message: `must be an integer from ${LIMITS.quantityMin} to ${LIMITS.quantityMax}`,
    });
  }
  if (typeof price !== 'number' || !Number.isSafeInteger(price) || price < 0) {
    errors.push({
      field: `${at}.unit_price_cents`,
      message: 'must be a non-negative integer (minor units) up to 9007199254740991',
    });
  }
  if (errors.length > before) return undefined;
  return {
    sku: value.sku as string,
    quantity: quantity as number,
    unit_price_cents: price as number,
  };
}

/** The body as an OrderInput, or a ValidationError listing every field that is wrong. */
export function validateOrderInput(body: unknown, extra: readonly FieldError[] = []): OrderInput {
  const errors: FieldError[] = [...extra];
  if (!isObject(body)) {
    errors.push({
      field: 'body',
      message: 'must be a JSON object with customer_id, currency and items',
    });
    throw new ValidationError(errors);
  }
  for (const name of Object.keys(body)) {
    if (!ORDER_FIELDS.has(name)) errors.push({ field: name, message: 'unknown field' });
  }
  const customer = checkText(body.customer_id, LIMITS.customerIdMax);
  if (customer !== undefined) errors.push({ field: 'customer_id', message: customer });

  const { currency } = body;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    errors.push({
      field: 'currency',
      message: 'must be an ISO 4217 code: three upper-case letters',
    });
  } else if (!ACTIVE_CURRENCIES.has(currency)) {
    errors.push({ field: 'currency', message: `${currency} is not an active ISO 4217 currency` });
  }

  const items: OrderItem[] = [];
  if (!Array.isArray(body.items)) {
    errors.push({
      field: 'items',
      message: `must be an array of ${LIMITS.itemsMin} to ${LIMITS.itemsMax} items`,
    });
  } else if (body.items.length < LIMITS.itemsMin || body.items.length > LIMITS.itemsMax) {
    errors.push({
      field: 'items',
      message: `must hold ${LIMITS.itemsMin} to ${LIMITS.itemsMax} items, not ${body.items.length}`,
    });
  } else {
    body.items.forEach((value: unknown, index) => {
      const item = checkItem(value, `items[${index}]`, errors);
      if (item !== undefined) items.push(item);
    });
    if (items.length === body.items.length && totalCents(items) === undefined) {
      errors.push({
        field: 'items',
        message: 'the order total exceeds 9007199254740991 minor units',
      });
    }
  }

  if (errors.length > 0) throw new ValidationError(errors);
  return { customer_id: body.customer_id as string, currency: currency as string, items };
}
