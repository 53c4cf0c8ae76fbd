// 405 instead of 404 when the path exists with other methods (RFC 9110 section 15.5.6: the
// response lists them in `Allow`).
import type { Express } from 'express';

interface RouteLike {
  readonly methods: Readonly<Record<string, boolean>>;
}
interface LayerLike {
  readonly route?: RouteLike;
  readonly handle?: { readonly stack?: readonly LayerLike[] };
  match(path: string): boolean;
}

function collect(stack: readonly LayerLike[], path: string, into: Set<string>): void {
  for (const layer of stack) {
    if (layer.route !== undefined) {
      if (layer.match(path)) {
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on) into.add(method.toUpperCase());
      }
    } else if (layer.handle?.stack !== undefined) {
      collect(layer.handle.stack, path, into);
    }
  }
}

/** The methods some route accepts for `path` (empty when no route has that path). */
export function allowedMethods(app: Express, path: string): string[] {
  // Express 5 keeps the router's layers on app.router (not a typed API).
  const stack =
    (app as unknown as { router?: { stack?: readonly LayerLike[] } }).router?.stack ?? [];
  const methods = new Set<string>();
  collect(stack, path, methods);
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}
