// Request bodies: JSON only (415 UNSUPPORTED_MEDIA_TYPE otherwise), at most BODY_LIMIT_BYTES
// (413), and valid JSON (400 MALFORMED_JSON; body-parser's errors are mapped in errors/).
import express, { type RequestHandler } from 'express';
import type { Reply } from '../problem-reply';

const JSON_TYPES = ['application/json', 'application/*+json'];

function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
}

export function jsonBody(limitBytes: number, reply: Reply): RequestHandler[] {
  const mediaType: RequestHandler = (req, res, next) => {
    if (hasBody(req.headers) && req.is(JSON_TYPES) === false) {
      reply(
        res,
        'UNSUPPORTED_MEDIA_TYPE',
        `Send the body as application/json, not ${req.headers['content-type'] ?? 'no Content-Type'}.`,
      );
      return;
    }
    next();
  };
  const parse = express.json({ limit: limitBytes, strict: true, type: JSON_TYPES });
  // body-parser 2 sets up its reader even for a request without a body: skip it then.
  const parseIfBody: RequestHandler = (req, res, next) => {
    if (hasBody(req.headers)) {
      void parse(req, res, next);
      return;
    }
    next();
  };
  return [mediaType, parseIfBody];
}
