/**
 * CPU time per fetch of the serving core, in-process: plan, one store read, windows, assembly and JSON, next
 * to a raw `readTiles` of the same (group-by, key) pairs. CPU time (process.cpuUsage), unlike latency,
 * hardly depends on other load on the machine, so it compares code versions on a shared machine.
 *
 *   npx tsx bench/serve-core-cpu.ts [--keys 20000] [--run-events 0] [--batches 1,10,100]
 *
 * LMDB, 50 features from 10 group-bys. The raw read is `readEntities` with a visitor that does nothing
 * (what the fetch path reads), and `readTiles` (copies and a StoredTile per tile) next to it. `--run-events N` also gives every entity an event
 * run of N events in the last hour (what a live worker leaves before it rolls runs up into tiles).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { ByteWriter } from '../src/aggregate/bytes.ts';
import { writeRunEvent, writeRunHeader } from '../src/aggregate/event-run.ts';
import { createGroupAggregator } from '../src/aggregate/group-aggregator.ts';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { createFetchGroupBys, emptyGroupValues } from '../src/online/fetch-group-bys.ts';
import { groupById } from '../src/online/group-by-id.ts';
import { openStore } from '../src/online/open-store.ts';
import type { RunWrite, TileRequest } from '../src/online/store.ts';
import { createFeatureService } from '../src/serve/feature-service.ts';
import { joinRowsJson } from '../src/serve/feature-json.ts';
import { featureSet, preload } from './serve.ts';

const i = process.argv.indexOf('--keys');
const keys = i >= 0 ? Number(process.argv[i + 1]) : 20_000;
const j = process.argv.indexOf('--run-events');
const runEvents = j >= 0 ? Number(process.argv[j + 1]) : 0;
const b = process.argv.indexOf('--batches');
const batches = (b >= 0 ? process.argv[b + 1]! : '1,10,100').split(',').map(Number);
const dir = mkdtempSync(joinPath(tmpdir(), 'tessera-bench-cpu-'));
const set = featureSet(10);
const store = openStore({ kind: 'lmdb', path: joinPath(dir, 'store') });
try {
  const now = Date.now();
  await preload(store, set.groupBys, keys, now);
  if (runEvents > 0) {
    // One run per group-by, shared by its entities: runEvents events spread over the last hour.
    const runs = set.groupBys.map((g) => {
      const agg = createGroupAggregator(g);
      const w = new ByteWriter();
      writeRunHeader(w, agg, runEvents);
      for (let e = 0; e < runEvents; e++) {
        const ts = now - 3_600_000 + Math.floor((e * 3_600_000) / runEvents);
        writeRunEvent(w, agg, { entity_id: 'x', ts, [g.aggregations[1]!.input!]: e }, ts, 1e9 + e);
      }
      return w.finish();
    });
    let batch: RunWrite[] = [];
    for (let k = 0; k < keys; k++) {
      for (let g = 0; g < runs.length; g++)
        batch.push({ groupBy: groupById(set.groupBys[g]!), key: `e${k}`, bytes: runs[g]! });
      if (batch.length >= 20_000) {
        await store.commit({ tiles: [], runs: batch });
        batch = [];
      }
    }
    await store.commit({ tiles: [], runs: batch });
  }
  const service = createFeatureService({
    repo: { sources: [set.join.left], groupBys: set.groupBys, joins: [set.join] },
    groupById,
    fetchGroups: createFetchGroupBys(store),
    emptyValues: emptyGroupValues,
  });
  const ids = set.groupBys.map(groupById);
  let seed = 7;
  const key = () => `e${Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * keys)}`;
  console.log(
    `rows  core ms CPU/fetch  raw read ms CPU  readTiles ms CPU   (LMDB, ${keys} keys, 50 features, runs of ${runEvents} events)`,
  );
  const requestsOf = (batch: number): TileRequest[] => {
    const requests: TileRequest[] = [];
    for (let r = 0; r < batch; r++) {
      const k = key();
      for (const id of ids) requests.push({ groupBy: id, key: k });
    }
    return requests;
  };
  const ignore = () => {};
  for (const batch of batches) {
    const n = Math.ceil(20_000 / batch);
    const cpuPerCall = async (fn: () => Promise<unknown>): Promise<number> => {
      for (let k = 0; k < n / 5; k++) await fn(); // warm-up
      const start = process.cpuUsage();
      for (let k = 0; k < n; k++) await fn();
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1000 / n;
    };
    const core = await cpuPerCall(async () => {
      const rows = Array.from({ length: batch }, () => ({ entity_id: key() }));
      joinRowsJson((await service.fetchJoinRows([set.join.name], rows)).joins[0]!);
    });
    const raw = await cpuPerCall(() => store.readEntities!(requestsOf(batch), ignore));
    const tiles = await cpuPerCall(() => store.readTiles(requestsOf(batch)));
    console.log(
      `${String(batch).padStart(4)}  ${core.toFixed(3).padStart(17)}  ${raw.toFixed(3).padStart(15)}  ${tiles.toFixed(3).padStart(16)}`,
    );
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
