/**
 * `npm run bench:stream`: can one core keep up with N charges/s of live traffic? Stream processing
 * throughput and freshness for the fraud example (all its group-bys, one worker, one partition).
 *
 * 1. Ingest: validate + append the generated charges to the log (fsync'ed batches of 5000) → events/s.
 * 2. Workers, per store and per timing (`--timing`): one stream worker drains the log into a fresh store,
 *    updating the tiles of all fraud group-bys. Reported per second of wall time and per CPU-second of this
 *    process (`ev/s/core`: the worker is single-threaded JS, so CPU time is what one core spends);
 *    `+store CPU` also counts the CPU redis-server spent (INFO cpu) on the Redis runs, where the commit
 *    scripts run (LMDB's work is in this process, so there it equals ev/s/core).
 *    Timings: `replay` feeds the generated history as is (~120 days, so each batch spans weeks of event
 *    time: what a catch-up or backfill from the log looks like); `live` re-stamps the same events, in order,
 *    at `--live-rate` events/s of event time ending at now, as a live stream at that rate would look (hot
 *    keys such as the gmail.com e-mail domain then get thousands of events per second).
 * 3. Baseline, in the same run on the same log (stream-baseline.ts): a hand-written minimal exactly-once
 *    consumer (per-key count + sum in a Map, every touched key and the offset written in one transaction per
 *    batch of the same size to the same store kind): the floor any consumer persisting per-key state per
 *    batch pays. `baseline` is its events per CPU-second including the store's CPU, and `ratio` is
 *    Tessera's `+store CPU` ÷ that (1.0 = as cheap as the floor). Tessera and the baseline alternate which
 *    runs first across repeats.
 * 4. Freshness (once per store): `tessera serve` embedded (store, log, workers, API in one process) under a
 *    background stream of live charges; probe events are POSTed to /v1/events/charges and a fetch of the
 *    probe card is polled until the event is counted. Freshness = ingest call start → first fetch that sees
 *    the value.
 *
 * Options: --events N (default 200000) --stores lmdb,redis (Redis: a redis-server started by the bench)
 *          --timing replay|live|both (both) --live-rate R (event-time rate of `live`, 100000 events/s)
 *          --repeat R (drains per store and timing, 1; the table shows medians) --warmup W (untimed drains
 *          of Tessera and the baseline before those, 1; 0 to time cold starts) --batch B (worker and
 *          baseline batch size; default the worker's, as in `tessera serve`)
 *          --log file|nats (file: the embedded log; nats: a nats-server -js started for each store)
 *          --probes P (300) --rate R (max background events/s of the freshness run, 2000; capped at a
 *          quarter of the slowest measured worker rate, so it measures pipeline delay, not a backlog)
 *
 * The machine's load moves absolute numbers; the ratio to the baseline, measured back to back, much less.
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
import type { EventLog } from '../src/online/log/event-log.ts';
import { openFileLog } from '../src/online/log/file-log.ts';
import { openNatsLog } from '../src/online/log/nats-log.ts';
import { openStore } from '../src/online/open-store.ts';
import { streamTopics, type Topic } from '../src/online/topics.ts';
import { createStreamWorker, DEFAULT_BATCH_SIZE } from '../src/online/worker.ts';
import { startEmbedded } from '../src/serve/embedded.ts';
import { startNats, startRedis, type TestServer } from '../test/support/servers.ts';
import { exitOnHelp, optionReader } from './args.ts';
import { drainBaseline, lmdbSink, redisSink, type BaselineSink } from './stream-baseline.ts';

const REPO_DIR = new URL('../examples/fraud/features', import.meta.url).pathname;

type Timing = 'replay' | 'live';

interface Args {
  events: number;
  stores: ('lmdb' | 'redis')[];
  timings: Timing[];
  liveRate: number;
  repeat: number;
  warmup: number;
  rate: number;
  probes: number;
  batch: number;
  log: 'file' | 'nats';
}

function parseArgs(argv: string[]): Args {
  exitOnHelp(argv, import.meta.url);
  const get = optionReader(argv);
  const timing = get('timing', 'both');
  if (!['replay', 'live', 'both'].includes(timing))
    throw new Error(`--timing must be replay, live or both, got '${timing}'`);
  const positive = (name: string, fallback: string) => {
    const v = Number(get(name, fallback));
    if (!(v > 0) || !Number.isInteger(v))
      throw new Error(`--${name} must be a positive integer, got '${get(name, fallback)}'`);
    return v;
  };
  const nonNegative = (v: string) => {
    const n = Number(v);
    if (!(n >= 0) || !Number.isInteger(n)) throw new Error(`--warmup must be an integer >= 0, got '${v}'`);
    return n;
  };
  return {
    events: positive('events', '200000'),
    stores: get('stores', 'lmdb,redis').split(',') as ('lmdb' | 'redis')[],
    timings: timing === 'both' ? ['replay', 'live'] : [timing as Timing],
    liveRate: positive('live-rate', '100000'),
    repeat: positive('repeat', '1'),
    warmup: nonNegative(get('warmup', '1')),
    rate: positive('rate', '2000'),
    probes: positive('probes', '300'),
    batch: positive('batch', String(DEFAULT_BATCH_SIZE)),
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

/** The same events in the same order, stamped `perSecond` apart in event time, the last one at `endMs`. */
function liveStamped(events: Record<string, unknown>[], perSecond: number, endMs: number) {
  const n = events.length;
  return events.map((e, i) => ({ ...e, ts: endMs - Math.round(((n - 1 - i) * 1000) / perSecond) }));
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One measured drain: records, wall seconds, CPU seconds of this process and of redis-server. */
interface Drain {
  records: number;
  wall: number;
  cpu: number;
  serverCpu: number;
}

/** Runs `drain` timed; on the Redis runs, `server`'s CPU is counted too. */
async function measure(server: Redis | null, drain: () => Promise<number>): Promise<Drain> {
  const serverCpu0 = server ? await redisCpuSeconds(server) : 0;
  const cpu = process.cpuUsage();
  const t = performance.now();
  const records = await drain();
  const wall = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  const serverCpu = server ? (await redisCpuSeconds(server)) - serverCpu0 : 0;
  return { records, wall, cpu: (used.user + used.system) / 1e6, serverCpu };
}

interface Run {
  /** Tessera ev/s of wall time, per process CPU-second, and per CPU-second with redis-server's. */
  workerPerSec: number;
  perCore: number;
  perCoreWithServer: number;
  /** The baseline's events per CPU-second with the store's, and Tessera's ratio to it. */
  baselinePerCore: number;
  ratio: number;
}

/** Ingests `events` into a fresh log, then drains it `--repeat` times with Tessera and with the baseline. */
async function throughput(
  args: Args,
  kind: 'lmdb' | 'redis',
  redis: TestServer | null,
  nats: TestServer | null,
  timing: Timing,
  events: Record<string, unknown>[],
): Promise<{ groupBys: number; ingestPerSec: number; runs: Run[] }> {
  const repo = await loadRepo(REPO_DIR, { checkFiles: false });
  const source = repo.sources.find((s) => s.name === 'charges') as SourceDef;
  const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-stream-'));
  const log = nats ? openNatsLog(nats.url, { prefix: `bench${timing}` }) : openFileLog(joinPath(dir, 'log'));
  const server = redis ? new Redis(redis.url) : null;
  try {
    const t = performance.now();
    for (let i = 0; i < events.length; i += 5000) {
      await ingestEvents(log, source, repo.groupBys, events.slice(i, i + 5000), { origin: 'bench' });
    }
    const ingestPerSec = events.length / ((performance.now() - t) / 1000);
    const [topic] = streamTopics(source, repo.groupBys, 1);
    // Untimed drains first: a worker runs for hours, so the figure to report is the JIT-compiled steady
    // state, not V8 compiling (on its background threads, which count as CPU) during the first seconds.
    for (let w = 0; w < args.warmup; w++) {
      await drainTessera(args, kind, redis, log, topic!, joinPath(dir, `warm${w}`));
      await drainFloor(args, kind, redis, log, topic!, source, joinPath(dir, `warmbase${w}`));
    }
    const runs: Run[] = [];
    for (let rep = 0; rep < args.repeat; rep++) {
      const tessera = () => drainTessera(args, kind, redis, log, topic!, joinPath(dir, `store${rep}`));
      const baseline = () => drainFloor(args, kind, redis, log, topic!, source, joinPath(dir, `base${rep}`));
      // Alternate the order, so neither always runs on a warmer (or more loaded) machine.
      let tp: Awaited<ReturnType<typeof tessera>>;
      let base: Awaited<ReturnType<typeof baseline>>;
      if (rep % 2 === 0) {
        tp = await tessera();
        base = await baseline();
      } else {
        base = await baseline();
        tp = await tessera();
      }
      checkSameEvents(tp, base);
      const t = tp.drain;
      const b = base.drain;
      const perCoreWithServer = t.records / (t.cpu + t.serverCpu);
      const baselinePerCore = b.records / (b.cpu + b.serverCpu);
      runs.push({
        workerPerSec: t.records / t.wall,
        perCore: t.records / t.cpu,
        perCoreWithServer,
        baselinePerCore,
        ratio: perCoreWithServer / baselinePerCore,
      });
    }
    return { groupBys: topic!.groupBys.length, ingestPerSec, runs };
  } finally {
    server?.disconnect();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A connection to the Redis runs' server, emptied so each drain starts from the same (empty) store. */
async function emptyRedis(redis: TestServer | null): Promise<Redis | null> {
  if (!redis) return null;
  const server = new Redis(redis.url);
  await server.flushall();
  return server;
}

/** One Tessera stream worker draining the log into a fresh store. */
async function drainTessera(
  args: Args,
  kind: 'lmdb' | 'redis',
  redis: TestServer | null,
  log: EventLog,
  topic: Topic,
  path: string,
) {
  const server = await emptyRedis(redis);
  const store = openStore(
    kind === 'lmdb' ? { kind, path } : { kind, url: redis!.url, prefix: `bs${Date.now()}:` },
  );
  try {
    const worker = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      groupById,
      batchSize: args.batch,
    });
    const drain = await measure(server, async () => {
      await worker.drain();
      return worker.stats().recordsRead;
    });
    return { drain, counters: worker.stats().groupBys };
  } finally {
    server?.disconnect();
    await store.close();
    rmSync(path, { recursive: true, force: true });
  }
}

/** The baseline consumer (stream-baseline.ts) draining the same log into a fresh store of the same kind. */
async function drainFloor(
  args: Args,
  kind: 'lmdb' | 'redis',
  redis: TestServer | null,
  log: EventLog,
  topic: Topic,
  source: SourceDef,
  path: string,
) {
  const server = await emptyRedis(redis);
  const sink: BaselineSink = kind === 'lmdb' ? lmdbSink(path) : redisSink(redis!.url, `bb${Date.now()}:`);
  let counted = new Map<string, number>();
  try {
    const drain = await measure(server, async () => {
      const res = await drainBaseline({
        log,
        topic: topic.name,
        partition: 0,
        source,
        groupBys: topic.groupBys,
        groupById,
        batchSize: args.batch,
        sink,
      });
      counted = res.counted;
      return res.records;
    });
    return { drain, counted };
  } finally {
    server?.disconnect();
    await sink.close();
    rmSync(path, { recursive: true, force: true });
  }
}

/** The baseline must have read the records and counted the events the worker did, or the ratio means nothing. */
function checkSameEvents(
  tp: Awaited<ReturnType<typeof drainTessera>>,
  base: Awaited<ReturnType<typeof drainFloor>>,
): void {
  if (tp.drain.records !== base.drain.records)
    throw new Error(`baseline read ${base.drain.records} records, the worker ${tp.drain.records}`);
  for (const [name, n] of base.counted) {
    const c = tp.counters[name];
    if (c === undefined || c.applied + c.lateBeyondRetention !== n)
      throw new Error(
        `baseline counted ${n} events of ${name}, the worker ${c ? c.applied + c.lateBeyondRetention : 'none'}`,
      );
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
    `bench:stream — ${args.events} fraud charges, worker batch ${args.batch}, ${args.log === 'nats' ? 'NATS JetStream' : 'embedded file'} log, ` +
      `timing ${args.timings.join(' + ')}${args.timings.includes('live') ? ` (live: ${args.liveRate} ev/s of event time)` : ''}, ` +
      `${args.warmup} untimed warm-up + ${args.repeat} timed drain(s) each; node ${process.version}`,
  );
  const t = performance.now();
  const replay = charges(args.events);
  console.log(`generated ${replay.length} charges in ${((performance.now() - t) / 1000).toFixed(1)}s`);
  const rows: string[][] = [];
  const freshRows: string[][] = [];
  let groupBys = 0;
  const whole = (x: number) => String(Math.round(x));
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
      let slowest = Infinity;
      for (const timing of args.timings) {
        // Live: stamped just before ingest, so the stream ends now (as the worker's watermark cap expects).
        const events = timing === 'live' ? liveStamped(replay, args.liveRate, Date.now()) : replay;
        const tp = await throughput(args, kind, redis, nats, timing, events);
        groupBys = tp.groupBys;
        const m = (f: (r: Run) => number) => median(tp.runs.map(f));
        slowest = Math.min(
          slowest,
          m((r) => r.workerPerSec),
        );
        console.log(
          `${kind} ${timing}: ingest ${whole(tp.ingestPerSec)} ev/s; worker ${whole(m((r) => r.workerPerSec))} ev/s wall, ` +
            `${whole(m((r) => r.perCore))} ev/s/core` +
            (redis ? `, ${whole(m((r) => r.perCoreWithServer))} with redis-server's CPU` : '') +
            `; baseline ${whole(m((r) => r.baselinePerCore))} ev/s/core; ratio ${tp.runs.map((r) => r.ratio.toFixed(3)).join(', ')}`,
        );
        rows.push([
          kind,
          timing,
          whole(tp.ingestPerSec),
          whole(m((r) => r.workerPerSec)),
          whole(m((r) => r.perCore)),
          whole(m((r) => r.perCoreWithServer)),
          whole(m((r) => r.baselinePerCore)),
          m((r) => r.ratio).toFixed(3),
        ]);
      }
      // Freshness is measured below capacity (a quarter of the slowest measured worker rate), so it reports
      // pipeline delay rather than a growing backlog.
      const rate = Math.max(20, Math.min(args.rate, Math.floor(slowest / 4)));
      (await emptyRedis(redis))?.disconnect();
      const fr = await freshness(args, rate, kind, redis, nats, replay.slice(0, 50_000));
      console.log(
        `${kind}: freshness at ${rate} ev/s background: p50 ${fr.p50.toFixed(1)} ms, p99 ${fr.p99.toFixed(1)} ms over ${fr.n} probes`,
      );
      freshRows.push([
        kind,
        String(rate),
        String(fr.n),
        fr.p50.toFixed(1),
        fr.p99.toFixed(1),
        fr.max.toFixed(1),
      ]);
    } finally {
      await redis?.stop();
      await nats?.stop();
    }
  }
  console.log(
    `\nThroughput (${groupBys} group-bys, median of ${args.repeat}; per core = per CPU-second; +store CPU and baseline ` +
      "include redis-server's CPU; ratio = +store CPU / baseline):",
  );
  printTable(
    ['store', 'timing', 'ingest ev/s', 'worker ev/s', 'ev/s/core', '+store CPU', 'baseline', 'ratio'],
    rows,
  );
  console.log('\nFreshness (ingest call → first fetch that sees the event):');
  printTable(['store', 'bg ev/s', 'probes', 'p50 ms', 'p99 ms', 'max ms'], freshRows);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

await main();
