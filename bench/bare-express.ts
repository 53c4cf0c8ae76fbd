// Scenario (a): a bare Express 5 app with the same no-I/O JSON route and nothing else (Express
// defaults, no middleware, no logging, no tracing). Started by bench/run.ts; reports its port over
// IPC. The bench-only CPU_PATH reports this process's own CPU time and RSS.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import {
  CPU_PATH,
  cpuReport,
  exitWithParent,
  type ListeningMessage,
  NOOP_BODY,
  NOOP_PATH,
} from './protocol';

const app = express();
app.get(NOOP_PATH, (_req, res) => {
  res.json(NOOP_BODY);
});
app.get(CPU_PATH, (_req, res) => {
  res.json(cpuReport());
});

const server = createServer(app);

function stop(): void {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
exitWithParent(stop);
server.listen(0, '127.0.0.1', () => {
  const message: ListeningMessage = {
    type: 'listening',
    port: (server.address() as AddressInfo).port,
  };
  process.send?.(message);
});
