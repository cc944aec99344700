/**
 * The online store: where stream workers and batch upload put tiles, and where serving reads them.
 *
 * Layout (the same logical model in every implementation):
 *
 * 1. A tile is addressed by `(groupBy, key, level, start)` and holds the group aggregator's encoded IR bytes
 *    (one IR per aggregation of the group-by, see aggregate/). `groupBy` is an opaque id chosen by the
 *    caller: the group-by's semantic plan hash, so equal computations share tiles across teams. `key` is the
 *    entity key string built by `entityKey()` (entity-key.ts). `level` and `start` are integers (ms) chosen
 *    by aggregate/tiles.ts: `level` is the tile width (a hop, a finer standard level, 1 for exact event
 *    times), `start` is the tile's aligned start; level 0 is reserved for the compacted lifetime prefix tile, and
 *    level -1 (start 0) for the entity's exact-from marker (exact-from.ts), which is not a tile.
 * 2. All tiles of one `(groupBy, key)` are contiguous, so one read gets them all:
 *    - LMDB: UTF-8 key `key + "\u0000" + groupBy` → all the entity's tiles and its event run packed in one
 *      value (tile-pack.ts); a read is one read transaction doing one get per `(groupBy, key)`.
 *    - Redis: one string per `(groupBy, key)`, `e:{<groupBy>:<key>}` (a Cluster hash tag): u32 length T, then
 *      the LMDB value format (T bytes of packed tiles, then the run); a read is one MGET.
 * 3. `commit` applies tile upserts, tile deletes, run appends and offsets atomically (LMDB: one write
 *    transaction; Redis: one Lua script, `COMMIT` in redis-store.ts, or for a commit too big for one short
 *    script a staged redo log recorded by one script and applied in chunks, `commitPart` there), after
 *    checking `expect` (fencing). Workers store their log offset in the same commit as the tiles it produced, so a
 *    crash never loses or double-counts an event. Retention is enforced by the writer, which puts expired
 *    tiles in `deletes` of the same commit.
 * 4. Offsets are a small string → string map in the same store (names documented where they are written:
 *    `stream/<source>/<partition>` for workers, `upload/<groupBy>` for batch-upload cutoffs,
 *    `members/<topic>/<partition>` and `catchup/<groupBy>/...` for catching up a new group-by, members.ts).
 * 5. Each `(groupBy, key)` may also hold an event run (aggregate/event-run.ts): opaque bytes that a commit
 *    appends to or deletes, next to the tiles (LMDB: the tail of the entity's value; Redis: the tail of the
 *    entity's string). Its events are in no tile, so readers merge both; a read
 *    returns the run as the entity's last entry, `{ level: EVENT_RUN_LEVEL, start: 0, bytes }`.
 */

import type { TileColumns } from './tile-pack.ts';

/** One `(groupBy, key)` whose tiles a caller wants. */
export interface TileRequest {
  readonly groupBy: string;
  readonly key: string;
}

/** A stored tile: its address within a `(groupBy, key)` and its encoded IR bytes. */
export interface StoredTile {
  readonly level: number;
  readonly start: number;
  readonly bytes: Uint8Array;
}

/** One entity's complete stored tiles, for `OnlineStore.loadEntities`. */
export interface EntityTiles {
  readonly groupBy: string;
  readonly key: string;
  readonly tiles: readonly StoredTile[];
}

/** A tile write or delete in a commit. `bytes` null deletes the tile. */
export interface TileWrite {
  readonly groupBy: string;
  readonly key: string;
  readonly level: number;
  readonly start: number;
  readonly bytes: Uint8Array | null;
}

/** Appends `bytes` to an entity's event run, or deletes the run (`bytes` null). */
export interface RunWrite {
  readonly groupBy: string;
  readonly key: string;
  readonly bytes: Uint8Array | null;
}

/** Everything one commit applies atomically. */
export interface CommitBatch {
  readonly tiles: readonly TileWrite[];
  /** Event-run appends and deletes (at most one per entity), applied after `tiles`. */
  readonly runs?: readonly RunWrite[];
  /** Offsets to set (name → value), e.g. `stream/charges/3` → `"1234"`. */
  readonly offsets?: Readonly<Record<string, string>>;
  /**
   * Fencing: offset name → the value this writer last committed (null: the offset must be absent). When a
   * stored value differs, the commit applies nothing and throws an Error whose message starts `fenced:` and
   * names the offset, the expected and the stored value (another writer took over the partition).
   */
  readonly expect?: Readonly<Record<string, string | null>>;
}

/** What a commit reports back. */
export interface CommitResult {
  /**
   * Per `runs` entry, the run's length in bytes after the commit (0 after a delete); -1 when unknown (Redis:
   * another client finished applying that part of the commit, see redis-store.ts `commitPart`).
   */
  readonly runBytes: readonly number[];
}

/** Size figures for cost reporting. */
export interface StoreStats {
  /** Number of `(groupBy, key)` entities holding at least one tile. */
  readonly entities: number;
  /** Number of tiles. */
  readonly tiles: number;
  /** Bytes of tile payloads (plus keys where the backend reports them). */
  readonly bytes: number;
  /** Per-groupBy breakdown, same fields. */
  readonly byGroupBy: Readonly<Record<string, { entities: number; tiles: number; bytes: number }>>;
}

/**
 * The online store interface (see the layout notes at the top of this file).
 *
 * @example
 * const store = openStore({ kind: 'lmdb', path: '.tessera/store' }); // open-store.ts
 * await store.commit({ tiles: [{ groupBy: 'a1b2', key: 'card_1', level: 3_600_000, start: 0, bytes }] });
 * const [tiles] = await store.readTiles([{ groupBy: 'a1b2', key: 'card_1' }]);
 */
export interface OnlineStore {
  readonly kind: 'lmdb' | 'redis';
  /**
   * The most UTF-8 bytes an entity's address may take: `key` plus `groupBy` plus one separator (layout 2),
   * see `entityKeyRoom`. Absent: no limit worth checking (Redis keys may take 512 MB). A commit with a
   * longer address throws, so writers must leave such entities out (stream workers count them, worker.ts).
   */
  readonly maxKeyBytes?: number;
  /**
   * Reads every tile of each requested `(groupBy, key)` in ONE round trip (one read transaction or one
   * pipeline). Result `i` belongs to request `i`, tiles sorted by `(level, start)`, then the entity's event
   * run if it has one (layout 5); an unknown entity gives an empty array. Duplicate requests are allowed
   * (callers should dedupe; the store does not).
   */
  readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]>;
  /**
   * `readTiles` without copies or objects per tile, for the fetch path: in ONE round trip, calls
   * `visit(i, tiles)` for each request `i` in order with the same entries `readTiles` would return for it.
   * `tiles` (and any bytes taken from it) is valid only during that call: the store reuses it, so `visit`
   * must not read the store itself.
   */
  readEntities?(
    requests: readonly TileRequest[],
    visit: (index: number, tiles: TileColumns) => void,
  ): Promise<void>;
  /** Atomically applies tile upserts/deletes, event-run appends/deletes and offsets. */
  commit(batch: CommitBatch): Promise<CommitResult>;
  /**
   * Bulk load (benchmarks, imports into a fresh store): sets each entity's complete stored tiles, replacing
   * its tiles and dropping its event run, in large transactions or pipelines. Not atomic as a whole and
   * writes no offsets. Entities that share one `tiles` array are encoded once.
   */
  loadEntities?(entities: readonly EntityTiles[]): Promise<void>;
  /** Reads offsets; with `names`, only those (missing ones are absent from the result). */
  readOffsets(names?: readonly string[]): Promise<Record<string, string>>;
  /**
   * Adds integer deltas to named usage counters (`usage/...`, see online/usage-counters.ts), atomically and as
   * increments (Redis HINCRBY), so several serving nodes sharing one store add up instead of overwriting.
   */
  addCounters(deltas: Readonly<Record<string, number>>): Promise<void>;
  /** Reads the usage counters whose names start with `prefix` (all without it). */
  readCounters(prefix?: string): Promise<Record<string, number>>;
  /**
   * Checks that the store answers, within `timeoutMs` (default: its command timeout); rejects with a
   * `StoreUnavailableError` (store-unavailable.ts) naming the store and the fix otherwise. Absent: an
   * embedded store (LMDB), always reachable. For health checks (/readyz), not the fetch path.
   */
  ping?(timeoutMs?: number): Promise<void>;
  /** Counts entities, tiles and bytes (scans; meant for usage reports, not the hot path). */
  stats(): Promise<StoreStats>;
  /**
   * Deletes every stored entity (tiles, event run, exact-from marker) of the store ids `ids` in ONE scan of
   * the store, in batches (LMDB: a write transaction each; Redis: an UNLINK per SCAN reply), calling
   * `onProgress` after each with the entities deleted so far. Not atomic and not fenced: for `tessera
   * prune`, which deletes only ids no writer uses (prune.ts). Returns the entities deleted per id.
   */
  deleteGroupBys(
    ids: readonly string[],
    onProgress?: (deleted: number) => void,
  ): Promise<Record<string, number>>;
  /**
   * Deletes offsets entries (absent ones are skipped). Unfenced: for entries no writer uses any more (a
   * retired store id's `upload/<id>` and `catchup/<id>/...`, prune.ts); a writer that expects one of them
   * is fenced by its next commit, unless it expected it absent.
   */
  deleteOffsets(names: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The UTF-8 bytes an entity key of store id `groupBy` may take in a store whose addresses are limited to
 * `maxKeyBytes` (`OnlineStore.maxKeyBytes`; undefined: Infinity).
 *
 * @example
 * const room = entityKeyRoom(store.maxKeyBytes, groupById(cardStats));
 * if (Buffer.byteLength(key) > room) skip(key); // the store would refuse it
 */
export function entityKeyRoom(maxKeyBytes: number | undefined, groupBy: string): number {
  return maxKeyBytes === undefined ? Infinity : maxKeyBytes - 1 - Buffer.byteLength(groupBy);
}

/** Whether `key` takes at most `room` UTF-8 bytes; measured in bytes only when it might not (hot paths). */
export const fitsUtf8 = (key: string, room: number): boolean =>
  key.length * 3 <= room || Buffer.byteLength(key) <= room;

/** How to open a store; see open-store.ts. */
export type StoreConfig =
  | { readonly kind: 'lmdb'; readonly path: string }
  | {
      readonly kind: 'redis';
      readonly url: string;
      readonly prefix?: string;
      /**
       * Log partitions of the writer opening it (workers, upload); the Redis store keys entities by
       * partition (one hash slot each, Redis Cluster) and its first write records the count; readers omit
       * it and adopt the recorded count.
       */
      readonly partitions?: number;
      /** Entities per Redis commit script (redis-store.ts `RedisStoreOptions.commitChunkEntities`; tests). */
      readonly commitChunkEntities?: number;
      /** Reply timeout of store commands (redis-store.ts `RedisStoreOptions.commandTimeoutMs`; default 2000). */
      readonly commandTimeoutMs?: number;
    };

/** @internal Counter deltas must be safe integers (HINCRBY semantics); names the offending counter otherwise. */
export function checkCounterDeltas(entries: readonly [string, number][]): void {
  for (const [name, d] of entries)
    if (!Number.isSafeInteger(d))
      throw new Error(
        `usage counter '${name}': delta ${d} is not a safe integer; counters add whole units (e.g. µs, not ms)`,
      );
}
