// Narrowing parsed YAML and JSON (typed `any` by the parsers, taken as `unknown` here), shared by
// the deploy tests. Each function names `where` in its error, so a broken file says which part.

export type Dict = Readonly<Record<string, unknown>>;

export function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A mapping; missing (undefined or null) reads as an empty one. */
export function dict(value: unknown, where: string): Dict {
  if (value === undefined || value === null) return {};
  if (!isDict(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}

/** A list; missing (undefined or null) reads as an empty one. */
export function list(value: unknown, where: string): readonly unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value as readonly unknown[];
}

/** A string, number or boolean, as text. */
export function scalar(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`${where}: expected a scalar`);
}

export function optionalScalar(value: unknown, where: string): string | undefined {
  return value === undefined || value === null ? undefined : scalar(value, where);
}

/** A mapping of scalars (labels, annotations, environment), each as text. */
export function stringMap(value: unknown, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, raw] of Object.entries(dict(value, where))) {
    out[key] = optionalScalar(raw, `${where}.${key}`) ?? '';
  }
  return out;
}

/** `name:tag` or `name@sha256:...`; the tag is after the last `:` that follows the last `/` (a registry port, `host:5000/app`, is not a tag). */
export function imageProblem(image: string, where: string): string | undefined {
  if (image.includes('@sha256:')) return undefined;
  const name = image.slice(image.lastIndexOf('/') + 1);
  const tag = name.includes(':') ? name.slice(name.lastIndexOf(':') + 1) : undefined;
  if (tag === undefined || tag === '') return `${where}: ${image} is not pinned to a tag`;
  if (tag === 'latest') return `${where}: ${image} uses latest`;
  return undefined;
}
