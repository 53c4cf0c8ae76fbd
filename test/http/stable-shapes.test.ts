// Every request's req and res keep one hidden class (src/http/stable-shapes.ts): two requests
// held at the same point of the same route must have the same V8 map. A structural check, not a
// timing one: when a new middleware or an Express upgrade adds a property to req or res after
// Express changes their prototypes, this fails (and every request would cost about twice the CPU).
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import express, { type Request, type Response, Router } from 'express';
import request from 'supertest';
import { preshape } from '../../src/http/stable-shapes';
import { harness, toReady } from '../helpers/lifecycle-harness';
import { testApp } from '../helpers/test-app';

// Only code compiled after this line may use V8's %-functions.
setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (
  a: object,
  b: object,
) => boolean;

interface Held {
  readonly req: Request;
  readonly res: Response;
}

/** Sends two requests at once to a route that holds both, compares their maps, answers both. */
async function heldPair(
  app: express.Express,
  router: Router,
  method: 'get' | 'post',
): Promise<{ req: boolean; res: boolean }> {
  const held: Held[] = [];
  let compared: { req: boolean; res: boolean } | undefined;
  router[method]('/held', (req, res) => {
    held.push({ req, res });
    if (held.length < 2) return;
    const [a, b] = held as [Held, Held];
    compared = { req: haveSameMap(a.req, b.req), res: haveSameMap(a.res, b.res) };
    for (const { res: each } of held) each.json({ ok: true });
    held.length = 0;
  });
  const server = app.listen(0, '127.0.0.1');
  try {
    const agent = request(server);
    const send = (): Promise<request.Response> =>
      method === 'get' ? agent.get('/held') : agent.post('/held').send({ sku: 'A-1', quantity: 2 });
    // The first pair lays down the hidden-class transitions; the second must reuse them.
    for (let round = 0; round < 2; round += 1) {
      const answers = await Promise.all([send(), send()]);
      expect(answers.map((r) => r.status)).toEqual([200, 200]);
    }
  } finally {
    server.close();
  }
  if (compared === undefined) throw new Error('the two requests were never held together');
  return compared;
}

describe('request and response shapes', () => {
  it.each(['get', 'post'] as const)(
    'when two %s requests go through the whole edge to the same route, then their req and res have the same hidden class',
    async (method) => {
      const h = harness();
      await toReady(h);
      const router = Router();
      const { app } = testApp(h.actor, { routers: [router] });
      expect(await heldPair(app, router, method)).toEqual({ req: true, res: true });
    },
  );

  it('when Express already gave the request its prototype (a second dispatch), then preshaping leaves it alone', () => {
    const req = new IncomingMessage(new Socket());
    const res = new ServerResponse(req);
    const app = express();
    Object.setPrototypeOf(req, app.request);
    Object.assign(req, { baseUrl: '/mounted', params: { id: '7' } });
    preshape(req, res);
    expect(req).toMatchObject({ baseUrl: '/mounted', params: { id: '7' } });
    expect(Object.hasOwn(res, 'locals')).toBe(false);
  });

  it('when a request is preshaped, then what Express reads before setting each property is what it reads without', () => {
    const req = new IncomingMessage(new Socket());
    const res = new ServerResponse(req);
    preshape(req, res);
    const seen = req as unknown as Record<string, unknown>;
    for (const key of ['next', 'baseUrl', 'originalUrl', '_parsedUrl', 'params', 'body', 'route'])
      expect(seen[key]).toBeUndefined();
    expect(seen.res).toBe(res);
    expect(seen._eventsCount).toBe(0);
    expect(res.statusCode).toBe(200);
    expect(res.statusMessage).toBeUndefined();
    const locals = (res as unknown as { locals: object }).locals;
    expect(Object.getPrototypeOf(locals)).toBeNull();
    expect(Object.keys(locals)).toEqual([]);
  });
});
