// The duplicate-member scan over JSON that JSON.parse accepted (I-JSON, RFC 7493 section 2.3).
import { duplicateMember } from '../../../src/http/edge/duplicate-member';

describe('duplicate JSON members', () => {
  it.each([
    ['an order', '{"customer_id":"a","currency":"EUR","items":[{"sku":"s","quantity":1}]}'],
    ['the same name in sibling objects', '[{"a":1},{"a":2}]'],
    ['the same name at two depths', '{"a":{"a":{"a":1}}}'],
    ['a name that is also a value', '{"a":"a","b":["a","a"]}'],
    ['strings with escaped quotes and colons', '{"a\\"":"x\\":","a":"\\\\"}'],
    ['an empty object', '{}'],
    ['no objects at all', '[1,"x",[true,null]]'],
  ])('when the JSON has %s, then nothing is reported', (_what, text) => {
    JSON.parse(text);
    expect(duplicateMember(text)).toBeUndefined();
  });

  it.each([
    ['at the top', '{"customer_id":"a","customer_id":"b"}', 'customer_id'],
    ['in a nested item', '{"items":[{"sku":"A","quantity":1,"sku":"B"}]}', 'sku'],
    ['with whitespace around the colon', '{ "a" : 1 ,\n "a"\t: 2 }', 'a'],
    ['spelt once with an escape', '{"sku":1,"\\u0073ku":2}', 'sku'],
    ['after a closed object', '{"a":{"b":1},"c":2,"a":3}', 'a'],
    ['the empty name', '{"":1,"":2}', ''],
  ])('when a name repeats %s, then it is reported', (_what, text, name) => {
    expect(duplicateMember(text)).toBe(name);
  });

  it('when arrays nest 50,000 deep, then the scan neither recurses nor fails', () => {
    const text = `${'['.repeat(50_000)}{"a":1,"a":2}${']'.repeat(50_000)}`;
    expect(duplicateMember(text)).toBe('a');
  });
});
