/**
 * `npm run bench:serve`: serving latency and throughput after the Feast benchmark protocol.
 *
 * For each store (LMDB, Redis) and feature set (50 features from 10 group-bys, 250 from 50; 5 windowed
 * features each), it preloads tiles for `--keys` entities, starts the serving API in a child process (so the
 * load generator never shares its event loop), then for batch sizes 1, 10, 50, 100 measures:
 * - latency p50/p95/p99 at a fixed request rate (`--rate`, autocannon `overallRate`), timed per response
 *   with hrtime (autocannon's own histogram has 1 ms resolution, too coarse for sub-ms figures);
 * - maximum throughput (`--connections` concurrent connections, no rate limit);
 * - the floor: an empty fastify route at the same rate, and a raw `store.readTiles` of the same
 *   (group-by, key) pairs in this process; `ratio` = Tessera p99 / (empty route p99 + raw read p99);
 * - the serving core without HTTP (plan, read, decode, assemble, JSON) in this process, for a breakdown.
 * The fixed rate is `--rate` capped at half the measured maximum, so latency is never measured in overload.
 *
 * Options: --keys N (default 100000) --duration S (5) --rate R (200) --connections C (8)
 *          --stores lmdb,redis --features 50,250 --batches 1,10,50,100
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
import type { OnlineStore, StoreConfig, TileRequest, TileWrite } from '../src/online/store.ts';
import { createServeApp } from '../src/serve/app.ts';
import { createFeatureService, type FeatureService } from '../src/serve/feature-service.ts';
import { startRedis } from '../test/support/servers.ts';

/** The slice of autocannon's API used here (the package ships no types). */
interface AutocannonInstance
  extends PromiseLike<{ requests: { average: number }; errors: number; non2xx: number }> {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
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
  stores: ('lmdb' | 'redis')[];
  features: number[];
  batches: number[];
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, def: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
  };
  const list = (name: string, def: string) =>
    get(name, def)
      .split(',')
      .map((s) => s.trim());
  return {
    keys: Number(get('keys', '100000')),
    duration: Number(get('duration', '5')),
    rate: Number(get('rate', '200')),
    connections: Number(get('connections', '8')),
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

/** Seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Preloads tiles as a stream worker would leave them (events over the last day, compacted to the newest
 * event): `TEMPLATES` distinct tile sets per group-by, entity i uses template i % TEMPLATES.
 */
export async function preload(
  store: OnlineStore,
  groupBys: readonly GroupByDef[],
  keys: number,
  now: number,
): Promise<number> {
  const r = rng(7);
  let written = 0;
  for (const g of groupBys) {
    const agg = createGroupAggregator(g);
    const id = groupById(g);
    const templates: { level: number; start: number; bytes: Uint8Array }[][] = [];
    for (let t = 0; t < TEMPLATES; t++) {
      const tiles = new TileSet(agg, allWindows(g));
      const n = 1 + Math.floor(r() * 6);
      let newest = 0;
      for (let e = 0; e < n; e++) {
        const ts = now - Math.floor(r() * 20 * HOUR);
        newest = Math.max(newest, ts);
        tiles.add({ entity_id: 'x', ts, [g.aggregations[1]!.input!]: r() * 100 }, ts, e);
      }
      tiles.compact(newest);
      templates.push(
        [...tiles.tiles()].map((x) => ({ level: x.level, start: x.start, bytes: agg.encode(x.irs) })),
      );
    }
    let batch: TileWrite[] = [];
    for (let k = 0; k < keys; k++) {
      for (const t of templates[k % TEMPLATES]!) batch.push({ groupBy: id, key: entity(k), ...t });
      if (batch.length >= 20_000) {
        await store.commit({ tiles: batch });
        written += batch.length;
        batch = [];
      }
    }
    await store.commit({ tiles: batch });
    written += batch.length;
  }
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
  rps: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function load(
  url: string,
  path: string,
  body: () => string,
  opts: { duration: number; rate?: number; connections: number },
): Promise<Latency> {
  const times: number[] = [];
  const instance = autocannon({
    url,
    connections: opts.connections,
    duration: opts.duration,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    requests: [
      {
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: body() }),
      },
    ],
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status === 200) times.push(ms);
  });
  const result = await instance;
  times.sort((a, b) => a - b);
  return {
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    p99: percentile(times, 99),
    rps: result.requests.average,
    errors: result.errors + result.non2xx,
  };
}

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
    await store.readTiles(requests);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    p99: percentile(times, 99),
    rps: NaN,
    errors: 0,
  };
}

/** The serving core without HTTP: plan, one store read, decode, assemble (in this process). */
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
    JSON.stringify(await service.fetchJoins([join], rows));
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    p99: percentile(times, 99),
    rps: NaN,
    errors: 0,
  };
}

async function spawnServer(config: {
  store: StoreConfig;
  groups: number;
}): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(config)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once('line', resolve);
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
    `bench:serve — keys ${args.keys}, ${args.duration}s per run, fixed rate ${args.rate} req/s, ` +
      `max throughput with ${args.connections} connections; ${process.platform} ${process.arch}, node ${process.version}`,
  );
  for (const kind of args.stores) {
    const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-serve-'));
    const redis = kind === 'redis' ? await startRedis() : null;
    onInterrupt(() => redis?.stop());
    if (kind === 'redis' && !redis) {
      console.log('redis-server not installed: skipping the Redis runs');
      continue;
    }
    try {
      for (const features of args.features) {
        const groups = features / 5;
        const config: { store: StoreConfig; groups: number } = {
          store:
            kind === 'lmdb'
              ? { kind: 'lmdb', path: joinPath(dir, `store-${features}`) }
              : { kind: 'redis', url: redis!.url, prefix: `bench${features}:` },
          groups,
        };
        const set = featureSet(groups);
        const store = openStore(config.store);
        const t0 = performance.now();
        const tiles = await preload(store, set.groupBys, args.keys, now);
        console.log(
          `${kind}, ${features} features / ${groups} group-bys: preloaded ${tiles} tiles for ${args.keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
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
                  entity_id: entity(Math.floor(r() * args.keys)),
                })),
              });
            const path = `/v1/features/${set.join.name}`;
            // Warm up JIT and caches; find the peak, then measure latency at a rate the server can sustain.
            await load(server.url, path, body, { duration: 1, connections: 2 });
            const peak = await load(server.url, path, body, {
              duration: args.duration,
              connections: args.connections,
            });
            const rate = Math.max(1, Math.min(args.rate, Math.floor(peak.rps / 2)));
            // At low rates run longer (up to 20 s) so percentiles rest on ~100 samples.
            const atRate = {
              duration: Math.min(20, Math.max(args.duration, Math.ceil(100 / rate))),
              rate,
              connections: Math.min(args.connections, rate),
            };
            const fixed = await load(server.url, path, body, atRate);
            const empty = await load(server.url, '/floor/empty', body, atRate);
            const raw = await rawRead(store, set.groupBys, batch, args.keys);
            const core = await inProcess(service, set.join.name, batch, args.keys);
            const floor = empty.p99 + raw.p99;
            rows.push([
              kind,
              String(features),
              String(batch),
              String(rate),
              fmt(fixed.p50),
              fmt(fixed.p95),
              fmt(fixed.p99),
              fmt(peak.rps),
              fmt(core.p99),
              fmt(empty.p99),
              fmt(raw.p99),
              fmt(fixed.p99 / floor),
              String(fixed.errors + peak.errors),
            ]);
            console.log(
              `  batch ${batch}: p99 ${fmt(fixed.p99)} ms, max ${fmt(peak.rps)} req/s, floor p99 ${fmt(floor)} ms`,
            );
          }
        } finally {
          server.proc.kill('SIGTERM');
          await new Promise((resolve) => server.proc.once('exit', resolve));
          await store.close();
        }
      }
    } finally {
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const header = [
    'store',
    'features',
    'rows',
    'rate/s',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'max req/s',
    'no-HTTP p99',
    'empty p99',
    'raw read p99',
    'p99/floor',
    'errors',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log('\n' + line(header));
  for (const r of rows) console.log(line(r));
}

// Run only when executed (other benchmarks and profiling scripts import featureSet/preload).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const childIndex = process.argv.indexOf('--child');
  if (childIndex >= 0) await child(JSON.parse(process.argv[childIndex + 1]!));
  else await main();
}
