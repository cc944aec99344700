/**
 * One stream worker draining N fraud charges from the embedded log into a fresh LMDB store, timed alone
 * (no baseline, no freshness run): the quick way to compare two versions of the worker at scale, back to
 * back (run it from each checkout in turn). `bench:stream` is the full benchmark.
 *
 * Usage: npx tsx bench/stream-drain.ts [--events N (1000000)] [--live-rate R (0: replay the generated
 *        history as is; R > 0: re-stamp the events R/s of event time ending now, as live traffic)]
 *        [--batch B (the worker's default)] [--group-bys (print each group-by's CPU time)]
 * Prints records, wall seconds, events/s of wall time and per CPU-second of this process (events/s/core).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { planCharges } from '../examples/fraud/generate.ts';
import { loadRepo } from '../src/cli/load-repo.ts';
import type { SourceDef } from '../src/define/types.ts';
import { groupById } from '../src/online/group-by-id.ts';
import { ingestEvents } from '../src/online/ingest.ts';
import { openFileLog } from '../src/online/log/file-log.ts';
import { openStore } from '../src/online/open-store.ts';
import { streamTopics } from '../src/online/topics.ts';
import { createStreamWorker } from '../src/online/worker.ts';
import { exitOnHelp, optionReader } from './args.ts';

const argv = process.argv.slice(2);
exitOnHelp(argv, import.meta.url);
const get = optionReader(argv);
const n = Number(get('events', '1000000'));
const liveRate = Number(get('live-rate', '0'));
const batch = get('batch', '');
if (!(n > 0) || !(liveRate >= 0)) throw new Error('--events must be > 0 and --live-rate >= 0');

const repo = await loadRepo(new URL('../examples/fraud/features', import.meta.url).pathname, {
  checkFiles: false,
});
const source = repo.sources.find((s) => s.name === 'charges') as SourceDef;
// The same events as bench:stream (seed 11, ground truth column dropped).
let events: Record<string, unknown>[] = [];
for (const day of planCharges({ events: n, seed: 11 }).days())
  for (const { fraud_pattern: _label, ...event } of day) events.push(event);
if (liveRate > 0) {
  const end = Date.now();
  const last = events.length - 1;
  events = events.map((e, i) => ({ ...e, ts: end - Math.round(((last - i) * 1000) / liveRate) }));
}
const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-drain-'));
try {
  const log = openFileLog(joinPath(dir, 'log'));
  for (let i = 0; i < events.length; i += 5000)
    await ingestEvents(log, source, repo.groupBys, events.slice(i, i + 5000), { origin: 'bench' });
  const [topic] = streamTopics(source, repo.groupBys, 1);
  const store = openStore({ kind: 'lmdb', path: joinPath(dir, 'store') });
  const worker = await createStreamWorker({
    log,
    store,
    topic: topic!,
    partition: 0,
    groupById,
    ...(batch ? { batchSize: Number(batch) } : {}),
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await worker.drain();
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  const records = worker.stats().recordsRead;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (argv.includes('--group-bys'))
    for (const [name, c] of Object.entries(worker.stats().groupBys))
      console.log(`${name.padEnd(24)} ${c.cpuMs.toFixed(0).padStart(8)} ms`);
  console.log(
    `${liveRate > 0 ? `live ${liveRate}/s` : 'replay'}: ${records} records in ${wall.toFixed(1)} s: ` +
      `${Math.round(records / wall)} ev/s wall, ${Math.round(records / cpuSeconds)} ev/s/core`,
  );
  await store.close();
  await log.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
