import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { JoinDef } from '../define/types.ts';
import { openStore } from '../online/open-store.ts';
import { uploadGroupBys } from '../online/upload.ts';
import { gbCounter } from '../online/usage-counters.ts';
import { startEmbedded, type EmbeddedServer } from './embedded.ts';
import type { ServedRepo } from './feature-service.ts';

export interface OnlineDemoOptions {
  readonly repo: ServedRepo;
  /** The join whose features the printed examples fetch. */
  readonly join: string;
  /** Online state (LMDB store + log); wiped first so every demo run starts from the uploaded history. */
  readonly dataDir: string;
  readonly port?: number;
  /**
   * Upload the offline history into tiles before serving (default true), or an upload already running
   * (`uploadHistoryInThread`, started with the same `dataDir`) to wait for; false serves an empty store.
   */
  readonly upload?: boolean | Promise<HistoryUpload>;
  /** Events the live stream replays with `ts` set to now (e.g. generated charges). */
  readonly pool: readonly Record<string, unknown>[];
  /** Live events per second (default 20). */
  readonly rate?: number;
  /** Stop after this long; default: run until SIGINT/SIGTERM. */
  readonly serveForMs?: number;
  readonly print?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What `uploadHistory` loaded. */
export interface HistoryUpload {
  readonly groupBys: number;
  /** Events of the largest source read (each source is read once for all its group-bys). */
  readonly events: number;
  /** Entities of all group-bys. */
  readonly entities: number;
  readonly seconds: number;
}

/**
 * Wipes `dataDir` and uploads the history of every group-by into its LMDB store (`dataDir/store`) with
 * cutoff = now, so stream workers started afterwards apply exactly the events from now on.
 *
 * @example
 * const r = await uploadHistory(repo, 'examples/fraud/data/online'); // { groupBys: 9, events: 198949, ... }
 */
export async function uploadHistory(
  repo: Pick<ServedRepo, 'groupBys'>,
  dataDir: string,
  onProgress?: (p: { groupBy: number; events: number; entities: number }) => void,
): Promise<HistoryUpload> {
  rmSync(dataDir, { recursive: true, force: true });
  const started = performance.now();
  const store = openStore({ kind: 'lmdb', path: `${dataDir}/store` });
  let entities = 0;
  let events = 0;
  try {
    let done = 0;
    const results = await uploadGroupBys({
      groupBys: repo.groupBys,
      until: Date.now(),
      store,
      ...(onProgress ? { onProgress: (p) => onProgress({ groupBy: done, ...p }) } : {}),
      onGroupByDone: () => {
        done++;
      },
    });
    for (const r of results) {
      entities += r.entities;
      events = Math.max(events, r.events);
    }
    // As `tessera upload` does, so the demo's /v1/usage shows the uploaded history, not 0 events.
    await store.addCounters(
      Object.fromEntries(
        results.flatMap((r) => [
          [gbCounter(r.groupById, 'upload_ms'), Math.round(r.elapsedMs)],
          [gbCounter(r.groupById, 'upload_events'), r.events],
        ]),
      ),
    );
  } finally {
    await store.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { groupBys: repo.groupBys.length, events, entities, seconds };
}

const BOOT = new URL('../online/worker-thread-boot.mjs', import.meta.url);
const ENTRY = new URL('./history-upload-thread.ts', import.meta.url).href;

/**
 * `uploadHistory` of the repo in `repoDir`, in a worker thread: the upload is single-threaded JavaScript,
 * so it runs on another core alongside the caller's own work (`npm start` backfills meanwhile) instead of
 * after it. `result` rejects with the thread's error; `cancel` stops the thread (the store it leaves is
 * wiped by the next upload).
 *
 * @example
 * const upload = uploadHistoryInThread('examples/fraud/features', 'examples/fraud/data/online');
 * await backfill();
 * await runOnlineDemo({ ..., dataDir: 'examples/fraud/data/online', upload: upload.result });
 */
export function uploadHistoryInThread(
  repoDir: string,
  dataDir: string,
): { readonly result: Promise<HistoryUpload>; cancel(): Promise<void> } {
  const worker = new Worker(BOOT, { workerData: { entry: ENTRY, repoDir, dataDir }, name: 'tessera upload' });
  const result = new Promise<HistoryUpload>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', (e) => reject(new Error(`history upload failed: ${e.message}`, { cause: e })));
    // After a message or an error this settles nothing more.
    worker.once('exit', (code) => reject(new Error(`history upload stopped (thread exit code ${code})`)));
  });
  // The caller awaits `result` later; a failure before that must not be an unhandled rejection.
  result.catch(() => {});
  return {
    result,
    cancel: async () => {
      await worker.terminate();
    },
  };
}

function progressLine(n: number) {
  return (p: { groupBy: number; events: number; entities: number }) => {
    if (!process.stdout.isTTY) return;
    process.stdout.write(
      `\rupload    group-by ${Math.min(p.groupBy + 1, n)}/${n}: ${p.events.toLocaleString('en-US')} events, ${p.entities.toLocaleString('en-US')} entities`.padEnd(
        78,
      ),
    );
  };
}

/**
 * The online half of the demo: uploads the history of every group-by into tiles (cutoff = now), starts the
 * embedded server (store, log, workers, API), feeds it a small live stream of events through the HTTP
 * ingest route, and prints the URL, sample `curl` commands and a live fetch.
 *
 * @example
 * await runOnlineDemo({ repo, join: 'fraud_model', dataDir: 'examples/fraud/data/online', pool: charges });
 * // serve     http://127.0.0.1:8080 ...
 */
export async function runOnlineDemo(opts: OnlineDemoOptions): Promise<void> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const join = opts.repo.joins.find((j) => j.name === opts.join);
  if (!join) throw new Error(`online demo: the repo has no join '${opts.join}'`);
  const source = join.left;
  if (opts.pool.length === 0) throw new Error('online demo: the live event pool is empty');

  const upload = opts.upload ?? true;
  if (upload === false) rmSync(opts.dataDir, { recursive: true, force: true });
  else {
    const n = opts.repo.groupBys.length;
    if (upload === true)
      print(`upload    loading the history of ${n} group-bys into tiles (reads each source once)...`);
    const r = upload === true ? await uploadHistory(opts.repo, opts.dataDir, progressLine(n)) : await upload;
    if (upload === true && process.stdout.isTTY) process.stdout.write('\r'.padEnd(79) + '\r');
    print(
      `upload    ${r.groupBys} group-bys: ${r.events.toLocaleString('en-US')} events → tiles of ` +
        `${r.entities.toLocaleString('en-US')} entities in ${r.seconds.toFixed(1)}s (cutoff: now` +
        `${upload === true ? '' : '; ran alongside the backfill'})`,
    );
  }

  // Workers in the serving thread: the demo stream (20 events/s) needs no thread of its own, and starting
  // one (it loads the definitions again) would delay serving by a second or more.
  const server = await startEmbedded({
    repo: opts.repo,
    dataDir: opts.dataDir,
    port: opts.port ?? 8080,
    workerThreads: false,
  });
  let stop = false;
  let sent = 0;
  const rate = opts.rate ?? 20;
  const live = (async () => {
    let i = 0;
    while (!stop) {
      const now = Date.now();
      const batch = Array.from({ length: Math.max(1, Math.round(rate / 5)) }, () => ({
        ...opts.pool[i++ % opts.pool.length]!,
        [source.timeColumn]: now,
      }));
      try {
        await ingest(server, source.name, batch);
        sent += batch.length;
      } catch (error) {
        print(`live      ingest failed: ${(error as Error).message}`);
      }
      await sleep(200);
    }
  })();

  try {
    // Serving already: the URL first, then a fetch once the first live events are in the tiles.
    printExamples(print, server, join, opts.pool[0]!, source.name, source.timeColumn);
    await sleep(500);
    await server.drain();
    const sample = await fetchOne(server, join, opts.pool[0]!);
    print(
      `\nlive fetch (first ${Object.keys(sample).length} of the features):\n${JSON.stringify(sample, null, 2)}`,
    );
    print(
      `\nserving with a live stream of ${rate} charges/s; ${opts.serveForMs ? `stopping in ${opts.serveForMs / 1000}s` : 'Ctrl-C to stop'}`,
    );
    if (opts.serveForMs !== undefined) await sleep(opts.serveForMs);
    else await waitForSignal();
  } finally {
    stop = true;
    await live;
    await server.close();
    print(`served    ${sent} live events ingested; stopped`);
  }
}

async function ingest(server: EmbeddedServer, source: string, events: unknown[]): Promise<void> {
  const res = await fetch(`${server.url}/v1/events/${source}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
}

function keysOf(join: JoinDef, event: Record<string, unknown>): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const part of join.parts) {
    for (const column of Object.values(part.keyMapping)) {
      const v = event[column];
      if (v !== null && v !== undefined) keys[column] = String(v);
    }
  }
  return keys;
}

async function fetchOne(server: EmbeddedServer, join: JoinDef, event: Record<string, unknown>) {
  const keys = keysOf(join, event);
  const all = (await server.service.fetchJoins([join.name], [nullMissing(join, keys)])).joins[join.name]![0]!;
  return Object.fromEntries(Object.entries(all.features).slice(0, 8));
}

/** Key columns absent from an event (e.g. no device for a POS charge) are sent as null. */
function nullMissing(join: JoinDef, keys: Record<string, string>): Record<string, string | null> {
  const out: Record<string, string | null> = { ...keys };
  for (const part of join.parts)
    for (const c of Object.values(part.keyMapping)) if (!(c in out)) out[c] = null;
  return out;
}

function printExamples(
  print: (line: string) => void,
  server: EmbeddedServer,
  join: JoinDef,
  event: Record<string, unknown>,
  source: string,
  timeColumn: string,
): void {
  const keys = nullMissing(join, keysOf(join, event));
  const query = Object.entries(keys)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join('&');
  const missing = Object.entries(keys).filter(([, v]) => v === null);
  print(`\nserve     ${server.url}  (store: LMDB, log: embedded, workers: in process)`);
  print(`\n  # features of one charge (GET; every key column of the join)`);
  if (missing.length === 0) print(`  curl '${server.url}/v1/features/${join.name}?${query}'`);
  print(`  curl -s -XPOST ${server.url}/v1/features/${join.name} -H 'content-type: application/json' \\`);
  print(`    -d '${JSON.stringify({ keys })}'`);
  print(`\n  # one group-by, ingest an event, metrics`);
  const part = join.parts[0]!;
  const gbQuery = Object.values(part.keyMapping)
    .map((c) => `${c}=${encodeURIComponent(String(keys[c] ?? ''))}`)
    .join('&');
  print(`  curl '${server.url}/v1/groupbys/${part.groupBy.name}?${gbQuery}'`);
  // A heredoc so the shell fills in the current time and the JSON needs no escaping.
  const { [timeColumn]: _old, ...fields } = event;
  print(`  curl -XPOST ${server.url}/v1/events/${source} -H 'content-type: application/json' -d @- <<EOF`);
  print(`  {"events": [${JSON.stringify(fields).slice(0, -1)}, "${timeColumn}": $(date +%s%3N)}]}`);
  print('EOF');
  print(`  curl ${server.url}/metrics`);
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
