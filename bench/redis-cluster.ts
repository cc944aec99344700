/**
 * The Redis store on a single Redis vs a Redis Cluster (3 masters on this machine), store level, in process:
 * bulk upload (`loadEntities`, MSET pipelines: one per slot on the Cluster) and fetch reads (`readEntities`
 * of B rows x 10 group-bys, as a 50-feature fetch does: one MGET on a single Redis, one per store partition
 * touched on the Cluster), closed loop with `--concurrency` reads in flight.
 *
 *   npx tsx bench/redis-cluster.ts [--keys 100000] [--partitions 16] [--batches 1,10,100] [--duration 3]
 *                                  [--concurrency 8] [--masters 3] [--repeat 3]
 *
 * Prints entities/s for the upload, and reads/s, rows/s, latency p50/p99 and client CPU per read for each
 * batch size: each the median of `--repeat` runs (a fresh load each, into emptied servers). All servers share this machine's cores with the client, so the Cluster's extra masters add
 * no hardware here: the figures show the per-command overhead of slot grouping, not the scale-out.
 */
import { Redis } from 'ioredis';
import { type OnlineStore, type TileRequest } from '../src/online/store.ts';
import { groupById } from '../src/online/group-by-id.ts';
import { openStore } from '../src/online/open-store.ts';
import { startRedis, startRedisCluster } from '../test/support/servers.ts';
import { rng } from '../test/support/rng.ts';
import { optionReader } from './args.ts';
import { featureSet, preload } from './serve.ts';

const arg = optionReader(process.argv);
const keys = Number(arg('keys', '100000'));
const partitions = Number(arg('partitions', '16'));
const batches = arg('batches', '1,10,100').split(',').map(Number);
const durationMs = Number(arg('duration', '3')) * 1000;
const concurrency = Number(arg('concurrency', '8'));
const masters = Number(arg('masters', '3'));
const repeat = Number(arg('repeat', '3'));

const set = featureSet(10);
const ids = set.groupBys.map(groupById);

interface Row {
  target: string;
  upload: number;
  reads: { batch: number; perSec: number; p50: number; p99: number; cpuUs: number }[];
}

async function measure(target: string, url: string, prefix: string): Promise<Row> {
  const store: OnlineStore = openStore({ kind: 'redis', url, prefix, partitions });
  try {
    const started = performance.now();
    await preload(store, set.groupBys, keys, Date.now());
    const upload = (keys * ids.length) / ((performance.now() - started) / 1000);
    const reads: Row['reads'] = [];
    for (const batch of batches) {
      const r = rng(batch);
      const request = (): TileRequest[] => {
        const out: TileRequest[] = [];
        for (let b = 0; b < batch; b++) {
          const key = `e${Math.floor(r() * keys)}`;
          for (const groupBy of ids) out.push({ groupBy, key });
        }
        return out;
      };
      let visited = 0;
      const visit = (_: number, tiles: { length: number }) => {
        visited += tiles.length;
      };
      // Warm-up, then a closed loop of `concurrency` readers.
      for (let w = 0; w < 50; w++) await store.readEntities!(request(), visit);
      const latencies: number[] = [];
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() - t0 < durationMs) {
            const s = performance.now();
            await store.readEntities!(request(), visit);
            latencies.push(performance.now() - s);
          }
        }),
      );
      const elapsed = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(cpu);
      if (visited === 0) throw new Error(`${target}: reads found no tiles`);
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
      reads.push({
        batch,
        perSec: latencies.length / elapsed,
        p50: pct(50),
        p99: pct(99),
        cpuUs: (used.user + used.system) / latencies.length,
      });
    }
    return { target, upload, reads };
  } finally {
    await store.close();
  }
}

/** Medians of `runs` cell by cell. */
function median(runs: Row[]): Row {
  const mid = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return {
    target: runs[0].target,
    upload: mid(runs.map((r) => r.upload)),
    reads: runs[0].reads.map((r, i) => ({
      batch: r.batch,
      perSec: mid(runs.map((x) => x.reads[i].perSec)),
      p50: mid(runs.map((x) => x.reads[i].p50)),
      p99: mid(runs.map((x) => x.reads[i].p99)),
      cpuUs: mid(runs.map((x) => x.reads[i].cpuUs)),
    })),
  };
}

async function runs(target: string, url: string, nodeUrls: string[]): Promise<Row> {
  const out: Row[] = [];
  for (let r = 0; r < repeat; r++) {
    out.push(await measure(target, url, `bench${r}:`));
    // Empty every node, so each run loads into the same memory state.
    for (const u of nodeUrls) {
      const node = new Redis(u);
      await node.flushall();
      node.disconnect();
    }
  }
  return median(out);
}

const rows: Row[] = [];
const single = await startRedis();
if (!single) throw new Error('redis-server is not installed');
try {
  rows.push(await runs('single', single.url, [single.url]));
} finally {
  await single.stop();
}
const cluster = await startRedisCluster(masters);
if (!cluster) throw new Error('redis-cli is not installed');
try {
  rows.push(
    await runs(
      `cluster x${masters}`,
      cluster.url,
      cluster.masters.map((m) => m.url),
    ),
  );
} finally {
  await cluster.stop();
}

console.log(
  `\nRedis store, ${keys} keys x ${ids.length} group-bys, ${partitions} store partitions, ${concurrency} reads in flight, median of ${repeat}\n`,
);
console.log('target       upload ent/s  rows/read   reads/s    rows/s   p50 ms   p99 ms  client CPU us/read');
for (const row of rows)
  for (const r of row.reads)
    console.log(
      `${row.target.padEnd(12)} ${Math.round(row.upload).toString().padStart(12)}  ${String(r.batch).padStart(9)}  ${r.perSec.toFixed(0).padStart(8)}  ${(r.perSec * r.batch).toFixed(0).padStart(8)}  ${r.p50.toFixed(2).padStart(7)}  ${r.p99.toFixed(2).padStart(7)}  ${r.cpuUs.toFixed(0).padStart(19)}`,
    );
