// Scenario (p), a reference and not one of the goals: bare-express.ts plus the one change
// to Express's request handling that ops-service makes for speed, keepShapes (req and res get
// Express's per-request properties before Express changes their prototypes, so V8 keeps one
// hidden class for them; see src/http/stable-shapes.ts). It shows how much of the gap to (a) is
// that fix rather than ops-service's own layers. Opt-in: BENCH_SCENARIOS=ap (or any set with p).
// The service's process settings for V8's heap (src/heap-tuned.ts), as keepShapes: this baseline
// and the service differ in their own code only.
import '../src/heap-tuned';
import express from 'express';
import { keepShapes } from '../src/http/stable-shapes';
import { NOOP_BODY, NOOP_PATH, serveBenchApp } from './protocol';

const app = express();
keepShapes(app);
app.get(NOOP_PATH, (_req, res) => {
  res.json(NOOP_BODY);
});
serveBenchApp(app);
