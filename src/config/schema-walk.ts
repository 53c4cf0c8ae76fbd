// Flattens the convict schema into its leaves (one per config key), for the loader's source
// tracking and strict key checks, and for the generated README table.
import type { AppConfig } from './schema';
import type convict from 'convict';

export interface SchemaLeaf {
  /** Dotted key, for example `shutdown.drainTimeoutMs`. */
  readonly key: string;
  readonly doc: string;
  readonly format: string;
  readonly default: unknown;
  readonly env: string | undefined;
  readonly sensitive: boolean;
}

/** A schema node is a leaf when it declares a default; anything else holds child keys. */
export function isSchemaBranch(node: unknown): boolean {
  return typeof node === 'object' && node !== null && !('default' in node);
}

export function leavesOf(schema: convict.Schema<AppConfig>): SchemaLeaf[] {
  const leaves: SchemaLeaf[] = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [name, child] of Object.entries(node)) {
      const key = prefix === '' ? name : `${prefix}.${name}`;
      if (isSchemaBranch(child)) {
        walk(child as Record<string, unknown>, key);
        continue;
      }
      const item = child as convict.SchemaObj;
      leaves.push({
        key,
        doc: item.doc ?? '',
        format: Array.isArray(item.format)
          ? item.format.join(' | ')
          : typeof item.format === 'string'
            ? item.format
            : 'custom',
        default: item.default,
        env: item.env,
        sensitive: item.sensitive === true,
      });
    }
  };
  walk(schema, '');
  return leaves;
}
