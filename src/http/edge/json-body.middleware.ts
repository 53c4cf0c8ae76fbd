// Request bodies: JSON only, read here rather than by body-parser, because a hostile client needs
// rules body-parser does not have (issue #11):
// - a declared Content-Length above BODY_LIMIT_BYTES is 413 at once, without waiting for (or
//   reading) the body, and the connection closes; a chunked body is cut off at the limit;
// - the body must arrive within HTTP_BODY_TIMEOUT_MS of the headers, or 408 CLIENT_TIMEOUT goes
//   out through the app (so the access log, metrics and client agree) and the connection closes;
// - the body is strict UTF-8 (invalid bytes are 400, never silently replaced by U+FFFD), an
//   object or array, and has no duplicate member names (JSON.parse would keep the last one);
// - only `identity` Content-Encoding, `chunked` Transfer-Encoding and the utf-8 charset (415
//   otherwise): no decompression bombs, no transcoding, no body read as other than it was sent.
import { AsyncResource } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import type { Reply } from '../problem-reply';
import { duplicateMember } from './duplicate-member';

const JSON_TYPES = ['application/json', 'application/*+json'];
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;
const NAME_SHOWN = 64;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface BodyPolicy {
  readonly limitBytes: number;
  /** Time the whole body has to arrive once the headers have. */
  readonly timeoutMs: number;
}

function hasBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
}

/** Why the body's declared form is refused (415), or undefined. */
function unsupported(req: Request): string | undefined {
  if (req.is(JSON_TYPES) === false) {
    return `Send the body as application/json, not ${req.headers['content-type'] ?? 'no Content-Type'}.`;
  }
  const charset = CHARSET.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return 'The request body charset must be utf-8.';
  }
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
    return 'Send the body without a Content-Encoding: compressed bodies are not accepted.';
  }
  // Node removes `chunked` and hands any other transfer coding (gzip, ...) through undecoded:
  // the body would be read as something other than what the client sent.
  const transfer = req.headers['transfer-encoding'];
  if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') {
    return 'The only Transfer-Encoding accepted is chunked.';
  }
  return undefined;
}

/** The parsed body, or the detail of a 400 MALFORMED_JSON. */
function parse(raw: Buffer): { ok: true; value: unknown } | { ok: false; detail: string } {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, detail: 'The request body is not valid UTF-8.' };
  }
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[') {
    return { ok: false, detail: 'The request body must be a JSON object or array.' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The parser's message quotes the body: not echoed.
    return { ok: false, detail: 'The request body is not valid JSON.' };
  }
  const duplicate = duplicateMember(text);
  if (duplicate !== undefined) {
    const shown =
      duplicate.length > NAME_SHOWN ? `${duplicate.slice(0, NAME_SHOWN)}...` : duplicate;
    return {
      ok: false,
      detail: `The member ${JSON.stringify(shown)} appears more than once in one object; send each member once.`,
    };
  }
  return { ok: true, value };
}

export function jsonBody(policy: BodyPolicy, reply: Reply): RequestHandler {
  const { limitBytes, timeoutMs } = policy;
  // The rest of the body is not read: the connection cannot carry another request.
  const refuseAndClose = (res: Response, code: 'PAYLOAD_TOO_LARGE' | 'CLIENT_TIMEOUT'): void => {
    res.setHeader('Connection', 'close');
    reply(
      res,
      code,
      code === 'PAYLOAD_TOO_LARGE'
        ? `The request body is larger than ${limitBytes} bytes.`
        : `The request body did not arrive within ${timeoutMs} ms.`,
    );
  };

  return (req: Request, res: Response, next) => {
    if (!hasBody(req.headers)) {
      next();
      return;
    }
    const refused = unsupported(req);
    if (refused !== undefined) {
      reply(res, 'UNSUPPORTED_MEDIA_TYPE', refused);
      return;
    }
    if (Number(req.headers['content-length'] ?? 0) > limitBytes) {
      refuseAndClose(res, 'PAYLOAD_TOO_LARGE');
      return;
    }

    // Stream events run in the socket's async context: the end of the body runs in this
    // request's, so the handlers after this (next) keep the request scope (log ids, spans). runInAsyncScope,
    // not AsyncResource#bind: bind builds a deprecation wrapper on every call in Node 20
    // (measured: 2% of an order's CPU).
    const scope = new AsyncResource('ops-service.json-body');
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
    };
    // A refusal here needs no scope: the reply finds the request's ids in res.locals.
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limitBytes) {
        stop();
        refuseAndClose(res, 'PAYLOAD_TOO_LARGE');
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => scope.runInAsyncScope(finish);
    const finish = (): void => {
      stop();
      const parsed = parse(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
      if (!parsed.ok) {
        reply(res, 'MALFORMED_JSON', parsed.detail);
        return;
      }
      req.body = parsed.value;
      next();
    };
    // Closed before the body was in: the client is gone, nobody to answer (the access log says
    // `aborted`).
    const onClose = (): void => stop();
    const timer = setTimeout(() => {
      stop();
      if (!res.headersSent) refuseAndClose(res, 'CLIENT_TIMEOUT');
    }, timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    // A socket error while reading must not become an unhandled 'error' event.
    req.on('error', () => undefined);
  };
}
