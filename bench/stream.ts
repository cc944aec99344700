/**
 * `npm run bench:stream`: stream processing throughput and freshness for the fraud example.
 *
 * 1. Ingest: validate + append the generated charges to the embedded log (fsync'ed batches) → events/s.
 * 2. Workers: one stream worker drains the log into the store, updating the tiles of all fraud group-bys;
 *    events per second of wall time and per CPU-second of this process (= events/s/core: the worker is
 *    single-threaded JS, so CPU time is what one core spends). `+store CPU` also counts the CPU redis-server
 *    spent (INFO cpu) on the Redis runs, where the commit scripts run; LMDB's work is in this process.
 * 3. Freshness: `tessera serve` embedded (store, log, workers, API in one process) under a background stream
 *    of live charges; probe events are POSTed to /v1/events/charges and a fetch of the probe card is polled
 *    until the event is counted. Freshness = ingest call start → first fetch that sees the value.
 *
 * Options: --log file|nats (file: the embedded log; nats: a nats-server -js started for each store)
 *          --events N (default 200000) --stores lmdb,redis --rate R (max background events/s, 2000; capped
 *          at a quarter of the measured worker rate)
 *          --probes P (300) --batch B (worker batch size; default the worker's, as in `tessera serve`)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { planCharges, type Charge } from '../examples/fraud/generate.ts';
import { loadRepo } from '../src/cli/load-repo.ts';
import type { SourceDef } from '../src/define/types.ts';
import { groupById } from '../src/online/group-by-id.ts';
import { ingestEvents } from '../src/online/ingest.ts';
import { openFileLog } from '../src/online/log/file-log.ts';
import { openNatsLog } from '../src/online/log/nats-log.ts';
import { openStore } from '../src/online/open-store.ts';
import type { StoreConfig } from '../src/online/store.ts';
import { streamTopics } from '../src/online/topics.ts';
import { createStreamWorker, DEFAULT_BATCH_SIZE } from '../src/online/worker.ts';
import { startEmbedded } from '../src/serve/embedded.ts';
import { startNats, startRedis, type TestServer } from '../test/support/servers.ts';
import { optionReader } from './args.ts';

const REPO_DIR = new URL('../examples/fraud/features', import.meta.url).pathname;

interface Args {
  events: number;
  stores: ('lmdb' | 'redis')[];
  rate: number;
  probes: number;
  batch: number;
  log: 'file' | 'nats';
}

function parseArgs(argv: string[]): Args {
  const get = optionReader(argv);
  return {
    events: Number(get('events', '200000')),
    stores: get('stores', 'lmdb,redis').split(',') as ('lmdb' | 'redis')[],
    rate: Number(get('rate', '2000')),
    probes: Number(get('probes', '300')),
    batch: Number(get('batch', String(DEFAULT_BATCH_SIZE))),
    log: get('log', 'file') === 'nats' ? 'nats' : 'file',
  };
}

/** The generated charges as JSON events (ground truth column dropped, as a real producer would send). */
function charges(events: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const day of planCharges({ events, seed: 11 }).days()) {
    for (const c of day) out.push(toEvent(c));
  }
  return out;
}

function toEvent(c: Charge): Record<string, unknown> {
  const { fraud_pattern: _label, ...event } = c;
  return event;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function throughput(
  args: Args,
  kind: 'lmdb' | 'redis',
  redis: TestServer | null,
  nats: TestServer | null,
  events: Record<string, unknown>[],
) {
  const repo = await loadRepo(REPO_DIR, { checkFiles: false });
  const source = repo.sources.find((s) => s.name === 'charges') as SourceDef;
  const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-stream-'));
  const log = nats ? openNatsLog(nats.url, { prefix: 'benchtp' }) : openFileLog(joinPath(dir, 'log'));
  const storeConfig: StoreConfig =
    kind === 'lmdb'
      ? { kind: 'lmdb', path: joinPath(dir, 'store') }
      : { kind: 'redis', url: redis!.url, prefix: `bs${Date.now()}:` };
  const store = openStore(storeConfig);
  try {
    let t = performance.now();
    for (let i = 0; i < events.length; i += 5000) {
      await ingestEvents(log, source, repo.groupBys, events.slice(i, i + 5000), { origin: 'bench' });
    }
    const ingestSeconds = (performance.now() - t) / 1000;

    const [topic] = streamTopics(source, repo.groupBys, 1);
    const worker = await createStreamWorker({
      log,
      store,
      topic: topic!,
      partition: 0,
      groupById,
      batchSize: args.batch,
    });
    // The Redis store's commit scripts run in redis-server: its CPU is part of the cost per event.
    const server = redis ? new Redis(redis.url) : null;
    const serverCpu0 = server ? await redisCpuSeconds(server) : 0;
    const cpu = process.cpuUsage();
    t = performance.now();
    await worker.drain();
    const wall = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const serverCpuSeconds = server ? (await redisCpuSeconds(server)) - serverCpu0 : 0;
    server?.disconnect();
    const applied = worker.stats().recordsRead;
    return {
      groupBys: topic!.groupBys.length,
      ingestPerSec: events.length / ingestSeconds,
      workerPerSec: applied / wall,
      perCore: applied / cpuSeconds,
      perCoreWithServer: applied / (cpuSeconds + serverCpuSeconds),
      cpuSeconds,
      serverCpuSeconds,
      wall,
    };
  } finally {
    await log.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function freshness(
  args: Args,
  rate: number,
  kind: 'lmdb' | 'redis',
  redis: TestServer | null,
  nats: TestServer | null,
  pool: Record<string, unknown>[],
) {
  const repo = await loadRepo(REPO_DIR, { checkFiles: false });
  const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-fresh-'));
  const server = await startEmbedded({
    repo,
    dataDir: dir,
    port: 0,
    store: kind,
    ...(nats ? { log: 'nats', natsUrl: nats.url } : { log: 'embedded' }),
    ...(redis ? { redisUrl: redis.url, redisPrefix: `bf${Date.now()}:` } : {}),
  });
  const post = (events: unknown[]) =>
    fetch(`${server.url}/v1/events/charges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    }).then(async (r) => {
      if (!r.ok) throw new Error(`ingest failed: ${r.status} ${await r.text()}`);
    });
  let stop = false;
  let sent = 0;
  // Background stream: live charges (retimed to now) at --rate events/s, in 20 batches per second.
  const background = (async () => {
    let i = 0;
    const perTick = Math.max(1, Math.round(rate / 20));
    while (!stop) {
      const now = Date.now();
      const batch = Array.from({ length: perTick }, () => ({ ...pool[i++ % pool.length]!, ts: now }));
      await post(batch);
      sent += batch.length;
      await sleep(50);
    }
  })();
  const samples: number[] = [];
  try {
    await sleep(500);
    const template = pool[0]!;
    for (let p = 0; p < args.probes; p++) {
      const card = `probe_${Date.now()}_${p}`;
      const started = performance.now();
      await post([{ ...template, card_id: card, charge_id: `probe_${p}`, amount: 42, ts: Date.now() }]);
      for (;;) {
        const res = await fetch(`${server.url}/v1/groupbys/card_velocity?card_id=${card}`);
        const body = (await res.json()) as { features: Record<string, unknown> };
        if (body.features.card_velocity_count_lifetime === 1) break;
        if (performance.now() - started > 10_000) throw new Error(`probe ${card} not visible after 10 s`);
        await sleep(1);
      }
      samples.push(performance.now() - started);
      await sleep(10);
    }
  } finally {
    stop = true;
    await background;
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  samples.sort((a, b) => a - b);
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples.at(-1)!,
    n: samples.length,
    sent,
  };
}

/** CPU seconds redis-server has used (user + system, all its threads), from INFO cpu. */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

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
  console.log(
    `bench:stream — ${args.events} fraud charges, worker batch ${args.batch}, ${args.log === 'nats' ? 'NATS JetStream' : 'embedded file'} log; node ${process.version}`,
  );
  const t = performance.now();
  const events = charges(args.events);
  console.log(`generated ${events.length} charges in ${((performance.now() - t) / 1000).toFixed(1)}s`);
  const rows: string[][] = [];
  for (const kind of args.stores) {
    const redis = kind === 'redis' ? await startRedis() : null;
    onInterrupt(() => redis?.stop());
    if (kind === 'redis' && !redis) {
      console.log('redis-server not installed: skipping the Redis runs');
      continue;
    }
    // A fresh nats-server per store, so one run's streams never feed the next.
    const nats = args.log === 'nats' ? await startNats() : null;
    onInterrupt(() => nats?.stop());
    if (args.log === 'nats' && !nats) {
      await redis?.stop();
      throw new Error('--log nats needs nats-server on PATH');
    }
    try {
      const tp = await throughput(args, kind, redis, nats, events);
      console.log(
        `${kind}: ingest ${Math.round(tp.ingestPerSec)} ev/s; worker ${Math.round(tp.workerPerSec)} ev/s wall, ` +
          `${Math.round(tp.perCore)} ev/s per core (${tp.cpuSeconds.toFixed(1)} CPU-s, ${tp.groupBys} group-bys)` +
          (redis
            ? `; with redis-server's ${tp.serverCpuSeconds.toFixed(1)} CPU-s: ${Math.round(tp.perCoreWithServer)} ev/s per core`
            : ''),
      );
      // Freshness is measured below capacity (a quarter of the measured worker rate), so it reports
      // pipeline delay rather than a growing backlog.
      const rate = Math.max(20, Math.min(args.rate, Math.floor(tp.workerPerSec / 4)));
      const fr = await freshness(args, rate, kind, redis, nats, events.slice(0, 50_000));
      console.log(
        `${kind}: freshness at ${rate} ev/s background: p50 ${fr.p50.toFixed(1)} ms, p99 ${fr.p99.toFixed(1)} ms over ${fr.n} probes`,
      );
      rows.push([
        kind,
        String(tp.groupBys),
        String(Math.round(tp.ingestPerSec)),
        String(Math.round(tp.workerPerSec)),
        String(Math.round(tp.perCore)),
        String(Math.round(tp.perCoreWithServer)),
        String(rate),
        fr.p50.toFixed(1),
        fr.p99.toFixed(1),
        fr.max.toFixed(1),
      ]);
    } finally {
      await redis?.stop();
      await nats?.stop();
    }
  }
  const header = [
    'store',
    'group-bys',
    'ingest ev/s',
    'worker ev/s',
    'ev/s/core',
    '+store CPU',
    'bg ev/s',
    'fresh p50 ms',
    'fresh p99 ms',
    'max ms',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log('\n' + line(header));
  for (const r of rows) console.log(line(r));
}

await main();
