/**
 * bench:stream's baseline: a hand-written, minimal exactly-once consumer of the same log records, run in
 * the same process and on the same log as the Tessera stream worker it is compared with. It is the floor:
 * what any correct consumer that persists per-key state per batch must pay.
 *
 * Includes, per batch of `batchSize` records read from the same log partition (so the same reads and JSON
 * parsing as the worker): the source filter (`amount > 0`); for each distinct group-by of the topic (the
 * worker processes equal computations once, so does this), its entity key (entity-key.ts, nulls skipped
 * like the worker does); a per-key record in a Map (count and sum of `amount`); then ONE atomic write of
 * every touched key's value (16 bytes) plus the next offset to the same kind of store: one LMDB write
 * transaction (same environment options as the LMDB store) or one Redis MULTI/EXEC of MSETs and the offset.
 *
 * Excludes everything that makes features out of those events: derived columns, windows, tiles, event
 * runs, sketches (unique counts, percentiles, top-k), retention, late-event handling, watermarks, counters,
 * fencing. All state stays in memory, so the baseline never reads the store (a consumer with more keys
 * than memory would have to), and it writes each touched key once per batch, however many events it had.
 */
import { Redis } from 'ioredis';
import { open, type Database } from 'lmdb';
import type { GroupByDef, Row, SourceDef } from '../src/define/types.ts';
import { entityKey } from '../src/online/entity-key.ts';
import type { EventLog } from '../src/online/log/event-log.ts';

/** Where the baseline persists a batch: every touched key's value and the offset, atomically. */
export interface BaselineSink {
  commit(ids: readonly string[], values: readonly Buffer[], offset: number): Promise<void>;
  close(): Promise<void>;
}

/** One LMDB environment at `path`, opened like the LMDB store's; each commit is one write transaction. */
export function lmdbSink(path: string): BaselineSink {
  const env = open({ path, maxDbs: 8, mapSize: 2 ** 34 });
  const state: Database<Buffer, string> = env.openDB('baseline', { encoding: 'binary' });
  const offsets: Database<string, string> = env.openDB('offsets', { encoding: 'string' });
  return {
    commit: (ids, values, offset) =>
      env.transaction(() => {
        for (let i = 0; i < ids.length; i++) state.put(ids[i]!, values[i]!);
        offsets.put('baseline', String(offset));
      }),
    close: () => env.close(),
  };
}

/** Keys and offset under `prefix` on a Redis server; each commit is one MULTI/EXEC (MSETs of 10k keys). */
export function redisSink(url: string, prefix: string): BaselineSink {
  const redis = new Redis(url);
  return {
    async commit(ids, values, offset) {
      const multi = redis.multi();
      for (let from = 0; from < ids.length; from += 10_000) {
        const args: (string | Buffer)[] = [];
        for (let i = from; i < Math.min(ids.length, from + 10_000); i++)
          args.push(prefix + ids[i]!, values[i]!);
        multi.mset(...args);
      }
      multi.set(`${prefix}offset`, String(offset));
      const replies = await multi.exec();
      const failed = replies?.find(([err]) => err !== null);
      if (!replies || failed)
        throw new Error(
          `baseline commit to Redis at ${url} failed: ${failed?.[0]?.message ?? 'transaction aborted'}`,
        );
    },
    async close() {
      redis.disconnect();
    },
  };
}

interface KeyState {
  /** The key's id in the store: entity key + U+0000 + group-by index. */
  readonly id: string;
  count: number;
  sum: number;
  /** Batch number that last touched the key (each touched key is written once per batch). */
  batch: number;
}

/**
 * Drains `topic`/`partition` of `log` from offset 0 to its current end into `sink`. Returns the records read
 * and, per distinct group-by (in `groupBys` order, first of equal ones), the events it counted, to check
 * against the worker's counters (applied + late beyond retention: the baseline has no retention).
 */
export async function drainBaseline(opts: {
  log: EventLog;
  topic: string;
  partition: number;
  source: SourceDef;
  groupBys: readonly GroupByDef[];
  groupById: (g: GroupByDef) => string;
  batchSize: number;
  sink: BaselineSink;
}): Promise<{ records: number; counted: Map<string, number> }> {
  const { log, topic, partition, source, sink } = opts;
  const filter = source.filter ?? (() => true);
  // Equal computations (same store id) once, as the worker does (worker.ts invariant 9).
  const seen = new Set<string>();
  const keyLists = opts.groupBys.filter((g) => !seen.has(opts.groupById(g)) && !!seen.add(opts.groupById(g)));
  const groups = keyLists.map((g) => ({
    name: g.name,
    cols: g.keys,
    state: new Map<string, KeyState>(),
    counted: 0,
  }));
  let keep = new Uint8Array(0);
  const keyBuf: (Row[string] | null)[] = [];
  const end = (await log.endOffsets(topic))[partition] ?? 0;
  let next = 0;
  let batch = 0;
  while (next < end) {
    const records = await log.read(topic, partition, next, opts.batchSize);
    if (records.length === 0)
      throw new Error(`baseline: log ${topic}/${partition} ended at ${next}, before ${end}`);
    batch++;
    const touched: KeyState[] = [];
    // The source filter once per record, as the worker does (charges: refunds are not events).
    if (keep.length < records.length) keep = new Uint8Array(records.length);
    for (let r = 0; r < records.length; r++) keep[r] = filter(records[r]!.event) === true ? 1 : 0;
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi]!;
      const { cols, state } = g;
      let counted = 0;
      const single = cols.length === 1 ? cols[0]! : null;
      for (let r = 0; r < records.length; r++) {
        if (keep[r] === 0) continue;
        const row = records[r]!.event;
        let key: string | null;
        if (single !== null) {
          const v = row[single];
          key = v === null || v === undefined ? null : String(v);
        } else {
          keyBuf.length = cols.length;
          for (let c = 0; c < cols.length; c++) keyBuf[c] = row[cols[c]!] ?? null;
          key = entityKey(keyBuf);
        }
        if (key === null) continue;
        let s = state.get(key);
        if (s === undefined) {
          s = { id: `${key}\u0000${gi}`, count: 0, sum: 0, batch: 0 };
          state.set(key, s);
        }
        s.count++;
        counted++;
        s.sum += row.amount as number;
        if (s.batch !== batch) {
          s.batch = batch;
          touched.push(s);
        }
      }
      g.counted += counted;
    }
    const ids = new Array<string>(touched.length);
    const values = new Array<Buffer>(touched.length);
    for (let i = 0; i < touched.length; i++) {
      const s = touched[i]!;
      const value = Buffer.allocUnsafe(16);
      value.writeDoubleLE(s.count, 0);
      value.writeDoubleLE(s.sum, 8);
      ids[i] = s.id;
      values[i] = value;
    }
    next = records[records.length - 1]!.offset + 1;
    await sink.commit(ids, values, next);
  }
  return { records: next, counted: new Map(groups.map((g) => [g.name, g.counted])) };
}
