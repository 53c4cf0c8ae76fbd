// The request fingerprint of the idempotency protocol: SHA-256 of the body's canonical JSON
// (members sorted at every level, no whitespace), so the same order sent with its members in
// another order or other spacing is the same request, and any changed value is another one.
import { createHash } from 'node:crypto';
import type { OrderInput } from './order';

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, member]) => member !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, member]) => `${JSON.stringify(name)}:${canonicalJson(member)}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function fingerprintOf(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/**
 * fingerprintOf for a validated order, without walking and sorting a generic value: its members
 * are known, so the canonical JSON is written in sorted order directly (the same bytes, so keys
 * stored by either function match).
 */
export function orderFingerprint(input: OrderInput): string {
  let json = `{"currency":${JSON.stringify(input.currency)},"customer_id":${JSON.stringify(input.customer_id)},"items":[`;
  input.items.forEach((item, index) => {
    if (index > 0) json += ',';
    json += `{"quantity":${JSON.stringify(item.quantity)},"sku":${JSON.stringify(item.sku)},"unit_price_cents":${JSON.stringify(item.unit_price_cents)}}`;
  });
  json += ']}';
  return createHash('sha256').update(json).digest('hex');
}
