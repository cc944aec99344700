// Entry of a stream worker thread (worker-threads.ts): threads do not inherit the TypeScript loader that
// `bin/tessera.js` registers through the tsx API (nor vitest's), so register it here, then load the entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
