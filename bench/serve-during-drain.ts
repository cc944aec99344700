/**
 * `npx tsx bench/serve-during-drain.ts`: how a stream worker catching up affects serving, with the workers
 * on the serving thread (`--no-worker-threads`) and in a worker thread (the default).
 *
 * For each store and mode: appends `--events` fraud charges to a fresh embedded log, starts `tessera serve`
 * embedded on it (the worker starts draining at once), and until the worker has applied everything measures
 * - the serving thread's event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution): p99, max;
 * - fetch latency of one fraud_model row at `--rate` requests/s, open loop (paced-load.ts), issued from a
 *   separate thread so the load generator never waits on the server's event loop: p50, p99, max;
 * - the drain's events per second;
 * then the same for `--idle` seconds after the drain (same fetch load, nothing to apply): the floor that
 * the machine's other load sets (on a shared machine, a descheduled serving thread shows up as loop delay).
 * On Redis it also reports, per phase, redis-server's longest command (SLOWLOG: every command blocks all
 * clients of that Redis while it runs), how many took >= 10 ms, and redis-server CPU seconds.
 *
 * Options: --events N (200000) --stores lmdb,redis --modes inline,threads --rate R (200) --idle S (5)
 *          --batch B (worker batch size; default the worker's) --repeat K (1)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { planCharges } from '../examples/fraud/generate.ts';
import { loadRepo } from '../src/cli/load-repo.ts';
import type { SourceDef } from '../src/define/types.ts';
import { ingestEvents } from '../src/online/ingest.ts';
import { openFileLog } from '../src/online/log/file-log.ts';
import { startEmbedded } from '../src/serve/embedded.ts';
import { startRedis, type TestServer } from '../test/support/servers.ts';
import { pacedLoad } from './paced-load.ts';
import { openRedisClient, type RedisClient } from '../src/online/redis-client.ts';
import { optionReader } from './args.ts';

const REPO_DIR = new URL('../examples/fraud/features', import.meta.url).pathname;
const BOOT = new URL('../src/online/worker-thread-boot.mjs', import.meta.url);

interface LoadSetup {
  readonly url: string;
  readonly bodies: string[];
  readonly rate: number;
}

/** The load thread: paced fetches in 1 s rounds until told to stop, then posts every latency. */
async function loadThread(setup: LoadSetup): Promise<void> {
  let stop = false;
  parentPort!.once('message', () => (stop = true));
  const latencies: number[] = [];
  let errors = 0;
  let lateMs = 0;
  let i = 0;
  while (!stop) {
    const r = await pacedLoad({
      url: setup.url,
      path: '/v1/features/fraud_model',
      body: () => setup.bodies[i++ % setup.bodies.length]!,
      rate: setup.rate,
      durationS: 1,
    });
    latencies.push(...r.latencies);
    errors += r.errors;
    lateMs = Math.max(lateMs, r.lateMs);
  }
  parentPort!.postMessage({ latencies, errors, lateMs });
}

interface Args {
  events: number;
  stores: ('lmdb' | 'redis')[];
  modes: ('inline' | 'threads')[];
  rate: number;
  idle: number;
  batch: number | undefined;
  repeat: number;
}

function parseArgs(argv: string[]): Args {
  const get = optionReader(argv);
  return {
    events: Number(get('events', '200000')),
    stores: get('stores', 'lmdb,redis').split(',') as ('lmdb' | 'redis')[],
    modes: get('modes', 'inline,threads').split(',') as ('inline' | 'threads')[],
    rate: Number(get('rate', '200')),
    idle: Number(get('idle', '5')),
    batch: argv.includes('--batch') ? Number(get('batch', '')) : undefined,
    repeat: Number(get('repeat', '1')),
  };
}

/** Starts a Redis measurement: SLOWLOG of commands >= 1 ms, emptied; redis-server CPU seconds so far. */
async function redisMark(admin: RedisClient): Promise<{ cpu: number }> {
  await admin.config('SET', 'slowlog-log-slower-than', '1000');
  await admin.config('SET', 'slowlog-max-len', '100000');
  await admin.slowlog('RESET');
  return { cpu: redisCpu(await admin.info('cpu')) };
}

/** Redis since `redisMark`: longest command (ms, name), how many took >= 10 ms, CPU seconds. */
async function redisSince(admin: RedisClient, mark: { cpu: number }) {
  const cpu = redisCpu(await admin.info('cpu')) - mark.cpu;
  const log = (await admin.slowlog('GET', -1)) as [number, number, number, string[]][];
  let longest = 0;
  let name = '';
  let over10 = 0;
  for (const [, , us, argv] of log) {
    if (us / 1000 > longest) {
      longest = us / 1000;
      name = String(argv[0]).toUpperCase();
    }
    if (us >= 10_000) over10++;
  }
  return { longest, name, over10, cpu };
}

function redisCpu(info: string): number {
  const v = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return v('used_cpu_user') + v('used_cpu_sys');
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function run(
  args: Args,
  kind: 'lmdb' | 'redis',
  mode: 'inline' | 'threads',
  redis: TestServer | null,
  events: Record<string, unknown>[],
) {
  const repo = await loadRepo(REPO_DIR, { checkFiles: false });
  const source = repo.sources.find((s) => s.name === 'charges') as SourceDef;
  const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-drain-'));
  try {
    const log = openFileLog(joinPath(dir, 'log'));
    for (let i = 0; i < events.length; i += 5000)
      await ingestEvents(log, source, repo.groupBys, events.slice(i, i + 5000), { origin: 'bench' });
    await log.close();

    const admin = redis ? openRedisClient(redis.url) : null;
    const server = await startEmbedded({
      repo,
      dataDir: dir,
      port: 0,
      store: kind,
      workerThreads: mode === 'threads',
      ...(args.batch ? { batchSize: args.batch } : {}),
      ...(redis ? { redisUrl: redis.url, redisPrefix: `bd${Date.now()}:` } : {}),
    });
    try {
      const bodies = events
        .slice(0, 1000)
        .map((e) => JSON.stringify({ rows: [e] }))
        .filter((_, i) => i % 10 === 0);
      const measure = async (until: () => Promise<void>) => {
        const redisBefore = admin ? await redisMark(admin) : null;
        const delay = monitorEventLoopDelay({ resolution: 1 });
        const load = new Worker(BOOT, {
          workerData: {
            entry: import.meta.url,
            load: { url: server.url, bodies, rate: args.rate } satisfies LoadSetup,
          },
        });
        const results = new Promise<{ latencies: number[]; errors: number; lateMs: number }>(
          (resolve, reject) => {
            load.once('message', resolve);
            load.once('error', reject);
          },
        );
        const t0 = performance.now();
        const elu = perf.eventLoopUtilization();
        delay.enable();
        await until();
        delay.disable();
        const busy = perf.eventLoopUtilization(elu).utilization;
        const seconds = (performance.now() - t0) / 1000;
        load.postMessage('stop');
        const r = await results;
        await load.terminate();
        const lat = r.latencies.sort((a, b) => a - b);
        const redisSide = admin && redisBefore ? await redisSince(admin, redisBefore) : null;
        return {
          redisSide,
          seconds,
          busy,
          eldP99: delay.percentile(99) / 1e6,
          eldMax: delay.max / 1e6,
          fetches: lat.length,
          errors: r.errors,
          p50: percentile(lat, 50),
          p99: percentile(lat, 99),
          max: lat.at(-1) ?? NaN,
          lateMs: r.lateMs,
        };
      };
      const drain = await measure(async () => {
        while ((await server.progress())[0]!.lag > 0) await sleep(100);
      });
      const idle = await measure(() => sleep(args.idle * 1000));
      return { drainPerSec: events.length / drain.seconds, drain, idle };
    } finally {
      await server.close();
      await admin?.quit();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const events: Record<string, unknown>[] = [];
  for (const day of planCharges({ events: args.events, seed: 11 }).days())
    for (const { fraud_pattern: _label, ...event } of day) events.push(event);
  events.length = Math.min(events.length, args.events);
  const redis = args.stores.includes('redis') ? await startRedis() : null;
  if (args.stores.includes('redis') && !redis) throw new Error('redis-server not found; use --stores lmdb');
  const ms = (v: number) => v.toFixed(1).padStart(7);
  console.log(
    `serving during a drain of ${events.length} events, then ${args.idle} s idle (fetch: 1 fraud_model row at ${args.rate}/s, from another thread)\n` +
      'store  workers  phase  drain ev/s  loop busy  loop p99  loop max  fetch p50  fetch p99  fetch max  fetches  errors  redis: longest cmd  >=10ms  cpu s',
  );
  try {
    for (const kind of args.stores)
      for (let k = 0; k < args.repeat; k++)
        for (const mode of args.modes) {
          const r = await run(args, kind, mode, kind === 'redis' ? redis : null, events);
          for (const [phase, m] of [
            ['drain', r.drain],
            ['idle', r.idle],
          ] as const)
            console.log(
              `${kind.padEnd(6)} ${mode.padEnd(8)} ${phase.padEnd(5)} ${(phase === 'drain' ? String(Math.round(r.drainPerSec)) : '').padStart(11)} ${`${Math.round(m.busy * 100)}%`.padStart(10)} ${ms(m.eldP99)}   ${ms(m.eldMax)}   ${ms(m.p50)}    ${ms(m.p99)}    ${ms(m.max)}  ${String(m.fetches).padStart(7)}  ${String(m.errors).padStart(6)}` +
                (m.redisSide
                  ? `  ${ms(m.redisSide.longest)} ms ${m.redisSide.name.padEnd(8)}  ${String(m.redisSide.over10).padStart(6)}  ${m.redisSide.cpu.toFixed(1).padStart(5)}`
                  : '') +
                (m.lateMs > 20
                  ? `  (load thread up to ${m.lateMs.toFixed(0)} ms late: machine saturated)`
                  : ''),
            );
        }
  } finally {
    await redis?.stop();
  }
}

if (isMainThread) await main();
else await loadThread((workerData as { load: LoadSetup }).load);
