// The Idempotency-Key request header (IETF draft "The Idempotency-Key HTTP Header Field"): its
// value is a Structured Field String, `"8e03978e-..."`; the bare form most clients send is
// accepted too, and both name the same key. 1-255 printable ASCII characters (contract section 6).
import { AppError, type FieldError } from '../../errors/catalogue';

export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';
const MAX_LENGTH = 255;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

export type ParsedKey =
  { readonly ok: true; readonly key: string } | { readonly ok: false; readonly error: FieldError };

/** sf-string `"..."` (with `\"` and `\\` escapes) to its content; undefined if malformed. */
function unquote(value: string): string | undefined {
  let out = '';
  for (let i = 1; i < value.length - 1; i += 1) {
    const char = value[i];
    if (char === '\\') {
      const next = value[i + 1];
      if ((next !== '"' && next !== '\\') || i + 1 >= value.length - 1) return undefined;
      out += next;
      i += 1;
    } else if (char === '"') {
      return undefined;
    } else {
      out += char;
    }
  }
  return out;
}

/**
 * The key, a field error when it is malformed or sent more than once, or AppError
 * IDEMPOTENCY_KEY_MISSING (thrown) when the header is absent. Takes the header's values as sent
 * (`req.headersDistinct`): a string is one value.
 */
export function parseIdempotencyKey(header: string | readonly string[] | undefined): ParsedKey {
  if (header !== undefined && typeof header !== 'string') {
    if (header.length > 1) {
      return {
        ok: false,
        error: {
          field: IDEMPOTENCY_KEY_HEADER,
          message: 'must be sent once; the request carries it more than once',
        },
      };
    }
    return parseIdempotencyKey(header[0]);
  }
  if (header === undefined) {
    throw new AppError(
      'IDEMPOTENCY_KEY_MISSING',
      'Send an Idempotency-Key header (a new unique value per order, the same value on retries).',
    );
  }
  const malformed: ParsedKey = {
    ok: false,
    error: {
      field: IDEMPOTENCY_KEY_HEADER,
      message: `must be 1 to ${MAX_LENGTH} printable ASCII characters`,
    },
  };
  const key =
    header.length >= 2 && header.startsWith('"') && header.endsWith('"') ? unquote(header) : header;
  if (
    key === undefined ||
    key.length === 0 ||
    key.length > MAX_LENGTH ||
    !PRINTABLE_ASCII.test(key)
  ) {
    return malformed;
  }
  return { ok: true, key };
}
