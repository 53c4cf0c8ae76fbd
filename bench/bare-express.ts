// Scenario (a): a bare Express 5 app with the same no-I/O JSON route and nothing else (Express
// defaults, no middleware, no logging, no tracing). Started by bench/run.ts; reports its port over
// IPC. The bench-only CPU_PATH reports this process's own CPU time and RSS.
import express from 'express';
import { NOOP_BODY, NOOP_PATH, serveBenchApp } from './protocol';

const app = express();
app.get(NOOP_PATH, (_req, res) => {
  res.json(NOOP_BODY);
});
serveBenchApp(app);
