import { retentionHorizonMs } from '../aggregate/tile-cover.ts';
import { TileSet } from '../aggregate/tiles.ts';
import type { GroupByDef, Row, Scalar } from '../define/types.ts';
import { entityKey } from './entity-key.ts';
import { EXACT_FROM_LEVEL, encodeExactFrom, markerCount, readExactFrom } from './exact-from.ts';
import { compileGroupBy } from './fetch-group-bys.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import type { EventLog, LogRecord } from './log/event-log.ts';
import { deriveAndFilter } from './source-transform.ts';
import type { OnlineStore, TileRequest, TileWrite } from './store.ts';
import type { Topic } from './topics.ts';

/**
 * Stream worker: consumes one partition of one log topic and keeps the tiles of every group-by of that
 * topic up to date in the store.
 *
 * Invariants:
 * 1. Single writer: exactly one worker runs per (topic, partition), and topics.ts routes every entity of a
 *    group-by to exactly one partition, so the worker's in-memory tiles are the truth for its entities
 *    (an LRU cache in front of the store; misses are read from the store in one round trip per batch).
 * 2. Exactly once: a batch's tile writes, tile deletes (retention) and the next offset, watermark and
 *    counters are ONE store commit. After a crash the worker restarts from the committed offset with the
 *    committed state, so no event is lost or counted twice. A failed commit drops the cache (it may hold
 *    uncommitted updates) and the batch is redone from the committed offset.
 * 3. `seq` of an event is its log offset (source order; breaks `ts` ties for first/last).
 * 4. Late events: the watermark is the running max `ts` of the partition. An event with
 *    `ts < watermark - exactHistory - horizon` (horizon = longest window + its hop; lifetime-only
 *    group-bys have none) cannot change any query at t >= watermark - exactHistory: it is counted in
 *    `lateBeyondRetention` per group-by (persisted with the offsets, reported in stats) and not applied,
 *    and its entity's exact-from time is raised to the compaction point (a query before that could have
 *    seen it). Later but retained events go into their tiles. The decision depends only on log order, so
 *    it is the same after a restart. The
 *    watermark never moves past wall-clock time + `maxFutureMs`: one event with a bogus future `ts` must
 *    not make every real event "late" or compact away the tiles that queries at `now` need (a lower
 *    watermark only keeps more tiles; results stay exact).
 * 5. Batch upload cutoff: events with `ts < upload/<groupById>` are already in the uploaded tiles and are
 *    counted as `beforeUploadCutoff`, not applied. The cutoffs are read when the worker opens: run
 *    `tessera upload` before starting workers (or restart them after).
 * 6. Retention: every entity touched in a batch is compacted to `watermark - exactHistory` (tiles.ts
 *    invariant 6), so fetches up to `exactHistory` before the newest event stay exact, and the evicted
 *    tiles are deleted in the same commit, together with the entity's exact-from marker (exact-from.ts)
 *    when compaction raised it. Entities that stop receiving events keep their last tiles (bounded by the
 *    windows' spans plus `exactHistory`) until touched again.
 */

export interface WorkerOptions {
  readonly log: EventLog;
  readonly store: OnlineStore;
  readonly topic: Topic;
  readonly partition: number;
  readonly groupById?: (g: GroupByDef) => string;
  /** Max records per batch (one store commit each). */
  readonly batchSize?: number;
  /**
   * How long before the watermark fetches stay exact (default 1 hour): tiles are compacted to
   * `watermark - exactHistoryMs` (invariant 6). 0 keeps only what fetches at the watermark need.
   */
  readonly exactHistoryMs?: number;
  /** How far past wall-clock time the watermark may move (default 1 minute of clock skew); see invariant 4. */
  readonly maxFutureMs?: number;
  /** How long an idle read waits for new records. */
  readonly pollMs?: number;
  /**
   * Max `(group-by, key)` tile sets kept in memory (default 5000). Materialized tile sets of long windows
   * take tens of KB each, and sparse keys rarely hit the cache, so a small cache costs little speed.
   */
  readonly maxCachedEntities?: number;
  /** Called after each commit (metrics, freshness). */
  readonly onCommit?: (info: CommitInfo) => void;
  /** Called when a batch fails in `run` (it then retries from the committed offset); default: console.error. */
  readonly onError?: (err: Error) => void;
}

export interface CommitInfo {
  readonly topic: string;
  readonly partition: number;
  readonly records: number;
  /** Next offset to read (= committed up to `nextOffset - 1`). */
  readonly nextOffset: number;
  readonly tileWrites: number;
  readonly commitMs: number;
}

/** Counters per group-by; persisted atomically with the offset. */
export interface GroupByCounters {
  applied: number;
  lateBeyondRetention: number;
  beforeUploadCutoff: number;
  nullKey: number;
  /** Events of the topic dropped by the source's filter (the same for every group-by of the topic). */
  filtered: number;
  /** Milliseconds spent applying this group-by's events and encoding its tiles (for cost reports). */
  cpuMs: number;
}

export interface WorkerStats {
  readonly topic: string;
  readonly partition: number;
  readonly nextOffset: number;
  readonly watermark: number | null;
  readonly recordsRead: number;
  readonly filtered: number;
  readonly batches: number;
  readonly cachedEntities: number;
  readonly groupBys: Readonly<Record<string, GroupByCounters>>;
}

export interface StreamWorker {
  /** Processes at most one batch (waiting up to `pollMs` for records); returns the number of records. */
  step(): Promise<number>;
  /** Runs batches until the log end observed at call time is committed. */
  drain(): Promise<void>;
  /** Runs until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  stats(): WorkerStats;
}

interface Entity {
  readonly key: string;
  /**
   * The entity's tiles; they track which tiles changed since the last commit and which the store holds
   * (tiles.ts invariant 10), so tiles created and evicted between two commits (most fine tiles during a
   * replay) cost the store nothing.
   */
  readonly tiles: TileSet;
  /** The exact-from time the store holds for this entity (-Infinity: no marker). */
  storedExactFrom: number;
  /** Whether an event of this entity was dropped as late beyond retention in this batch (invariant 4). */
  lateDropped: boolean;
  touched: boolean;
}

interface GroupState {
  readonly def: GroupByDef;
  readonly id: string;
  readonly compiled: ReturnType<typeof compileGroupBy>;
  readonly horizon: number;
  readonly cutoff: number;
  readonly entities: Map<string, Entity>;
  counters: GroupByCounters;
}

/** Default of `WorkerOptions.exactHistoryMs` and `--exact-history`: fetches up to 1 hour back stay exact. */
export const DEFAULT_EXACT_HISTORY_MS = 3_600_000;

/** Offset names in the store (see store.ts). */
export const offsetName = (topic: string, p: number) => `stream/${topic}/${p}`;
const watermarkName = (topic: string, p: number) => `watermark/${topic}/${p}`;
const countersName = (topic: string, p: number) => `counters/${topic}/${p}`;
export const uploadCutoffName = (groupById: string) => `upload/${groupById}`;

const zeroCounters = (): GroupByCounters => ({
  applied: 0,
  lateBeyondRetention: 0,
  beforeUploadCutoff: 0,
  nullKey: 0,
  filtered: 0,
  cpuMs: 0,
});

/**
 * Opens a worker at the partition's committed offset.
 *
 * @example
 * const [topic] = streamTopics(charges, groupBys, log.partitions);
 * const worker = await createStreamWorker({ log, store, topic, partition: 0 });
 * await worker.drain();
 * worker.stats().groupBys.card_velocity.lateBeyondRetention; // 0
 */
export async function createStreamWorker(opts: WorkerOptions): Promise<StreamWorker> {
  const { log, store, topic, partition } = opts;
  const idOf = opts.groupById ?? defaultGroupById;
  const batchSize = opts.batchSize ?? 5000;
  const pollMs = opts.pollMs ?? 20;
  const maxFutureMs = opts.maxFutureMs ?? 60_000;
  const maxCached = opts.maxCachedEntities ?? 5_000;
  const exactHistoryMs = opts.exactHistoryMs ?? DEFAULT_EXACT_HISTORY_MS;
  if (!(exactHistoryMs >= 0))
    throw new Error(
      `stream worker: exactHistoryMs must be a duration >= 0 ms, got ${exactHistoryMs}; pass e.g. 3600000 (--exact-history 1h)`,
    );
  const timeColumn = topic.source.timeColumn;
  const names = {
    offset: offsetName(topic.name, partition),
    watermark: watermarkName(topic.name, partition),
    counters: countersName(topic.name, partition),
  };
  const ids = topic.groupBys.map(idOf);
  const saved = await store.readOffsets([
    names.offset,
    names.watermark,
    names.counters,
    ...ids.map(uploadCutoffName),
  ]);
  const savedCounters: Record<string, GroupByCounters> = saved[names.counters]
    ? JSON.parse(saved[names.counters])
    : {};

  const groups: GroupState[] = topic.groupBys.map((def, i) => {
    const compiled = compileGroupBy(def);
    const cutoff = saved[uploadCutoffName(ids[i])];
    return {
      def,
      id: ids[i],
      compiled,
      horizon: retentionHorizonMs(compiled.windows),
      cutoff: cutoff === undefined ? -Infinity : Number(cutoff),
      entities: new Map(),
      counters: { ...zeroCounters(), ...savedCounters[def.name] },
    };
  });
  const nG = groups.length;

  let committedOffset = saved[names.offset] ? Number(saved[names.offset]) : 0;
  let committedWatermark = saved[names.watermark] ? Number(saved[names.watermark]) : -Infinity;
  let nextOffset = committedOffset;
  let watermark = committedWatermark;
  let recordsRead = 0;
  let filtered = 0;
  let batches = 0;
  let cached = 0;

  const keyCols = groups.map((g) => g.def.keys);
  const keyBuf: (Scalar | null)[] = [];
  function keyOf(gi: number, row: Row): string | null {
    const cols = keyCols[gi];
    if (cols.length === 1) {
      const v = row[cols[0]];
      return v === null || v === undefined ? null : String(v);
    }
    keyBuf.length = cols.length;
    for (let c = 0; c < cols.length; c++) keyBuf[c] = row[cols[c]] ?? null;
    return entityKey(keyBuf);
  }

  function resetToCommitted(): void {
    for (const g of groups) g.entities.clear();
    cached = 0;
    nextOffset = committedOffset;
    watermark = committedWatermark;
  }

  async function loadMisses(misses: { gi: number; key: string }[]): Promise<void> {
    if (misses.length === 0) return;
    const requests: TileRequest[] = misses.map((m) => ({ groupBy: groups[m.gi].id, key: m.key }));
    const stored = await store.readTiles(requests);
    for (let i = 0; i < misses.length; i++) {
      const g = groups[misses[i].gi];
      const tiles = new TileSet(g.compiled.agg, g.compiled.windows);
      const list = stored[i];
      const storedExactFrom = readExactFrom(list);
      tiles.raiseExactFrom(storedExactFrom);
      for (let k = markerCount(list); k < list.length; k++) {
        const s = list[k];
        tiles.addEncodedTile(s.level, s.start, s.bytes);
      }
      g.entities.set(misses[i].key, {
        key: misses[i].key,
        tiles,
        storedExactFrom,
        lateDropped: false,
        touched: false,
      });
      cached++;
    }
  }

  async function processBatch(records: readonly LogRecord[]): Promise<void> {
    const n = records.length;
    // Pass 1: derive + filter, keys, running watermark, cache misses (read in one round trip).
    const keys: (string | null)[] = new Array(n * nG);
    const wmAt = new Float64Array(n);
    const keep = new Uint8Array(n);
    const misses: { gi: number; key: string }[] = [];
    const pending = groups.map(() => new Set<string>());
    let wm = watermark;
    const wmCap = Date.now() + maxFutureMs;
    for (let r = 0; r < n; r++) {
      const rec = records[r];
      const row = rec.event;
      const ts = row[timeColumn] as number;
      if (ts > wm) wm = Math.max(wm, Math.min(ts, wmCap));
      wmAt[r] = wm;
      if (
        !deriveAndFilter(
          topic.source,
          row,
          `topic '${topic.name}' partition ${partition} offset ${rec.offset}`,
        )
      ) {
        filtered++;
        continue;
      }
      keep[r] = 1;
      for (let gi = 0; gi < nG; gi++) {
        const g = groups[gi];
        const key = keyOf(gi, row);
        keys[r * nG + gi] = key;
        // Only entities that will be updated are loaded (skipped events cost no store read); late events
        // load theirs too, to raise its exact-from time (invariant 4).
        if (key === null || ts < g.cutoff) continue;
        if (!g.entities.has(key) && !pending[gi].has(key)) {
          pending[gi].add(key);
          misses.push({ gi, key });
        }
      }
    }
    await loadMisses(misses);
    const batchFiltered = n - keep.reduce((a, k) => a + k, 0);
    for (const g of groups) g.counters.filtered += batchFiltered;

    // Pass 2: apply, group-by by group-by (each in log order; group-bys are independent), so the CPU time
    // of each group-by can be measured for cost reports.
    const touched: Entity[][] = groups.map(() => []);
    for (let gi = 0; gi < nG; gi++) {
      const g = groups[gi];
      const c = g.counters;
      const started = performance.now();
      for (let r = 0; r < n; r++) {
        if (keep[r] === 0) continue;
        const key = keys[r * nG + gi];
        if (key === null) {
          c.nullKey++;
          continue;
        }
        const row = records[r].event;
        const ts = row[timeColumn] as number;
        if (ts < g.cutoff) {
          c.beforeUploadCutoff++;
          continue;
        }
        const e = g.entities.get(key)!;
        if (ts < wmAt[r] - exactHistoryMs - g.horizon) {
          c.lateBeyondRetention++;
          e.lateDropped = true;
          if (!e.touched) {
            e.touched = true;
            touched[gi].push(e);
          }
          continue;
        }
        e.tiles.add(row, ts, records[r].offset);
        if (!e.touched) {
          e.touched = true;
          touched[gi].push(e);
        }
        c.applied++;
      }
      c.cpuMs += performance.now() - started;
    }

    // Commit: dirty tiles, retention deletes, lifetime prefix, offset/watermark/counters.
    const writes: TileWrite[] = [];
    const compactTo = wm - exactHistoryMs;
    let writeId = '';
    let writeKey = '';
    const pushWrite = (level: number, start: number, bytes: Uint8Array | null) => {
      writes.push({ groupBy: writeId, key: writeKey, level, start, bytes });
    };
    for (let gi = 0; gi < nG; gi++) {
      const g = groups[gi];
      const started = performance.now();
      writeId = g.id;
      for (const e of touched[gi]) {
        writeKey = e.key;
        e.tiles.retain(compactTo);
        if (e.lateDropped) e.tiles.raiseExactFrom(compactTo);
        if (e.tiles.exactFrom !== e.storedExactFrom) {
          pushWrite(EXACT_FROM_LEVEL, 0, encodeExactFrom(e.tiles.exactFrom));
          e.storedExactFrom = e.tiles.exactFrom;
        }
        e.tiles.flushChanges(pushWrite);
      }
      g.counters.cpuMs += performance.now() - started;
    }
    const last = records[n - 1].offset + 1;
    const countersJson = JSON.stringify(Object.fromEntries(groups.map((g) => [g.def.name, g.counters])));
    const started = performance.now();
    await store.commit({
      tiles: writes,
      offsets: {
        [names.offset]: String(last),
        [names.watermark]: String(wm),
        [names.counters]: countersJson,
      },
    });
    const commitMs = performance.now() - started;
    committedOffset = nextOffset = last;
    committedWatermark = watermark = wm;
    recordsRead += n;
    batches++;
    for (let gi = 0; gi < nG; gi++) {
      const entities = groups[gi].entities;
      for (const e of touched[gi]) {
        e.touched = false;
        e.lateDropped = false;
        // Re-insert to mark as most recently used (Map iteration order is insertion order).
        entities.delete(e.key);
        entities.set(e.key, e);
      }
    }
    evictCache();
    opts.onCommit?.({
      topic: topic.name,
      partition,
      records: n,
      nextOffset: last,
      tileWrites: writes.length,
      commitMs,
    });
  }

  function evictCache(): void {
    if (cached <= maxCached) return;
    // Drop least recently used entities, round-robin over group-bys (all are clean after a commit).
    const iters = groups.map((g) => g.entities.keys());
    while (cached > maxCached * 0.9) {
      let progressed = false;
      for (let gi = 0; gi < nG && cached > maxCached * 0.9; gi++) {
        const next = iters[gi].next();
        if (next.done) continue;
        groups[gi].entities.delete(next.value);
        cached--;
        progressed = true;
      }
      if (!progressed) break;
    }
  }

  async function step(): Promise<number> {
    const records = await log.read(topic.name, partition, nextOffset, batchSize, pollMs);
    if (records.length === 0) return 0;
    const saved = groups.map((g) => ({ ...g.counters }));
    const savedFiltered = filtered;
    try {
      await processBatch(records);
    } catch (err) {
      // Invariant 2: in-memory state may be ahead of the store; forget it and redo from the commit.
      groups.forEach((g, i) => (g.counters = saved[i]));
      filtered = savedFiltered;
      resetToCommitted();
      throw err;
    }
    return records.length;
  }

  return {
    step,
    async drain() {
      const end = (await log.endOffsets(topic.name))[partition] ?? 0;
      while (nextOffset < end) await step();
    },
    async run(signal) {
      let backoff = 100;
      while (!signal.aborted) {
        try {
          await step();
          backoff = 100;
        } catch (err) {
          (
            opts.onError ??
            ((e: Error) => console.error(`stream worker ${topic.name}/${partition}: ${e.message}`))
          )(err as Error);
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    },
    stats() {
      return {
        topic: topic.name,
        partition,
        nextOffset,
        watermark: watermark === -Infinity ? null : watermark,
        recordsRead,
        filtered,
        batches,
        cachedEntities: cached,
        groupBys: Object.fromEntries(groups.map((g) => [g.def.name, { ...g.counters }])),
      };
    },
  };
}
