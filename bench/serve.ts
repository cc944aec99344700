/**
 * `npm run bench:serve`: serving latency and throughput after the Feast benchmark protocol.
 *
 * For each store (LMDB, Redis) and feature set (50 features from 10 group-bys, 250 from 50; 5 windowed
 * features each), it preloads tiles for `--keys` entities (default 1,000,000, in large store commits, with
 * progress), starts the serving API in a child process (so the load generator never shares the server's
 * event loop), then for batch sizes 1, 10, 50, 100 measures, `--repeat` times, quoting medians:
 * - latency p50/p95/p99 at a FIXED request rate, open loop (paced-load.ts; autocannon's rate limit sends
 *   each second's quota in a burst), timed per response with hrtime;
 * - `srv p50`/`srv p99`: the same responses' server-side time, from their `Server-Timing` header (fastify's
 *   onRequest to the response body ready). Client latency adds the generator's lateness (it shares this
 *   machine), sockets and scheduling; the server time excludes those, but also any time a request waited
 *   before fastify read it (e.g. behind a busy event loop or in the kernel's queue), so it is a lower bound
 *   on what a client sees. Targets are read against `p99 ms`; the gap to `srv p99` is noise or queueing.
 *   It still counts time the server waited mid-request for a CPU or for Redis (same machine), so load
 *   from other processes inflates it too;
 * - maximum throughput with autocannon (`--connections` concurrent connections, no rate limit);
 * - the floor, in the same run: an empty fastify route at the same rate, and a raw read of the same
 *   (group-by, key) pairs (`readEntities` with a visitor doing nothing where the store has it, else `readTiles`); `p99/floor` = Tessera p99 / (empty route p99 + raw read p99);
 * - the serving core without HTTP (plan, read, windows, assembly, JSON) in this process, for a breakdown.
 * The fixed rate is `--rate` capped at a third of the measured maximum, so latency is not measured in
 * overload even when other load on the machine slows the server between the two measurements.
 *
 * Options: --keys N (1000000) --duration S (5) --rate R (200) --connections C (8) --repeat K (3)
 *          --stores lmdb,redis --features 50,250 --batches 1,10,50,100
 * Env: BENCH_CHILD_FLAGS="--trace-gc ..." passes node flags to the server child (its non-JSON stdout lines
 *      go to stderr), e.g. to check whether GC pauses make the p99 tail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, statSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createGroupAggregator } from '../src/aggregate/group-aggregator.ts';
import { TileSet } from '../src/aggregate/tiles.ts';
import { allWindows } from '../src/aggregate/window.ts';
import type { ColumnBuilder } from '../src/define/col.ts';
import type { GroupByDef, JoinDef } from '../src/define/types.ts';
import { avg, col, count, eventSource, groupBy, join, max, sum } from '../src/index.ts';
import { createFetchGroupBys, emptyGroupValues } from '../src/online/fetch-group-bys.ts';
import { groupById } from '../src/online/group-by-id.ts';
import { openStore } from '../src/online/open-store.ts';
import type { EntityTiles, OnlineStore, StoreConfig, TileRequest, TileWrite } from '../src/online/store.ts';
import { createServeApp } from '../src/serve/app.ts';
import { createFeatureService, type FeatureService } from '../src/serve/feature-service.ts';
import { joinRowsJson } from '../src/serve/feature-json.ts';
import { startRedis } from '../test/support/servers.ts';
import { pacedLoad } from './paced-load.ts';
import { rng } from '../test/support/rng.ts';
import { exitOnHelp, optionReader } from './args.ts';

/** The slice of autocannon's API used here (the package ships no types). */
type AutocannonInstance = PromiseLike<{ requests: { average: number }; errors: number; non2xx: number }>;
const autocannon = createRequire(import.meta.url)('autocannon') as (
  opts: Record<string, unknown>,
) => AutocannonInstance;

const HOUR = 3_600_000;
const TEMPLATES = 64;

interface Args {
  keys: number;
  duration: number;
  rate: number;
  connections: number;
  repeat: number;
  stores: ('lmdb' | 'redis')[];
  features: number[];
  batches: number[];
}

function parseArgs(argv: string[]): Args {
  exitOnHelp(argv, import.meta.url);
  const get = optionReader(argv);
  const list = (name: string, def: string) =>
    get(name, def)
      .split(',')
      .map((s) => s.trim());
  return {
    keys: Number(get('keys', '1000000')),
    duration: Number(get('duration', '5')),
    rate: Number(get('rate', '200')),
    connections: Number(get('connections', '8')),
    repeat: Math.max(1, Number(get('repeat', '3'))),
    stores: list('stores', 'lmdb,redis') as ('lmdb' | 'redis')[],
    features: list('features', '50,250').map(Number),
    batches: list('batches', '1,10,50,100').map(Number),
  };
}

/** A feature set: `groups` group-bys of 5 windowed features each, all keyed by entity_id, in one join. */
export function featureSet(groups: number): { groupBys: GroupByDef[]; join: JoinDef } {
  // Built in a loop, so typed as a plain record: the static column checks cannot see these names.
  const schema: Record<string, ColumnBuilder> = { entity_id: col.string(), ts: col.timestamp() };
  for (let i = 0; i < groups; i++) schema[`v${i}`] = col.float();
  const events = eventSource({
    name: 'bench_events',
    path: 'bench-events.parquet',
    timeColumn: 'ts',
    schema,
  });
  const groupBys: GroupByDef[] = Array.from({ length: groups }, (_, i) =>
    groupBy({
      name: `g${i}`,
      source: events,
      keys: ['entity_id'],
      aggregations: [
        count({ windows: ['1h', '1d'] }),
        sum(`v${i}`, { windows: ['1d'] }),
        avg(`v${i}`, { windows: ['1d'] }),
        max(`v${i}`, { windows: ['1h'] }),
      ] as never,
    }),
  );
  const parts = groupBys.map((g) => ({ groupBy: g, keys: { entity_id: 'entity_id' } }));
  const model = join({ name: `model_${groups * 5}`, left: events, parts: parts as never }) as JoinDef;
  return { groupBys, join: model };
}

const entity = (i: number) => `e${i}`;

/**
 * Preloads tiles as a stream worker would leave them (events over the last day, compacted to the newest
 * event): `TEMPLATES` distinct tile sets per group-by, entity i uses template i % TEMPLATES. Tiles go
 * straight to the store (no worker, no log): with `loadEntities` when the store has it (whole entities,
 * each distinct tile list encoded once), else in large commits; `progress` is called about every 2 s.
 */
export async function preload(
  store: OnlineStore,
  groupBys: readonly GroupByDef[],
  keys: number,
  now: number,
  progress?: (entities: number, total: number) => void,
): Promise<number> {
  const r = rng(7);
  const ids = groupBys.map(groupById);
  // templates[g][t]: the stored tiles of template t of group-by g.
  const templates = groupBys.map((g) => {
    const agg = createGroupAggregator(g);
    return Array.from({ length: TEMPLATES }, () => {
      const tiles = new TileSet(agg, allWindows(g));
      const n = 1 + Math.floor(r() * 6);
      let newest = 0;
      for (let e = 0; e < n; e++) {
        const ts = now - Math.floor(r() * 20 * HOUR);
        newest = Math.max(newest, ts);
        tiles.add({ entity_id: 'x', ts, [g.aggregations[1]!.input!]: r() * 100 }, ts, e);
      }
      tiles.compact(newest);
      return tiles
        .refs()
        .map(({ level, start }) => ({ level, start, bytes: tiles.encodeTile(level, start)! }));
    });
  });
  const total = keys * groupBys.length;
  let written = 0;
  let entities = 0;
  let lastReport = performance.now();
  const report = () => {
    if (progress && performance.now() - lastReport > 2000) {
      progress(entities, total);
      lastReport = performance.now();
    }
  };
  if (store.loadEntities) {
    // The bulk path: whole entities in large transactions/pipelines, each template encoded once.
    let batch: EntityTiles[] = [];
    for (let k = 0; k < keys; k++) {
      const key = entity(k);
      for (let g = 0; g < ids.length; g++) {
        const tiles = templates[g]![k % TEMPLATES]!;
        batch.push({ groupBy: ids[g]!, key, tiles });
        written += tiles.length;
      }
      if (batch.length >= 50_000) {
        await store.loadEntities(batch);
        entities += batch.length;
        batch = [];
        report();
      }
    }
    await store.loadEntities(batch);
    entities += batch.length;
    progress?.(entities, total);
    return written;
  }
  let batch: TileWrite[] = [];
  for (let k = 0; k < keys; k++) {
    const key = entity(k);
    for (let g = 0; g < ids.length; g++) {
      const groupBy = ids[g]!;
      for (const t of templates[g]![k % TEMPLATES]!)
        batch.push({ groupBy, key, level: t.level, start: t.start, bytes: t.bytes });
      entities++;
    }
    if (batch.length >= 100_000) {
      await store.commit({ tiles: batch });
      written += batch.length;
      batch = [];
      report();
    }
  }
  await store.commit({ tiles: batch });
  written += batch.length;
  progress?.(entities, total);
  return written;
}

// ---------------------------------------------------------------------------------------------------------
// Child: the serving process (API + floor routes), so autocannon's event loop never shares the server's.

async function child(config: { store: StoreConfig; groups: number }): Promise<void> {
  const { groupBys, join: model } = featureSet(config.groups);
  const store = openStore(config.store);
  const service = createFeatureService({
    repo: { sources: [model.left], groupBys, joins: [model] },
    groupById,
    fetchGroups: createFetchGroupBys(store),
    emptyValues: emptyGroupValues,
  });
  const app = createServeApp({ service });
  app.post('/floor/empty', async () => ({}));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(JSON.stringify({ url }) + '\n');
  process.on('SIGTERM', () => void app.close().then(() => store.close().then(() => process.exit(0))));
}

// ---------------------------------------------------------------------------------------------------------
// Parent: preload, spawn the server, drive load, print tables.

interface Latency {
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

/** Client latency at a fixed rate, with the server's own time of the same responses (`srv`). */
interface FixedRate extends Latency {
  lateMs: number;
  srv: { p50: number; p99: number };
}

/** One repeat of one batch size. */
interface Run {
  peak: number;
  fixed: FixedRate;
  empty: Latency;
  raw: Latency;
  core: Latency;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(times: number[], errors = 0): Latency {
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p95: percentile(times, 95), p99: percentile(times, 99), errors };
}

function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[v.length >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/** Maximum throughput: autocannon with `connections` concurrent connections and no rate limit. */
async function maxThroughput(
  url: string,
  path: string,
  body: () => string,
  opts: { duration: number; connections: number },
): Promise<{ rps: number; errors: number }> {
  const result = await autocannon({
    url,
    connections: opts.connections,
    duration: opts.duration,
    requests: [
      {
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: body() }),
      },
    ],
  });
  return { rps: result.requests.average, errors: result.errors + result.non2xx };
}

/** Latency at a fixed rate, open loop (paced-load.ts). */
async function atRate(
  url: string,
  path: string,
  body: () => string,
  opts: { durationS: number; rate: number },
): Promise<FixedRate> {
  const r = await pacedLoad({ url, path, body, rate: opts.rate, durationS: opts.durationS });
  const srv = summarize(r.serverMs);
  return { ...summarize(r.latencies, r.errors), lateMs: r.lateMs, srv: { p50: srv.p50, p99: srv.p99 } };
}

const ignore = () => {};

async function rawRead(
  store: OnlineStore,
  groupBys: readonly GroupByDef[],
  batch: number,
  keys: number,
): Promise<Latency> {
  const r = rng(batch);
  const times: number[] = [];
  const ids = groupBys.map(groupById);
  const deadline = performance.now() + 2000;
  while (performance.now() < deadline) {
    const requests: TileRequest[] = [];
    for (let i = 0; i < batch; i++) {
      const key = entity(Math.floor(r() * keys));
      for (const id of ids) requests.push({ groupBy: id, key });
    }
    const t = performance.now();
    // What the fetch path reads: readEntities (in place) where the store has it.
    if (store.readEntities) await store.readEntities(requests, ignore);
    else await store.readTiles(requests);
    times.push(performance.now() - t);
  }
  return summarize(times);
}

/** The serving core without HTTP: plan, one store read, windows, assembly, JSON (in this process). */
async function inProcess(
  service: FeatureService,
  join: string,
  batch: number,
  keys: number,
): Promise<Latency> {
  const r = rng(batch + 1);
  const times: number[] = [];
  const deadline = performance.now() + 2000;
  while (performance.now() < deadline) {
    const rows = Array.from({ length: batch }, () => ({ entity_id: entity(Math.floor(r() * keys)) }));
    const t = performance.now();
    joinRowsJson((await service.fetchJoinRows([join], rows)).joins[0]!);
    times.push(performance.now() - t);
  }
  return summarize(times);
}

async function spawnServer(config: {
  store: StoreConfig;
  groups: number;
}): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_CHILD_FLAGS ? process.env.BENCH_CHILD_FLAGS.split(' ').filter(Boolean) : []),
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      JSON.stringify(config),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (l) => {
      // The child's first JSON line; anything else it prints (e.g. --trace-gc) goes to stderr.
      if (l.startsWith('{')) resolve(l);
      else process.stderr.write(l + '\n');
    });
    proc.once('exit', (code) => reject(new Error(`bench server exited with ${code} before listening`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, proc };
}

const fmt = (n: number) =>
  Number.isNaN(n) ? '-' : n < 10 ? n.toFixed(3) : n < 100 ? n.toFixed(1) : n.toFixed(0);

/** Ctrl-C stops the processes this benchmark started (redis-server, the server child) before exiting. */
const interruptHandlers: (() => unknown)[] = [];
function onInterrupt(fn: () => unknown): void {
  if (interruptHandlers.length === 0) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        void Promise.allSettled(interruptHandlers.map((h) => h())).then(() => process.exit(130));
      });
    }
  }
  interruptHandlers.push(fn);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const now = Date.now();
  const rows: string[][] = [];
  console.log(
    `bench:serve — keys ${args.keys}, ${args.repeat} repeats (medians), ${args.duration}s per run, fixed rate ${args.rate} req/s ` +
      `(open loop), max throughput with ${args.connections} connections; ${process.platform} ${process.arch}, node ${process.version}`,
  );
  for (const kind of args.stores) {
    const redis = kind === 'redis' ? await startRedis() : null;
    onInterrupt(() => redis?.stop());
    if (kind === 'redis' && !redis) {
      console.log('redis-server not installed: skipping the Redis runs');
      continue;
    }
    try {
      for (const features of args.features) {
        const groups = features / 5;
        // One feature set's data at a time (removed below), so disk and Redis memory hold one preload.
        const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-serve-'));
        onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
        const config: { store: StoreConfig; groups: number } = {
          store:
            kind === 'lmdb'
              ? { kind: 'lmdb', path: joinPath(dir, 'store') }
              : { kind: 'redis', url: redis!.url, prefix: `bench${features}:` },
          groups,
        };
        const set = featureSet(groups);
        const keys = await keysThatFit(kind, redis?.url ?? '', set.groupBys, args.keys, now);
        const store = openStore(config.store);
        const t0 = performance.now();
        const tiles = await preload(store, set.groupBys, keys, now, (done, total) => {
          const s = (performance.now() - t0) / 1000;
          process.stdout.write(
            `\r${kind}, ${features} features: preloading ${done}/${total} (group-by, key) entities, ${Math.round(done / s)}/s, ETA ${Math.round(((total - done) * s) / done)}s   `,
          );
        });
        console.log(
          `\n${kind}, ${features} features / ${groups} group-bys: preloaded ${tiles} tiles for ${keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
        );
        const service = createFeatureService({
          repo: { sources: [set.join.left], groupBys: set.groupBys, joins: [set.join] },
          groupById,
          fetchGroups: createFetchGroupBys(store),
          emptyValues: emptyGroupValues,
        });
        const server = await spawnServer(config);
        onInterrupt(() => server.proc.kill('SIGTERM'));
        try {
          for (const batch of args.batches) {
            const r = rng(batch * 31 + features);
            const body = () =>
              JSON.stringify({
                rows: Array.from({ length: batch }, () => ({
                  entity_id: entity(Math.floor(r() * keys)),
                })),
              });
            const path = `/v1/features/${set.join.name}`;
            // Warm up JIT and caches, then find the peak; latency is measured at a rate the server sustains.
            await maxThroughput(server.url, path, body, { duration: 1, connections: 2 });
            const first = await maxThroughput(server.url, path, body, {
              duration: args.duration,
              connections: args.connections,
            });
            const rate = Math.max(1, Math.min(args.rate, Math.floor(first.rps / 3)));
            // At low rates run longer (up to 20 s) so percentiles rest on ~200 samples.
            const fixedOpts = {
              durationS: Math.min(20, Math.max(args.duration, Math.ceil(200 / rate))),
              rate,
            };
            const runs: Run[] = [];
            let errors = first.errors;
            let lateMs = 0;
            for (let k = 0; k < args.repeat; k++) {
              const peak =
                k === 0
                  ? first
                  : await maxThroughput(server.url, path, body, {
                      duration: args.duration,
                      connections: args.connections,
                    });
              const fixed = await atRate(server.url, path, body, fixedOpts);
              const empty = await atRate(server.url, '/floor/empty', body, fixedOpts);
              const raw = await rawRead(store, set.groupBys, batch, keys);
              const core = await inProcess(service, set.join.name, batch, keys);
              errors += (k === 0 ? 0 : peak.errors) + fixed.errors;
              lateMs = Math.max(lateMs, fixed.lateMs, empty.lateMs);
              runs.push({ peak: peak.rps, fixed, empty, raw, core });
            }
            const m = (f: (run: Run) => number) => median(runs.map(f));
            const p99 = m((x) => x.fixed.p99);
            const floor = m((x) => x.empty.p99) + m((x) => x.raw.p99);
            rows.push([
              kind,
              String(features),
              String(keys),
              String(batch),
              String(rate),
              fmt(m((x) => x.fixed.p50)),
              fmt(m((x) => x.fixed.p95)),
              fmt(p99),
              fmt(m((x) => x.fixed.srv.p50)),
              fmt(m((x) => x.fixed.srv.p99)),
              fmt(m((x) => x.peak)),
              fmt(m((x) => x.core.p99)),
              fmt(m((x) => x.empty.p99)),
              fmt(m((x) => x.raw.p99)),
              fmt(p99 / floor),
              String(errors),
            ]);
            console.log(
              `  batch ${batch}: p99 ${fmt(p99)} ms at ${rate}/s (runs: ${runs.map((x) => fmt(x.fixed.p99)).join(', ')}; ` +
                `server's own p99 ${runs.map((x) => fmt(x.fixed.srv.p99)).join(', ')}), ` +
                `max ${fmt(m((x) => x.peak))} req/s, floor p99 ${fmt(floor)} ms, generator late by <= ${fmt(lateMs)} ms`,
            );
          }
        } finally {
          server.proc.kill('SIGTERM');
          await new Promise((resolve) => server.proc.once('exit', resolve));
          await store.close();
          rmSync(dir, { recursive: true, force: true });
          if (redis) await flushRedis(redis.url);
        }
      }
    } finally {
      await redis?.stop();
    }
  }
  const header = [
    'store',
    'features',
    'keys',
    'rows',
    'rate/s',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'srv p50',
    'srv p99',
    'max req/s',
    'no-HTTP p99',
    'empty p99',
    'raw read p99',
    'p99/floor',
    'errors',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(
    `\nmedians of ${args.repeat} runs; srv = the server's own time (Server-Timing), a lower bound on the client's`,
  );
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

/** Keys preloaded to measure a feature set's bytes per key before the real preload. */
const PROBE_KEYS = 10_000;

/**
 * `keys`, or fewer if a preload of that many would not fit: a Redis store holds one string per
 * (group-by, key), ~0.5 KiB here, so 250 features (50 group-bys) × 1M keys need ~27 GiB of memory; LMDB
 * needs about as much disk. It preloads `PROBE_KEYS` keys, measures what they took (Redis `used_memory`,
 * LMDB's allocated file blocks), and caps the keys at 60% of free memory (Redis) or half the free disk
 * (LMDB), saying so loudly: a benchmark that exhausts the machine measures swap or dies mid-run.
 */
async function keysThatFit(
  kind: 'lmdb' | 'redis',
  redisUrl: string,
  groupBys: readonly GroupByDef[],
  keys: number,
  now: number,
): Promise<number> {
  const probe = Math.min(keys, PROBE_KEYS);
  let perKey: number;
  let budget: number;
  let what: string;
  if (kind === 'redis') {
    const { Redis } = await import('ioredis');
    const client = new Redis(redisUrl);
    try {
      const used = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
      const before = await used();
      const store = openStore({ kind: 'redis', url: redisUrl, prefix: 'probe:' });
      await preload(store, groupBys, probe, now);
      await store.close();
      perKey = (await used()) - before;
      await client.flushall();
    } finally {
      client.disconnect();
    }
    budget = 0.6 * freemem();
    what = 'of Redis memory';
  } else {
    const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-probe-'));
    try {
      const store = openStore({ kind: 'lmdb', path: joinPath(dir, 'store') });
      await preload(store, groupBys, probe, now);
      await store.close();
      perKey = statSync(joinPath(dir, 'store', 'data.mdb')).blocks * 512;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const disk = statfsSync(tmpdir());
    budget = 0.5 * disk.bavail * disk.bsize;
    what = `of disk in ${tmpdir()}`;
  }
  perKey /= probe;
  const fits = Math.max(PROBE_KEYS, Math.floor(budget / perKey));
  if (fits >= keys) return keys;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  console.log(
    `\n*** ${kind}, ${groupBys.length} group-bys: ${keys} keys would need ~${gib(keys * perKey)} GiB ${what} ` +
      `(${Math.round(perKey / groupBys.length)} B per (group-by, key), measured on ${probe} keys); this machine can ` +
      `spare ~${gib(budget)} GiB, so this feature set preloads ${fits} keys instead (--keys to choose; the table's ` +
      `keys column says what each row used) ***`,
  );
  return fits;
}

/** Frees a finished feature set's Redis memory (the benchmark's own redis-server; one set at a time). */
async function flushRedis(url: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url);
  await client.flushall();
  await client.quit();
}

// Run only when executed (other benchmarks and profiling scripts import featureSet/preload).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const childIndex = process.argv.indexOf('--child');
  if (childIndex >= 0) await child(JSON.parse(process.argv[childIndex + 1]!));
  else await main();
}
