// V8's allocation-site pretenuring, turned off for the service's process. V8 watches the object
// and array literals of hot code: when nearly every object from one literal survives a scavenge
// while the young generation is at its largest, it allocates that literal's objects straight in
// the old generation from then on. A request's objects (its headers, router state, result rows)
// fit that pattern only by accident: 16 requests in flight at a scavenge, each holding objects it
// made a moment before. Once a few of its literals are pretenured, those old-generation objects
// point at the young ones made with them, the scavenger keeps everything an old object points at
// (dead or not, until the next full collection), and whole requests are copied into the old
// generation. That feeds the same statistics, so the state persists for the life of the process.
//
// Measured on GET /v1/orders/{id} (bench/README.md, "Garbage collection"): with pretenuring, each
// scavenge promoted about 1.7 MB and paused 3-5 ms, old space grew by 2.4 KB per request and RSS
// reached about 150 MB; without it, 8-40 KB and 0.7-0.9 ms, RSS about 110 MB, and the GET's CPU
// against a hand-written handler went from about 1.8 to 1.35 times. Nothing in the service keeps
// a request past its response (a heap snapshot during the load holds only the requests in
// flight): the old generation held dead objects that pointed at young ones.
//
// The flag is set from the code, first thing in the entry point, so `node dist/main.js` stays
// the command everywhere (Dockerfile, Kubernetes, npm start). An explicit choice on node's own
// command line (`node --allocation-site-pretenuring dist/main.js`) is left as it is.
import { setFlagsFromString } from 'node:v8';

export const NO_PRETENURING = '--no-allocation-site-pretenuring';

/** Node's command line already sets the flag one way or the other. */
function choiceOnCommandLine(execArgv: readonly string[]): boolean {
  return execArgv.some((arg) => /^--(no-)?allocation[-_]site[-_]pretenuring$/.test(arg));
}

/**
 * Turns V8's allocation-site pretenuring off unless node's command line chose; says whether it
 * did. Call it before anything else is loaded: a literal pretenured before the call stays so.
 */
export function tuneHeap(
  execArgv: readonly string[] = process.execArgv,
  setFlags: (flags: string) => void = setFlagsFromString,
): boolean {
  if (choiceOnCommandLine(execArgv)) return false;
  setFlags(NO_PRETENURING);
  return true;
}
