import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import { TileSet } from '../aggregate/tiles.ts';
import type { GroupByDef, Row, Scalar } from '../define/types.ts';
import type { BadRowPolicy } from '../offline/bad-input.ts';
import type { DuckDBConnection } from '@duckdb/node-api';
import { ident, openScratchDb } from '../offline/duck.ts';
import { stageSource, type StagedSource } from '../offline/stage-source.ts';
import { entityKey } from './entity-key.ts';
import { EXACT_FROM_LEVEL, encodeExactFrom } from './exact-from.ts';
import { compileGroupBy } from './fetch-group-bys.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import { halfPrunedError, pruneMarkerName, streamedInto, unrecordedPartitions } from './members.ts';
import { entityKeyRoom, fitsUtf8, type OnlineStore, type StoredTile, type TileWrite } from './store.ts';
import { streamTopics } from './topics.ts';
import {
  DEFAULT_EXACT_HISTORY_MS,
  DEFAULT_HOT_KEY_EXACT_MS,
  DEFAULT_MAX_TILES_PER_KEY,
  uploadCutoffName,
} from './worker.ts';

export interface UploadOptions {
  readonly groupBy: GroupByDef;
  /** Cutoff T (epoch ms): events with ts < T are uploaded; streaming continues from T. */
  readonly until: number;
  readonly store: OnlineStore;
  /** Directory relative source paths resolve against (default: the source's baseDir, else cwd). */
  readonly baseDir?: string;
  readonly onBadRow?: BadRowPolicy;
  readonly groupById?: (g: GroupByDef) => string;
  readonly memoryLimit?: string;
  /** Fetches at t >= until - exactHistoryMs stay exact (default 1 hour; tiles are compacted to that). */
  readonly exactHistoryMs?: number;
  /**
   * An entity left with more tiles than this keeps less exact history (worker.ts invariant 6; default
   * `DEFAULT_MAX_TILES_PER_KEY`), but stays exact from `until` minus a minute.
   */
  readonly maxTilesPerKey?: number;
  /** Entities per store commit (default 2000). */
  readonly entitiesPerCommit?: number;
  readonly onProgress?: (p: { events: number; entities: number }) => void;
  /**
   * Upload even when stream workers already applied events to this group-by's store id (members.ts):
   * its uploaded entities' tiles are REPLACED, so the streamed events at or after `until` in them are lost
   * (until replayed). Default false: the upload refuses.
   */
  readonly replaceStreamed?: boolean;
}

export interface UploadResult {
  readonly groupBy: string;
  readonly groupById: string;
  readonly cutoff: number;
  readonly events: number;
  readonly entities: number;
  readonly tilesWritten: number;
  readonly tilesDeleted: number;
  /**
   * Entities skipped because their key is too long for the store (`OnlineStore.maxKeyBytes`; LMDB), and
   * their events: as a stream worker counts them (`keyTooLong`), instead of failing the whole upload.
   */
  readonly keysTooLong: number;
  readonly keyTooLongEvents: number;
  readonly badRows: number;
  readonly elapsedMs: number;
}

/**
 * Batch upload: builds a group-by's tiles from its offline history (events with `ts < until`, read, typed,
 * derived and filtered by the offline reader) and writes them to the online store, then records the cutoff
 * `upload/<groupById> = until` so stream workers skip events with `ts < until` (they are already in the
 * tiles) and apply the rest. The rule, for exactly-once across the two paths: an event is in the upload iff
 * its `ts < until`, and in the stream otherwise.
 *
 * Each uploaded entity's tiles REPLACE what the store held for it (stale tiles, e.g. a lifetime prefix
 * from an earlier upload, are deleted), so re-running an upload is idempotent. Run it before starting the
 * stream workers for that group-by (they read the cutoff when they open). Tiles are compacted as of
 * `until - exactHistoryMs`, and each entity records that point as its exact-from time when compaction
 * removed anything (exact-from.ts): fetches before it are flagged `inexact`. The cutoff is committed last: a crashed upload leaves
 * no cutoff, and streaming does not skip anything until an upload completes. Each commit (`entitiesPerCommit`
 * entities) is atomic for readers, on Redis too (a big one is a redo log, redis-store.ts `commitPart`; on a
 * Cluster, per store partition): a killed upload leaves whole commits, and a re-run replaces them.
 *
 * @example
 * await uploadGroupBy({ groupBy: cardVelocity, until: Date.parse('2024-06-01T00:00:00Z'), store });
 * // { events: 812345, entities: 10000, tilesWritten: 1234567, ... }
 */
export async function uploadGroupBy(opts: UploadOptions): Promise<UploadResult> {
  const [result] = await uploadGroupBys({ ...opts, groupBys: [opts.groupBy] });
  return result;
}

/**
 * Throws, naming the group-by, the topic partitions and the fix, when stream workers applied events to one
 * of `groupBys` (members.ts `streamedInto`): an upload replaces its entities' tiles, deleting those events.
 */
async function refuseStreamed(
  store: OnlineStore,
  groupBys: readonly GroupByDef[],
  idOf: (g: GroupByDef) => string,
): Promise<void> {
  const offsets = await store.readOffsets();
  for (const g of groupBys) {
    const where = streamedInto(offsets, idOf(g));
    if (where.length === 0) {
      // A store from before members cannot tell: its topic's workers may have applied events to any id.
      const topics = [1, 2].map((partitions) => streamTopics(g.source, [g], partitions)[0]!.name);
      const legacy = unrecordedPartitions(offsets, topics);
      if (legacy.length === 0) continue;
      throw new Error(
        `upload: the store records no group-by memberships for topic partition(s) ${legacy.join(', ')} (their workers ran an older version), so it cannot tell whether stream workers applied events to group-by '${g.name}' (store id ${idOf(g)}); ` +
          `if they did, an upload would delete every streamed event at or after --until. ` +
          `Restart the workers once with unchanged definitions first (they record the memberships), then upload; ` +
          `or, to replace any streamed tiles anyway, pass --replace-streamed (replaceStreamed: true).`,
      );
    }
    throw new Error(
      `upload: stream workers already applied events to group-by '${g.name}' (store id ${idOf(g)}) in topic partition(s) ${where.join(', ')}; ` +
        `an upload replaces its entities' tiles and would delete every streamed event at or after --until. ` +
        `Upload a group-by before the workers include it; for a changed group-by: upload the new version while the old serve runs, then restart. ` +
        `The restart catches it up on its topic's log from --until on, except for a key list no running group-by has at --partitions > 1: its new topic holds only events ingested after the restart, so choose --until as late as the offline data allows (events between it and the restart are in no log). ` +
        `To replace the streamed tiles anyway (losing streamed events after the cutoff until they are replayed), pass --replace-streamed (replaceStreamed: true).`,
    );
  }
}

/**
 * `uploadGroupBy` for several group-bys, reading each source once (DuckDB staging dominates small uploads).
 *
 * @example
 * const results = await uploadGroupBys({ groupBys: repo.groupBys, until, store, baseDir: repo.dir });
 */
export async function uploadGroupBys(
  opts: Omit<UploadOptions, 'groupBy'> & {
    readonly groupBys: readonly GroupByDef[];
    /** Called after each group-by's tiles are committed. */
    readonly onGroupByDone?: (result: UploadResult) => void;
  },
): Promise<UploadResult[]> {
  if (!Number.isSafeInteger(opts.until))
    throw new Error(`upload: --until must be epoch ms or ISO-8601 time, got ${opts.until}.`);
  const idOf = opts.groupById ?? defaultGroupById;
  const markers = await opts.store.readOffsets(opts.groupBys.map((g) => pruneMarkerName(idOf(g))));
  const halfPruned = opts.groupBys.map(idOf).filter((id) => markers[pruneMarkerName(id)] !== undefined);
  if (halfPruned.length > 0) throw halfPrunedError('upload', [...new Set(halfPruned)]);
  if (!opts.replaceStreamed) await refuseStreamed(opts.store, opts.groupBys, idOf);
  const db = await openScratchDb({ ...(opts.memoryLimit ? { memoryLimit: opts.memoryLimit } : {}) });
  try {
    const staged = new Map<string, StagedSource>();
    const results: UploadResult[] = [];
    for (const groupBy of opts.groupBys) {
      const started = performance.now();
      const source = groupBy.source;
      let s = staged.get(source.name);
      if (s === undefined) {
        s = await stageSource(db.conn, source, {
          baseDir: opts.baseDir ?? source.baseDir ?? process.cwd(),
          onBadRow: opts.onBadRow ?? 'fail',
          tableName: `__up${staged.size}`,
        });
        staged.set(source.name, s);
      }
      const result = await uploadStaged(db.conn, s, { ...opts, groupBy }, started);
      results.push(result);
      opts.onGroupByDone?.(result);
    }
    return results;
  } finally {
    db.close();
  }
}

async function uploadStaged(
  conn: DuckDBConnection,
  staged: StagedSource,
  opts: UploadOptions,
  started: number,
): Promise<UploadResult> {
  const { groupBy, until, store } = opts;
  const id = (opts.groupById ?? defaultGroupById)(groupBy);
  const { agg, windows } = compileGroupBy(groupBy);
  const perCommit = opts.entitiesPerCommit ?? 2000;
  const compactTo = until - (opts.exactHistoryMs ?? DEFAULT_EXACT_HISTORY_MS);
  // Streaming continues at `until`: hot keys stay exact from a little before it (worker invariant 6).
  const keepFrom = Math.max(compactTo, until - DEFAULT_HOT_KEY_EXACT_MS);
  const maxTiles = opts.maxTilesPerKey ?? DEFAULT_MAX_TILES_PER_KEY;
  let events = 0;
  let entities = 0;
  let tilesWritten = 0;
  let tilesDeleted = 0;
  let keysTooLong = 0;
  let keyTooLongEvents = 0;
  const keyRoom = entityKeyRoom(store.maxKeyBytes, id);
  const badRows = staged.badRows;
  const keys = groupBy.keys;
  const inputs = [...new Set(groupBy.aggregations.flatMap((a) => (a.input === null ? [] : [a.input])))];
  // A dense key id per row, so JS compares numbers and decodes an entity's key values once, not per row.
  const sql = `SELECT dense_rank() OVER (ORDER BY ${keys.map(ident).join(', ')})::DOUBLE AS __kid,
        ${keys.map((k, i) => `${ident(k)} AS __k${i}`).join(', ')}, __t, __seq
        ${inputs.map((c, i) => `, ${ident(c)} AS __i${i}`).join('')}
      FROM ${ident(staged.relation)}
      WHERE __t < ${until} AND ${keys.map((k) => `${ident(k)} IS NOT NULL`).join(' AND ')}
      ORDER BY __kid, __t, __seq`;

  // Entities built but not yet committed: their full tile lists replace what the store holds. An entity's
  // tiles are compacted and encoded as soon as its last event is in, so one TileSet lives at a time (the
  // young-generation GC otherwise copies the tiles of a whole batch of entities again and again).
  let pending: { key: string; tiles: TileWrite[] }[] = [];
  let current: { key: string; tiles: TileSet } | null = null;
  const encodeCurrent = () => {
    const { key, tiles } = current!;
    tiles.retainBounded(compactTo, keepFrom, maxTiles);
    const writes: TileWrite[] = [];
    if (tiles.exactFrom > -Infinity) {
      const bytes = encodeExactFrom(tiles.exactFrom);
      writes.push({ groupBy: id, key, level: EXACT_FROM_LEVEL, start: 0, bytes });
    }
    const markers = writes.length;
    // One-event tiles encode as the event itself, without building IR rows (tiles.ts encodeTile).
    for (const t of tiles.refs()) {
      const bytes = tiles.encodeTile(t.level, t.start)!;
      writes.push({ groupBy: id, key, level: t.level, start: t.start, bytes });
    }
    tilesWritten += writes.length - markers;
    pending.push({ key, tiles: writes });
    current = null;
  };
  // The previous commit, written by the store while the next entities are built.
  let committing: Promise<unknown> = Promise.resolve();
  const flush = async (cutoff: boolean) => {
    // The previous commit first: a big one is a redo log until applied (redis-store.ts), and this read of
    // its partitions would find it pending and help apply it, racing the writer chunk by chunk.
    await committing;
    const existing: StoredTile[][] = pending.length
      ? await store.readTiles(pending.map((p) => ({ groupBy: id, key: p.key })))
      : [];
    const writes: TileWrite[] = [];
    pending.forEach((p, i) => {
      for (const t of p.tiles) writes.push(t);
      const stored = existing[i];
      if (stored.length === 0) return; // nothing stale (always so on a first upload)
      const fresh = new Set(p.tiles.map((t) => `${t.level}:${t.start}`));
      for (const old of stored)
        if (old.level !== EVENT_RUN_LEVEL && !fresh.has(`${old.level}:${old.start}`)) {
          writes.push({ groupBy: id, key: p.key, level: old.level, start: old.start, bytes: null });
          tilesDeleted++;
        }
    });
    const batch = {
      tiles: writes,
      // Uploaded tiles replace the entity, including events a worker had appended to its run.
      runs: pending.flatMap((p, i) =>
        existing[i].at(-1)?.level === EVENT_RUN_LEVEL ? [{ groupBy: id, key: p.key, bytes: null }] : [],
      ),
      ...(cutoff ? { offsets: { [uploadCutoffName(id)]: String(until) } } : {}),
    };
    pending = [];
    const progress = { events, entities };
    // Written while the next entities are built; the cutoff's (the last) after every other one.
    committing = (async () => {
      await store.commit(batch);
      opts.onProgress?.(progress);
    })();
    // Handled where awaited (next flush or the end); meanwhile a failure is no unhandled rejection.
    committing.catch(() => {});
    if (cutoff) await committing;
  };

  const nk = keys.length;
  const keyValues: (Scalar | null)[] = new Array(nk);
  let prevKid = -1;
  const row: Row = {};
  try {
    const result = await conn.stream(sql);
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) break;
      const vectors = Array.from({ length: chunk.columnCount }, (_, j) => chunk.getColumnVector(j));
      const kids = vectors[0];
      const times = vectors[nk + 1];
      const seqs = vectors[nk + 2];
      for (let r = 0; r < chunk.rowCount; r++) {
        const kid = kids.getItem(r) as number;
        if (kid !== prevKid) {
          prevKid = kid;
          if (current !== null) encodeCurrent();
          if (pending.length >= perCommit) await flush(false);
          for (let k = 0; k < nk; k++) keyValues[k] = vectors[1 + k].getItem(r) as Scalar;
          const key = entityKey(keyValues)!;
          // (UTF-8 takes at most 3 bytes per UTF-16 unit: most keys need no byte count.)
          if (!fitsUtf8(key, keyRoom)) keysTooLong++;
          else {
            current = { key, tiles: new TileSet(agg, windows) };
            entities++;
          }
        }
        if (current === null) {
          keyTooLongEvents++;
          continue;
        }
        for (let j = 0; j < inputs.length; j++)
          row[inputs[j]] = vectors[nk + 3 + j].getItem(r) as Scalar | null;
        // Tiles that compaction would evict at once are never built (tiles.ts invariant 11).
        current!.tiles.addRow(row, times.getItem(r) as number, seqs.getItem(r) as number, compactTo);
        events++;
      }
    }
    if (current !== null) encodeCurrent();
    await flush(true);
  } catch (error) {
    await committing.catch(() => {}); // the store must not be closed under a commit in flight
    throw error;
  }
  return {
    groupBy: groupBy.name,
    groupById: id,
    cutoff: until,
    events,
    entities,
    tilesWritten,
    tilesDeleted,
    keysTooLong,
    keyTooLongEvents,
    badRows,
    elapsedMs: performance.now() - started,
  };
}
