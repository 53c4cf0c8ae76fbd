// The shutdown drill's peers (`npm run bench -- drill`): the same route as drill-ops-service.ts
// (GET /drill/work, 50 ms, the same body) served with the shutdown handling of one library each,
// set up as its README recommends, with a 500 ms delay where the library has one. argv[2] picks:
//   express          Express 5, no shutdown handling: SIGTERM's default action ends the process
//   express-close    Express 5, `server.close()` on SIGTERM (Express's "Health checks and
//                    graceful shutdown" page); the process ends when nothing is left open
//   terminus         @godaddy/terminus: a `/ready` health check (503 once shutting down),
//                    `beforeShutdown` sleeping 500 ms and `useExit0: true` (its Kubernetes section);
//                    its other options at their defaults (`timeout` 1000 ms)
//   http-terminator  http-terminator: `httpTerminator.terminate()` on SIGTERM (it has no delay and
//                    no readiness; it does not end the process: the process ends when nothing is
//                    left open); `gracefulTerminationTimeout` at its default
//   lightship        lightship: `createLightship({ shutdownDelay: 500 })`, `signalReady()` once
//                    listening, `registerShutdownHandler(() => { server.close(); })`; readiness is
//                    lightship's own listener (`/ready`, 500 once shutting down; outside Kubernetes
//                    it listens on a port of the kernel's choosing)
//   fastify-cwg      Fastify 5 with close-with-grace, its README's Fastify example: `await
//                    app.close()` in the handler. close-with-grace's `delay` is the deadline after
//                    which it exits 1, not a wait before closing: left at its default (10 s).
//                    Fastify answers 503 to requests arriving while it closes (return503OnClosing)
// Each reports its port (and readiness, where there is one) to bench/drill.ts over IPC.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Request, type Response } from 'express';
import {
  announceDrill,
  DRILL_PATH,
  drillBody,
  drillMs,
  type DrillListening,
  type Peer,
  PEERS,
} from './drill-protocol';

const DELAY_MS = 500;
const HOST = '127.0.0.1';

function expressApp(): express.Express {
  const app = express();
  app.get(DRILL_PATH, (req: Request, res: Response) => {
    const ms = drillMs(req.query);
    setTimeout(() => {
      res.json(drillBody(ms));
    }, ms);
  });
  return app;
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve((server.address() as AddressInfo).port));
  });
}

function announce(port: number, readiness?: DrillListening['readiness']): void {
  announceDrill(
    { type: 'drill-listening', port, ...(readiness === undefined ? {} : { readiness }) },
    // The orchestrator went away: nothing to measure any more.
    () => process.exit(0),
  );
}

const setups: Record<Peer, () => Promise<void>> = {
  express: async () => {
    const server = http.createServer(expressApp());
    announce(await listen(server));
  },

  'express-close': async () => {
    const server = http.createServer(expressApp());
    process.on('SIGTERM', () => {
      server.close();
    });
    announce(await listen(server));
  },

  terminus: async () => {
    const { createTerminus } = await import('@godaddy/terminus');
    const server = http.createServer(expressApp());
    createTerminus(server, {
      healthChecks: { '/ready': () => Promise.resolve() },
      beforeShutdown: () => sleep(DELAY_MS),
      useExit0: true,
    });
    const port = await listen(server);
    announce(port, { port, path: '/ready' });
  },

  'http-terminator': async () => {
    const { createHttpTerminator } = await import('http-terminator');
    const server = http.createServer(expressApp());
    const httpTerminator = createHttpTerminator({ server });
    process.on('SIGTERM', () => {
      void httpTerminator.terminate();
    });
    announce(await listen(server));
  },

  lightship: async () => {
    // ESM only in practice (its CommonJS build does not load): import(), kept as such by tsc.
    const { createLightship } = await import('lightship');
    const lightship = await createLightship({ shutdownDelay: DELAY_MS });
    const server = http.createServer(expressApp());
    lightship.registerShutdownHandler(() => {
      server.close();
    });
    server.on('error', () => {
      void lightship.shutdown();
    });
    const port = await listen(server);
    lightship.signalReady();
    const probe = lightship.server.address() as AddressInfo;
    announce(port, { port: probe.port, path: '/ready' });
  },

  'fastify-cwg': async () => {
    const { default: closeWithGrace } = await import('close-with-grace');
    const { default: fastify } = await import('fastify');
    const app = fastify();
    app.get(DRILL_PATH, async (request) => {
      const ms = drillMs(request.query);
      await sleep(ms);
      return drillBody(ms);
    });
    closeWithGrace(async function ({ signal, err }) {
      if (err) app.log.error({ err }, 'server closing with error');
      else app.log.info(`${String(signal)} received, server closing`);
      await app.close();
    });
    await app.listen({ port: 0, host: HOST });
    announce((app.server.address() as AddressInfo).port);
  },
};

const peer = process.argv[2];
if (!PEERS.includes(peer as Peer)) {
  process.stderr.write(`drill-peers: expected one of ${PEERS.join(', ')}, got ${peer}\n`);
  process.exit(2);
}
setups[peer as Peer]().catch((error: unknown) => {
  process.stderr.write(
    `drill-peers ${peer}: ${error instanceof Error ? error.stack : String(error)}\n`,
  );
  process.exit(1);
});
