// Text the orders store as is (ids, SKUs, payment ids) must be storable and plain: PostgreSQL
// refuses NUL in text and unpaired surrogates in JSON, and control characters have no business
// in an identifier (they forge log lines and break terminals). Such text is the sender's error,
// refused before it reaches the database (issue #11), never a database failure.

// C0 controls (NUL included) and DEL.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
// An unpaired UTF-16 surrogate (\ud800 alone): not a character.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `text` cannot be stored as an identifier, or undefined when it can. */
export function unstorableText(text: string): string | undefined {
  if (CONTROL.test(text)) return 'must not contain control characters (U+0000-U+001F, U+007F)';
  if (LONE_SURROGATE.test(text)) {
    return 'must be valid Unicode text (it contains an unpaired surrogate)';
  }
  return undefined;
}
