// Requests that are well-formed HTTP but that this service refuses on protocol grounds. Node
// would answer them itself with a bare status and no body; the runtime turns those answers off
// (`requireHostHeader: false`, a `checkExpectation` listener) so they get problem+json, a request
// id, an access-log line and a metric like every other answer (issue #11).
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import type { Reply } from '../problem-reply';

// RFC 9112 section 3.2: an HTTP/1.1 request without Host is answered 400.
const missingHost = (req: IncomingMessage): boolean =>
  req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1;

// RFC 9110 section 10.1.1: 100-continue is the only expectation defined; any other is 417.
const unmetExpectation = (req: IncomingMessage): boolean => {
  const expect = req.headers.expect;
  return expect !== undefined && expect.trim().toLowerCase() !== '100-continue';
};

/** Whether protocolChecks would refuse the request (the probes leave such requests to it). */
export function breaksProtocol(req: IncomingMessage): boolean {
  return missingHost(req) || unmetExpectation(req);
}

export function protocolChecks(reply: Reply): RequestHandler {
  return (req, res, next) => {
    if (missingHost(req)) {
      res.setHeader('Connection', 'close');
      reply(res, 'MALFORMED_REQUEST', 'An HTTP/1.1 request must carry a Host header.');
      return;
    }
    if (unmetExpectation(req)) {
      res.setHeader('Connection', 'close');
      reply(res, 'EXPECTATION_FAILED', 'The only Expect value this service meets is 100-continue.');
      return;
    }
    next();
  };
}
