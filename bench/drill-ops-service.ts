// The shutdown drill's ops-service (`npm run bench -- drill`): the real runtime, started the way
// src/main.ts starts it (config -> logger -> telemetry before Express loads -> runtime, its own
// SIGTERM/SIGINT handling), with no module and one bench-only router:
//   GET /drill/work?ms=N  answers after N ms (50 by default) with the drill body; like the test
//                         fixture's route (test/fixtures/drill-service.ts) its timer stops when the
//                         request's AbortSignal fires (drain deadline, client gone)
// Everything else is the production middleware stack (request id, probes, access log, drain gate).
// Config comes from the environment bench/drill.ts sets (SHUTDOWN_DELAY_MS=500 among others).
// BENCH_DRILL_TRACE=1 (passed on by the drill) adds an observer that changes nothing the service
// does: it notes every connection the main listener accepts (the client's port, when, how many
// requests it carried), when the listener closes, which connections closeIdleConnections() and
// closeAllConnections() destroyed, and when each connection closed after the signal (the drain
// closes idle ones itself); `drill.trace` lines on stdout, read by bench/drill.ts to say what
// happened to each dropped request.
import type { IncomingMessage, Server } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Request, Response } from 'express';
import { buildInfo } from '../src/build-info';
import { loadConfig } from '../src/config/load-config';
import { createServiceLogger } from '../src/runtime/service-logger';
import { createTelemetry } from '../src/telemetry/telemetry';
import { announceDrill, DRILL_PATH, drillBody, drillMs } from './drill-protocol';

async function main(): Promise<void> {
  const loaded = loadConfig();
  if (!loaded.ok) {
    process.stderr.write(`drill-ops-service: invalid config ${JSON.stringify(loaded.problems)}\n`);
    process.exit(78);
  }
  const logger = createServiceLogger(loaded);
  const telemetry = createTelemetry(loaded.config, buildInfo(), logger);
  const { startRuntime } = await import('../src/runtime/runtime.js');
  const { requestSignal } = await import('../src/http/request-context.middleware.js');
  const { Router } = await import('express');

  const drill = Router();
  drill.get(DRILL_PATH, (req: Request, res: Response) => {
    const ms = drillMs(req.query);
    const timer = setTimeout(() => {
      res.json(drillBody(ms));
    }, ms);
    requestSignal(res).addEventListener('abort', () => clearTimeout(timer));
  });

  const runtime = await startRuntime(loaded, { logger, telemetry, routers: [drill] });
  if (process.env.BENCH_DRILL_TRACE === '1') trace(runtime.mainServer);
  const announce = (): void => {
    const address = runtime.mainServer.address();
    if (address === null || typeof address === 'string') return;
    announceDrill(
      {
        type: 'drill-listening',
        port: address.port,
        readiness: { port: address.port, path: '/ready' },
      },
      // The orchestrator going away is a shutdown like any other: the runtime's SIGTERM path.
      () => process.kill(process.pid, 'SIGTERM'),
    );
  };
  if (runtime.mainServer.listening) announce();
  else runtime.mainServer.once('listening', announce);
}

interface Traced {
  readonly port: number;
  readonly acceptedAt: number;
  requests: number;
}

function trace(server: Server): void {
  const wall = (): number => performance.timeOrigin + performance.now();
  const emit = (kind: string, fields: Record<string, unknown>): void => {
    process.stdout.write(
      `${JSON.stringify({ event: 'drill.trace', ts: new Date().toISOString(), at: wall(), kind, ...fields })}\n`,
    );
  };
  const sockets = new Map<Socket, Traced>();
  let signalAt: number | undefined;
  const acceptedAfterSignal: Traced[] = [];
  process.once('SIGTERM', () => {
    signalAt = wall();
  });
  const closedAfterSignal: Record<string, number>[] = [];
  server.on('connection', (socket: Socket) => {
    const traced: Traced = { port: socket.remotePort ?? 0, acceptedAt: wall(), requests: 0 };
    sockets.set(socket, traced);
    if (signalAt !== undefined) acceptedAfterSignal.push(traced);
    socket.once('close', () => {
      sockets.delete(socket);
      if (signalAt === undefined) return;
      closedAfterSignal.push({
        port: traced.port,
        requests: traced.requests,
        bytes_read: socket.bytesRead,
        closed_ms_after_signal: Number((wall() - signalAt).toFixed(1)),
      });
    });
  });
  server.on('request', (req: IncomingMessage) => {
    const traced = sockets.get(req.socket);
    if (traced !== undefined) traced.requests += 1;
  });
  const observe = (kind: string, original: () => void): void => {
    const open = [...sockets.entries()].filter(([socket]) => !socket.destroyed);
    original();
    const destroyed = open
      .filter(([socket]) => socket.destroyed)
      .map(([socket, traced]) => ({
        port: traced.port,
        requests: traced.requests,
        bytes_read: socket.bytesRead,
        accepted_ms_before: Number((wall() - traced.acceptedAt).toFixed(1)),
      }));
    emit(kind, { open: open.length, destroyed });
  };
  const closeIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => observe('close_idle', closeIdle);
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => observe('close_all', closeAll);
  // The runtime closes the listening socket through net.Server#close (http.Server#close calls it
  // too), so the listener's close is seen there.
  const netClose: (this: NetServer, callback?: (error?: Error) => void) => NetServer =
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its `this` below
    NetServer.prototype.close;
  NetServer.prototype.close = function (this: NetServer, callback?: (error?: Error) => void) {
    if (this === server) emit('listener_close', { open: sockets.size });
    return netClose.call(this, callback);
  };
  // Pipes are written synchronously on Linux: this line is out before the process ends.
  process.once('exit', () => {
    emit('accepted_after_signal', {
      connections: acceptedAfterSignal.map((t) => ({
        port: t.port,
        requests: t.requests,
        accepted_ms_after_signal: Number((t.acceptedAt - (signalAt ?? 0)).toFixed(1)),
      })),
    });
    emit('closed_after_signal', { connections: closedAfterSignal });
  });
}

void main();
