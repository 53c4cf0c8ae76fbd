// The AbortSignal of an orders request: it fires when the request's own deadline
// (REQUEST_TIMEOUT_MS) passes or the connection closes before the answer was sent (the client
// went away, or the drain deadline closed every socket). Database calls stop their work on it.
// (Stands in for the runtime tracker's per-request signal, which modules are not given yet.)
import type { Response } from 'express';

export function requestSignal(res: Response, timeoutMs: number): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(new Error(`the request deadline of ${timeoutMs} ms passed`));
  }, timeoutMs);
  timer.unref();
  res.once('close', () => {
    clearTimeout(timer);
    if (!res.writableFinished)
      controller.abort(new Error('the connection closed before the answer'));
  });
  return controller.signal;
}
