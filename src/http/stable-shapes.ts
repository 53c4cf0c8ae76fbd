// Keeps every request's `req` and `res` on one hidden class (V8 "map"), request after request.
//
// Express 5's app.handle gives req and res their app's prototypes (Object.setPrototypeOf), then
// Express, the router and the middleware add properties to them (`res.locals`, `req.baseUrl`,
// `req.next`, `req.params`, `req.route`, ...). V8 does not reuse the hidden-class transitions of
// an object whose prototype was changed: each property added after that point makes a new hidden
// class, so every request's req and res end up with shapes no inline cache has seen, and every
// property access on them (this service's, Express's and Node's own http code) misses its cache
// and looks the property up the slow way. Measured here: about a third of a bare Express app's CPU
// per request.
//
// Adding those properties before Express changes the prototype (with the values they have anyway
// until Express sets them: absent reads as undefined, `statusCode` 200, `statusMessage` undefined
// and `_eventsCount` 0 are the prototypes' defaults) keeps the shapes stable; later writes only
// change values. Nothing else changes: Express sees `res.locals` already made (it makes the same
// empty object otherwise) and sets the others as before.
import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Express } from 'express';
// The one module allowed Express internals (eslint.config.mjs), behind library-seams.test.ts.
// eslint-disable-next-line no-restricted-imports
import * as routerLib from 'router/lib/symbols';

type Bag = Record<string | symbol, unknown>;

/**
 * The symbol under which the router notes the matched route on req. Not a public export: it is
 * imported by a static path (so the bundled entry point holds the same copy of `router` as Express,
 * not a second one from node_modules), and library-seams.test.ts checks that this copy is the one
 * Express loads and that its symbol is the one a routed request carries.
 */
export function routerSymbols(): symbol[] {
  return typeof routerLib.matchedRoute === 'symbol' ? [routerLib.matchedRoute] : [];
}
const ROUTER_SYMBOLS = routerSymbols();

/** Gives req and res the properties Express, the router and the edge add, in the order they do. */
export function preshape(req: IncomingMessage, res: ServerResponse): void {
  // Only a request Express has not seen yet (not a sub-app's second dispatch of the same req).
  if (Object.getPrototypeOf(req) !== IncomingMessage.prototype) return;
  const r = req as unknown as Bag;
  r.res = res;
  r.next = undefined;
  r.baseUrl = undefined;
  r.originalUrl = undefined;
  r._parsedUrl = undefined;
  for (const symbol of ROUTER_SYMBOLS) r[symbol] = undefined;
  r.params = undefined;
  // body-parser's (edge/json-body.middleware.ts); it sets undefined itself when absent.
  r.body = undefined;
  r.route = undefined;
  // Node's stream code counts req's first listener (after the answer) on req itself; until then
  // it reads EventEmitter.prototype's 0.
  r._eventsCount = 0;
  const s = res as unknown as Bag;
  s.locals = Object.create(null);
  s.statusCode = 200;
  s.statusMessage = undefined;
}

/** Makes `app` preshape every request before its own handling (which sets the prototypes). */
export function keepShapes(app: Express): void {
  const target = app as unknown as {
    handle: (req: IncomingMessage, res: ServerResponse, next?: unknown) => void;
  };
  const handle = target.handle.bind(app);
  target.handle = (req, res, next) => {
    preshape(req, res);
    handle(req, res, next);
  };
}
