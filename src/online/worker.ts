import { randomBytes } from 'node:crypto';
import { ByteWriter } from '../aggregate/bytes.ts';
import { EVENT_RUN_LEVEL, RunBatch, writeRunHeader } from '../aggregate/event-run.ts';
import { retentionHorizonMs } from '../aggregate/tile-cover.ts';
import { TileSet } from '../aggregate/tiles.ts';
import type { GroupByDef, Row, Scalar } from '../define/types.ts';
import { entityKey } from './entity-key.ts';
import { EXACT_FROM_LEVEL, encodeExactFrom, markerCount, readExactFrom } from './exact-from.ts';
import { compileGroupBy } from './fetch-group-bys.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import { IdTupleTable } from './id-tuple-table.ts';
import type { EventLog, LogRecord } from './log/event-log.ts';
import { logEventCheck } from './log-event-check.ts';
import { deriveAndFilter } from './source-transform.ts';
import {
  entityKeyRoom,
  fitsUtf8,
  type OnlineStore,
  type RunWrite,
  type StoredTile,
  type TileRequest,
  type TileWrite,
} from './store.ts';
import type { Topic } from './topics.ts';

/**
 * Stream worker: consumes one partition of one log topic and keeps the tiles of every group-by of that
 * topic up to date in the store.
 *
 * Invariants:
 * 1. Single writer: exactly one worker runs per (topic, partition) (fencing, invariant 8, stops a second
 *    one), and topics.ts routes every entity of a group-by to exactly one partition, so what the worker
 *    caches about its entities (loaded tiles, run sizes) stays true between batches; entities needing their
 *    tiles are read in one round trip per batch. Routing finds cached entities by interned key values
 *    (`KeyDict`: an id per value of a key column that a cached entity holds, shared by the group-bys keyed
 *    on the column), so an event's value of each key column is looked up once, whatever the group-bys; an
 *    id is freed with the last cached entity holding it, and only then reused. When evictions leave most
 *    ids free, the free ids at the end are dropped, and the rest renumbered when that saves more ids than
 *    entities it rewrites, so routing's tables follow what is cached, not the largest batch.
 * 2. Exactly once: a batch's tile writes, tile deletes (retention), run appends and deletes, and the next
 *    offset, watermark and counters are ONE store commit. After a crash the worker restarts from the
 *    committed offset with the committed state, so no event is lost or counted twice. A failed commit drops
 *    the cache (it may hold uncommitted updates) and the batch is redone from the committed offset.
 * 3. `seq` of an event is its log offset (source order; breaks `ts` ties for first/last).
 * 4. Late events: the watermark is the running max `ts` of the partition. An event with
 *    `ts < watermark - exactHistory - horizon` (horizon = longest window + its hop; lifetime-only
 *    group-bys have none) cannot change any query at t >= watermark - exactHistory: it is counted in
 *    `lateBeyondRetention` per group-by (persisted with the offsets, reported in stats) and not applied,
 *    and its entity is rolled up in that batch with its exact-from time raised to the compaction point (a
 *    query before that could have seen it). Later but retained events are applied. The decision depends
 *    only on log order, so it is the same after a restart. The watermark never moves past wall-clock time
 *    + `maxFutureMs`: one event with a bogus future `ts` must not make every real event "late" or compact
 *    away the tiles that queries at `now` need (a lower watermark only keeps more tiles; results stay exact).
 * 5. Batch upload cutoff: events with `ts < upload/<groupById>` are already in the uploaded tiles and are
 *    counted as `beforeUploadCutoff`, not applied. The cutoffs are read when the worker opens: run
 *    `tessera upload` before starting workers (or restart them after).
 * 6. Retention: a roll-up (invariant 7) compacts the entity to `watermark - exactHistory` (tiles.ts
 *    invariants 6 and 11), so fetches up to `exactHistory` before the newest event stay exact, and deletes
 *    the evicted tiles in the same commit, together with the entity's exact-from marker (exact-from.ts)
 *    when compaction raised it. Between roll-ups an entity keeps more tiles, never fewer (more stays
 *    exact). Entities that stop receiving events keep their last tiles (bounded by the windows' spans plus
 *    `exactHistory`) and run (bounded below) until touched again. A hot key's fine-level tiles are in effect
    its events of the last `exactHistory`, so an entity left with more than `maxTilesPerKey` tiles is
    compacted further (TileSet.retainBounded), down to `min(watermark, wall clock) - hotKeyExactMs` at
    most (10 s): its exact-from time says how far back it is exact, and fetches at the current time stay
    exact, from serving clocks up to that much behind the worker's.
 * 7. Event runs (aggregate/event-run.ts): an applied event is appended, as raw inputs, to its entity's
 *    stored run, unless that would take the run past `maxRunBytes` (or an event of the entity was dropped
 *    as late): then the run and the batch's events are rolled up into the tiles and the run is deleted, in
 *    the same commit. So a sparse key costs a few bytes per event instead of a rewrite of its tiles, and a
 *    dense key is rolled up about once per batch. Readers merge tiles and run (each event is in exactly one
 *    of them). Loaded tiles are only kept while the run is empty, so they always equal the store. The worker
 *    keeps a run's size, never its bytes (the store appends): the size is learnt from each commit; after a
 *    restart or the entity's eviction from the cache (`maxCachedRuns`) it is unknown, so one append may
 *    pass the limit: a run found past it after a commit is rolled up in the next batch, even without new
 *    events. Runs thus stay below `maxRunBytes` plus one batch's events of the entity.
 * 8. Fencing: every commit expects the partition's stored offset to be the one this worker last committed
 *    (or read when it opened); stores that support `CommitBatch.expect` reject the commit otherwise
 *    (`fenced:`), so if two workers run on one partition only one of them commits each offset range. The
 *    fenced worker stops for good (`step`/`run` reject) instead of retrying, since it is not the writer.
 *    Commits also expect `fenceOn` (the partition's members entry, catch-up.ts), so a process with other
 *    definitions that took the partition over stops this one even while the offset is unchanged.
 *    A commit that failed without a reply may still have been applied: before retrying, the worker reads
 *    the stored offset and commit id (`commitIdName`: a random writer id and a commit number, written
 *    with the offset) and adopts the commit if they are the ones it wrote (`adoptLostCommit`); its warnings
 *    and `onCommit` are given then. So does a fenced commit (a client's resend of a commit whose first send
 *    was applied is fenced by it, or an earlier failed commit landing late fences the redo of its batch):
 *    a stored commit id of any commit tried since the last known one is adopted. Another writer that
 *    reached the same offset (same batch size, same log) wrote another writer id, so it still stops it.
 * 9. Group-bys of the topic with the same store id (equal computations under different names, group-by-id.ts)
 *    are processed once: they share tiles and runs, so applying both would add every event twice.
 * 10. Poison events: a record a producer wrote to the broker directly (not through ingest, which refuses
 *    them) that could never be applied is counted and skipped, never retried: otherwise every commit of the
 *    partition would fail the same way and no later event would ever be applied. `invalid`: not a valid
 *    event of the source (not JSON, not an object, schema-invalid; log-event-check.ts), for every group-by;
 *    `keyTooLong`: its entity key is longer than the store can address (`OnlineStore.maxKeyBytes`; LMDB), per
 *    group-by. Both are persisted with the offsets like `lateBeyondRetention`, reported in `stats()`, and
 *    warned about (`onWarning`) with the offset and the fix. Like lateness, the decision depends only on the
 *    event and the store kind, so it is the same after a restart. Store errors are never skipped: a failed
 *    commit is retried from the committed offset (invariant 2).
 * 11. Log behind the store: a committed offset past the end of the log partition means the log is not the
 *    one the offsets were committed against (deleted and recreated, truncated, flushed, lost its un-synced
 *    tail in a crash or a Redis failover, or another log): reading on would wait, then silently skip the
 *    first events of the new log up to that offset. The worker compares the two when it opens (and refuses
 *    to open, or with `logBehindAtOpen: 'stop'` opens stopped) and, at most once per `endCheckInterval`,
 *    when a read comes back empty or fails (NATS and Kafka readers refuse an offset past the end
 *    themselves), then stops for good, as when fenced; never per event. Only two answers that say so, asked
 *    at least `LOG_END_CHECK_MS` apart, stop it (a partition missing from an answer says nothing), so one
 *    partial or glitched answer cannot. The workers of a log share its answers (`sharedEndOffsets`), but
 *    only an answer asked after the worker last saw its offset change counts (an older one may predate its
 *    last commit). It cannot tell once the new log has grown past the offset while the worker was not idle.
 */

export interface WorkerOptions {
  readonly log: EventLog;
  readonly store: OnlineStore;
  readonly topic: Topic;
  readonly partition: number;
  readonly groupById?: (g: GroupByDef) => string;
  /**
   * Max records per batch (one store commit each; default `DEFAULT_BATCH_SIZE`). A batch takes what the
   * log holds up to this, so a caught-up worker commits small fresh batches and a worker that is behind
   * takes big ones, which amortize commits and the roll-ups of dense entities (about 1.7x the events per
   * CPU-second of 5000-record batches on the fraud example).
   */
  readonly batchSize?: number;
  /**
   * Records per log read while a batch fills (default `READ_CHUNK`): a batch is read in chunks of this
   * many, so its parsed rows die young; it ends at a read that returns fewer than asked. Commits do not
   * depend on it.
   */
  readonly readChunk?: number;
  /**
   * Bounds a batch by the size of its events too (default 64 MiB of event JSON), so big events make
   * smaller batches: each batch asks for at most this many bytes' worth of records, estimated from the
   * events of the previous batch.
   */
  readonly maxBatchBytes?: number;
  /**
   * How long before the watermark fetches stay exact (default 1 hour): tiles are compacted to
   * `watermark - exactHistoryMs` (invariant 6). 0 keeps only what fetches at the watermark need.
   */
  readonly exactHistoryMs?: number;
  /** How far past wall-clock time the watermark may move (default 1 minute of clock skew); see invariant 4. */
  readonly maxFutureMs?: number;
  /**
   * How far back a hot key stays exact at least (default `DEFAULT_HOT_KEY_EXACT_MS`): compaction for
   * `maxTilesPerKey` never passes `min(watermark, wall clock) - hotKeyExactMs` (invariant 6).
   */
  readonly hotKeyExactMs?: number;
  /**
   * An entity whose tiles outnumber this after a roll-up keeps less exact history than `exactHistoryMs`
   * (invariant 6; default `DEFAULT_MAX_TILES_PER_KEY`), so a hot key's stored value stays bounded
   * whatever its event rate.
   */
  readonly maxTilesPerKey?: number;
  /** How long an idle read waits for new records. */
  readonly pollMs?: number;
  /**
   * Entities per store read when a batch loads tiles (default 4096): each read must be answered within the
   * store's command timeout (Redis: 2 s, over any link), and a partition's only writer needs no snapshot
   * across its own reads.
   */
  readonly loadChunkEntities?: number;
  /**
   * Max `(group-by, key)` tile sets kept loaded in memory (default 20000). Materialized tile sets of long
   * windows take tens of KB each; an entity whose tiles are not loaded costs only its run size (below).
   */
  readonly maxCachedEntities?: number;
  /**
   * Max `(group-by, key)` entities remembered without tiles (their stored run size, ~200 bytes each;
   * default 500000). Knowing the size is what bounds runs (invariant 7) without reading them.
   */
  readonly maxCachedRuns?: number;
  /**
   * An entity's events are appended to its stored event run until the run would exceed this many bytes,
   * then the run is rolled up into its tiles (default 2048, about 30 events). Larger values write less per
   * event; readers merge up to this many bytes of raw events per entity.
   */
  readonly maxRunBytes?: number;
  /**
   * What a log that ends before the committed offset (invariant 11) does at open: `'refuse'` (default)
   * rejects `createStreamWorker`; `'stop'` opens the worker stopped for good (`step`, `drain` and `run`
   * reject with the reason; `stats` work), so a serving node restarted in that state still serves fetches
   * and reports it, as a running one would.
   */
  readonly logBehindAtOpen?: 'refuse' | 'stop';
  /**
   * Prefix of the worker's state names in the store (offset, watermark, counters, commit id; default none).
   * A catch-up worker (catch-up.ts) keeps its progress under `catchup/<id>/`, apart from the partition's.
   */
  readonly statePrefix?: string;
  /**
   * More stored values every commit expects, besides the offset (fencing, invariant 8). The runner passes
   * the partition's members entry as its catch-up left it (catch-up.ts), so a process running other
   * definitions of the topic, whose entry differs, stops at its next commit instead of applying events the
   * other ids would miss.
   */
  readonly fenceOn?: Readonly<Record<string, string>>;
  /** Called after each commit (metrics, freshness). */
  readonly onCommit?: (info: CommitInfo) => void;
  /** Called when a batch fails in `run` (it then retries from the committed offset); default: console.error. */
  readonly onError?: (err: Error) => void;
  /**
   * Called after a commit that skipped poison events (invariant 10), once per kind and group-by, with what
   * was skipped, where and the fix; default: console.warn.
   */
  readonly onWarning?: (message: string) => void;
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
  /** Events whose entity key is too long for the store (invariant 10): counted, not applied. */
  keyTooLong: number;
  /** Events of the topic dropped by the source's filter (the same for every group-by of the topic). */
  filtered: number;
  /** Records of the topic that are not valid events of its source (invariant 10; the same for every group-by). */
  invalid: number;
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
  /** Records skipped as invalid events (invariant 10). */
  readonly invalid: number;
  readonly batches: number;
  readonly cachedEntities: number;
  readonly groupBys: Readonly<Record<string, GroupByCounters>>;
  /**
   * Group-bys of the topic that are new to the partition and being caught up on the log before the worker
   * applies events (catch-up.ts); absent or empty: none. Their features are `stale` meanwhile.
   */
  readonly catchingUp?: readonly CatchingUp[];
  /** Group-bys lacking the source's events before their topic's log started (catch-up.ts invariant 6). */
  readonly missingHistory?: MissingHistory;
}

/** Group-bys of a topic partition that lack the source's events before its log started (`logstart/`). */
export interface MissingHistory {
  readonly groupBys: readonly string[];
  /** When the partition's first worker found its log newer than the source's history (epoch ms). */
  readonly since: number;
}

/** A store id of a topic being caught up on the log's offsets below `target` (catch-up.ts). */
export interface CatchingUp {
  readonly id: string;
  /** Its group-bys' names (equal computations share one id). */
  readonly groupBys: readonly string[];
  /** Offsets below this are applied to it. */
  readonly nextOffset: number;
  /** The partition's committed offset, where the catch-up ends. */
  readonly target: number;
}

export interface StreamWorker {
  /** Processes at most one batch (waiting up to `pollMs` for records); returns the number of records. */
  step(): Promise<number>;
  /** Runs batches until the log end observed at call time is committed. */
  drain(): Promise<void>;
  /**
   * Runs until `signal` aborts, retrying failed batches from the committed offset; rejects when the
   * worker stops for good: fenced (another writer committed its partition, invariant 8), or its log
   * partition ends before its committed offset (invariant 11).
   */
  run(signal: AbortSignal): Promise<void>;
  stats(): WorkerStats;
}

/** The sizes of a worker's routing tables (`checkRouting`). */
export interface RoutingSizes {
  readonly cachedEntities: number;
  /**
   * Per key column's `KeyDict`: ids made (held or free), ids held, values interned, room in `refs`, and
   * times its ids were renumbered (`compactDicts`).
   */
  readonly dicts: readonly {
    column: string;
    made: number;
    held: number;
    interned: number;
    refs: number;
    renumbered: number;
  }[];
  /** Per group-by: its cached entities, and the length of its `byId` or the slots of its `byIds`. */
  readonly groups: readonly { name: string; entities: number; index: number }[];
}

const routingCheckOf = new WeakMap<StreamWorker, () => RoutingSizes>();

/**
 * For tests, between steps: checks a worker's routing tables (invariant 1: each cached entity is found by
 * the ids of its key's values, which name those values, and each id is held once per cached entity whose
 * key holds it), throwing what is wrong, and returns their sizes, which after a commit follow what the
 * worker caches, whatever keys it saw before (`compactDicts`).
 */
export function checkRouting(worker: StreamWorker): RoutingSizes {
  const check = routingCheckOf.get(worker);
  if (check === undefined) throw new Error('checkRouting: not a worker made by createStreamWorker');
  return check();
}

interface Entity {
  /** Index of the entity's group-by in `groups`. */
  readonly gi: number;
  readonly key: string;
  /**
   * Where routing finds it: for a one-column key, the id of its value in the column's `KeyDict` (its index
   * in `GroupState.byId`); for more columns, its slot in `GroupState.byIds`, which holds the ids of its
   * values. (A one-element array of ids took ~56 bytes per entity.) The ids are held: see `KeyDict.refs`.
   */
  slot: number;
  /** Neighbours in its group-by's `EntityQueue` (least recently used first). */
  prev: Entity | null;
  next: Entity | null;
  /**
   * The entity's tiles when loaded: then they equal what the store holds and the stored run is empty
   * (invariant 7). They track changed and stored tiles (tiles.ts invariant 10), so tiles created and
   * evicted between two commits cost the store nothing. Null when not loaded.
   */
  tiles: TileSet | null;
  /** The exact-from time the store holds for this entity (-Infinity: no marker); valid when loaded. */
  storedExactFrom: number;
  /** Bytes in the entity's stored event run; -1 when unknown (not seen since the worker opened). */
  runBytes: number;
  /** `TOUCHED`, `LATE_DROPPED` and `USED` (one field for three booleans: 16 bytes less per entity). */
  flags: number;
  /**
   * This batch's events to apply to this entity, in log order: a list of batch record indices chained
   * through the batch's `links` array (no array per entity per batch): first index (-1: none), last, count.
   */
  first: number;
  last: number;
  count: number;
}

/** `Entity.flags`: listed in this batch's `touched` list of its group-by. */
const TOUCHED = 1;
/** `Entity.flags`: an event of this entity was dropped as late beyond retention in this batch (invariant 4). */
const LATE_DROPPED = 2;
/** `Entity.flags`: touched since the eviction scan last passed it (second-chance LRU, no re-insertion per touch). */
const USED = 4;

interface GroupState {
  readonly def: GroupByDef;
  /** Names of the topic's other group-bys with the same store id (invariant 9): one computation. */
  readonly twins: string[];
  readonly id: string;
  readonly compiled: ReturnType<typeof compileGroupBy>;
  readonly horizon: number;
  readonly cutoff: number;
  /** UTF-8 bytes an entity key may take in the store (`entityKeyRoom`; Infinity: no limit). */
  readonly keyRoom: number;
  /** Every cached entity, least recently used first. */
  readonly entities: EntityQueue;
  /** Per key column, its `KeyDict` (index in `dicts`). */
  readonly dictOf: readonly number[];
  /**
   * One-column keys: the cached entities by their value's id (routing looks them up here); else null.
   * Replaced when the column's `KeyDict` renumbers its ids (`compactDicts`).
   */
  byId: (Entity | undefined)[] | null;
  /**
   * Multi-column keys: the cached entities by their values' ids, so routing an event builds no entity key
   * string (built once per new entity). Null for one column.
   */
  readonly byIds: IdTupleTable<Entity> | null;
  /** The cached entities whose tiles are loaded, least recently used first. */
  readonly loaded: Map<string, Entity>;
  /** Entities whose run grew past `maxRunBytes`: rolled up in the next batch even without events. */
  overfull: Entity[];
  /** Running estimate of one event's bytes in this group-by's runs (decides roll-ups before encoding). */
  eventBytes: number;
  counters: GroupByCounters;
}

/** A batch's commit until its reply: what `adoptLostCommit` checks the store for, and what to report then. */
interface UncertainCommit {
  /** The offset and commit id it writes (`commitIdName`). */
  readonly offset: string;
  readonly id: string;
  /** Its warnings (invariant 10; a failed read) and `CommitInfo` fields, given once it is known committed. */
  readonly notes: readonly string[];
  readonly records: number;
  readonly tileWrites: number;
  readonly started: number;
}

/**
 * A group-by's cached entities in least recently used order, as a list through the entities themselves: a
 * Map keyed by entity key strings (as this was) hashed every new key (~1.3 us each; most keys of a
 * 200k-event drain are new) only to keep this order. Same order as such a Map: `push` appends, `remove`
 * unlinks, and a remove + push moves an entity to the back.
 */
class EntityQueue {
  head: Entity | null = null;
  tail: Entity | null = null;
  size = 0;

  push(e: Entity): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.size++;
  }

  remove(e: Entity): void {
    if (e.prev === null) this.head = e.next;
    else e.prev.next = e.next;
    if (e.next === null) this.tail = e.prev;
    else e.next.prev = e.prev;
    e.prev = e.next = null;
    this.size--;
  }

  /** Forgets every entity (they are dropped with it). */
  clear(): void {
    this.head = this.tail = null;
    this.size = 0;
  }
}

/**
 * One key column's values, interned (invariant 1): a chunk's events look their value up here once per
 * column, not once per group-by keyed on it (three of the fraud example's nine read card_id), and group-bys
 * then find their entities by id (`GroupState.byId`, `byIds`) rather than in Maps keyed by strings.
 */
interface KeyDict {
  readonly column: string;
  /** Value (`keyPart`) to id. */
  readonly ids: Map<string, number>;
  /** Id to value ('' when free). */
  values: string[];
  /** Per id, the cached entities (of any group-by) whose key holds it: an id is freed when none does. */
  refs: Int32Array;
  /**
   * Freed ids, reused first, so ids (and the arrays they index) stay as dense as the cached values; when
   * most ids are free after evictions (a burst of keys), the dictionary shrinks (`compactDicts`).
   */
  readonly free: number[];
  /** Ids made while interning the current chunk: freed after its routing unless an entity holds them. */
  readonly fresh: number[];
  /** Group-bys keyed on this column: they share its interning time (`GroupByCounters.cpuMs`). */
  readonly users: number[];
  /** Times its ids were renumbered (`compactDicts`; `checkRouting` reports it). */
  renumbered: number;
}

/** A store write the worker fills in and reuses (see `tileWrites`). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Mean JSON size of a batch's events, from up to 16 of them spread over the batch. */
function eventBytesOf(records: readonly LogRecord[]): number {
  const step = Math.max(1, Math.floor(records.length / 16));
  let bytes = 0;
  let count = 0;
  for (let i = 0; i < records.length; i += step, count++) bytes += JSON.stringify(records[i].event).length;
  return Math.max(1, bytes / count);
}

/**
 * Records per log read while a batch fills: a batch of up to `batchSize` records is read in chunks of this
 * many, each checked, encoded and routed as soon as it arrives, so its parsed rows die young and one read
 * holds the event loop for a chunk only. Read whole, a 50k-record batch's rows lived through every pass
 * (a sixth of what the scavenger kept on a fraud-example drain) and its read blocked for ~0.5 s.
 */
export const READ_CHUNK = 2048;

/**
 * Ids a `KeyDict` keeps room for at least; it shrinks (`compactDicts`) only when it has more than this
 * many and at most a quarter of them are held.
 */
const MIN_DICT_IDS = 256;

/** Longest stretch a batch runs without letting the event loop serve other work (see `yieldIfBusy`). */
const YIELD_AFTER_MS = 25;

/**
 * Default of `WorkerOptions.batchSize` (`tessera stream --batch-size`, `tessera serve`, bench:stream). Since
 * batches are read in chunks (`READ_CHUNK`), a batch costs compact per-record data, not its parsed rows, so
 * it could double: 100k-record batches drain the fraud example ~1.16x faster per CPU-second than 50k ones on
 * LMDB (an entity several events of one batch touch is written once), with a lower peak RSS than 50k ones
 * read whole.
 */
export const DEFAULT_BATCH_SIZE = 100_000;

/** Default of `WorkerOptions.exactHistoryMs` and `--exact-history`: fetches up to 1 hour back stay exact. */
export const DEFAULT_EXACT_HISTORY_MS = 3_600_000;

/**
 * Default of `WorkerOptions.maxTilesPerKey` and `--max-tiles-per-key`: a key with about 2 events/s in
 * distinct milliseconds keeps the full default hour; a busier one keeps less (its exact-from time says how
 * much). An entity's coarse tiles number a few hundred.
 */
export const DEFAULT_MAX_TILES_PER_KEY = 8192;

/** Default of `WorkerOptions.maxFutureMs`: how far ahead of wall-clock time event clocks may run. */
export const DEFAULT_MAX_FUTURE_MS = 60_000;

/**
 * Default of `WorkerOptions.hotKeyExactMs`: fetches at the current time stay exact for hot keys with up to
 * this much clock difference between serving nodes and workers. Their 1 ms tiles are in effect their
 * events, and every roll-up rewrites them: a minute of them was ~12 MB for the fraud example's gmail.com at
 * 3k events/s.
 */
export const DEFAULT_HOT_KEY_EXACT_MS = 10_000;

/** How often an idle worker at most compares its committed offset with the log's end (invariant 11). */
const LOG_END_CHECK_MS = 1000;
/** The longest wait between two log-end checks, however slow the answers. */
const MAX_LOG_END_CHECK_MS = 10_000;

/** An answer of `log.endOffsets(topic)`: when it was asked. */
interface EndsAnswer {
  readonly askedAt: number;
  readonly ends: Promise<number[]>;
}

/** Per log and topic, the last `endOffsets` answer (see `sharedEndOffsets`). */
const lastEnds = new WeakMap<EventLog, Map<string, EndsAnswer>>();
/** Per log and topic, how long the last two timed answers took (see `endCheckInterval`). */
const endsTook = new WeakMap<EventLog, Map<string, [number, number]>>();

/**
 * `log.endOffsets(topic)` as asked at `since` or later: the last answer, of any worker of this log, if it
 * was asked since (even if it has not come yet), else a new one. One answer covers every partition, so the
 * idle workers of a topic share it rather than each asking for every partition's end. Only `timed` answers
 * (idle checks) count toward `endCheckInterval`: the one asked at open also waits for the connection.
 */
function sharedEndOffsets(log: EventLog, topic: string, since: number, timed: boolean): EndsAnswer {
  let byTopic = lastEnds.get(log);
  if (byTopic === undefined) lastEnds.set(log, (byTopic = new Map()));
  const last = byTopic.get(topic);
  if (last !== undefined && last.askedAt >= since) return last;
  const askedAt = performance.now();
  const answer: EndsAnswer = { askedAt, ends: log.endOffsets(topic) };
  byTopic.set(topic, answer);
  answer.ends.then(
    () => {
      if (!timed) return;
      let took = endsTook.get(log);
      if (took === undefined) endsTook.set(log, (took = new Map()));
      const ms = performance.now() - askedAt;
      took.set(topic, [took.get(topic)?.[1] ?? ms, ms]);
    },
    () => {
      if (byTopic.get(topic) === answer) byTopic.delete(topic); // not shared once failed
    },
  );
  return answer;
}

/**
 * How long an idle worker waits between log-end checks: `LOG_END_CHECK_MS`, or 100 times as long as the
 * faster of the last two answers took, so that checks stay below ~1% of the time (a reader of the file log
 * counts the records of each partition's last segment), but at most `MAX_LOG_END_CHECK_MS`. The faster of
 * two: one answer slowed by a reconnect does not space the checks out.
 */
function endCheckInterval(log: EventLog, topic: string): number {
  const took = endsTook.get(log)?.get(topic);
  const ms = took === undefined ? 0 : Math.min(took[0], took[1]);
  return Math.min(MAX_LOG_END_CHECK_MS, Math.max(LOG_END_CHECK_MS, 100 * ms));
}

/** Offset names in the store (see store.ts). */
export const offsetName = (topic: string, p: number) => `stream/${topic}/${p}`;
export const watermarkName = (topic: string, p: number) => `watermark/${topic}/${p}`;
export const countersName = (topic: string, p: number) => `counters/${topic}/${p}`;
/** The id of the partition's last commit (`<writer id>.<commit number>`), written with its offset (invariant 8). */
export const commitIdName = (topic: string, p: number) => `commit/${topic}/${p}`;
export const uploadCutoffName = (groupById: string) => `upload/${groupById}`;

const zeroCounters = (): GroupByCounters => ({
  applied: 0,
  lateBeyondRetention: 0,
  beforeUploadCutoff: 0,
  nullKey: 0,
  keyTooLong: 0,
  filtered: 0,
  invalid: 0,
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
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const readChunk = opts.readChunk ?? READ_CHUNK;
  if (!(Number.isInteger(readChunk) && readChunk >= 1))
    throw new Error(
      `stream worker: readChunk must be an integer >= 1, got ${readChunk}; pass e.g. ${READ_CHUNK}`,
    );
  const loadChunk = opts.loadChunkEntities ?? 4096;
  if (!(loadChunk >= 1)) throw new Error(`loadChunkEntities must be at least 1, got ${loadChunk}`);
  const maxBatchBytes = opts.maxBatchBytes ?? 64 * 2 ** 20;
  /** Records the next read asks for: `batchSize`, lowered when events are big (`maxBatchBytes`). */
  let readSize = batchSize;
  const pollMs = opts.pollMs ?? 20;
  const maxFutureMs = opts.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS;
  const hotKeyExactMs = opts.hotKeyExactMs ?? DEFAULT_HOT_KEY_EXACT_MS;
  if (!(hotKeyExactMs >= 0))
    throw new Error(
      `stream worker: hotKeyExactMs must be a duration >= 0 ms, got ${hotKeyExactMs}; pass e.g. 10000`,
    );
  const maxLoaded = opts.maxCachedEntities ?? 20_000;
  const maxRuns = opts.maxCachedRuns ?? 500_000;
  const maxRunBytes = opts.maxRunBytes ?? 2048;
  const exactHistoryMs = opts.exactHistoryMs ?? DEFAULT_EXACT_HISTORY_MS;
  const maxTilesPerKey = opts.maxTilesPerKey ?? DEFAULT_MAX_TILES_PER_KEY;
  if (!(maxTilesPerKey >= 1))
    throw new Error(
      `stream worker: maxTilesPerKey must be at least 1, got ${maxTilesPerKey}; pass e.g. 8192 (--max-tiles-per-key)`,
    );
  if (!(exactHistoryMs >= 0))
    throw new Error(
      `stream worker: exactHistoryMs must be a duration >= 0 ms, got ${exactHistoryMs}; pass e.g. 3600000 (--exact-history 1h)`,
    );
  const timeColumn = topic.source.timeColumn;
  const state = opts.statePrefix ?? '';
  const fenceOn = opts.fenceOn ?? {};
  const names = {
    offset: state + offsetName(topic.name, partition),
    watermark: state + watermarkName(topic.name, partition),
    counters: state + countersName(topic.name, partition),
    commit: state + commitIdName(topic.name, partition),
  };
  const ids = topic.groupBys.map(idOf);
  /** Before the committed offset is read: it was committed earlier. */
  const openedAt = performance.now();
  const saved = await store.readOffsets([
    names.offset,
    names.watermark,
    names.counters,
    ...ids.map(uploadCutoffName),
  ]);
  const savedCounters: Record<string, GroupByCounters> = saved[names.counters]
    ? JSON.parse(saved[names.counters])
    : {};

  const groups: GroupState[] = [];
  const dicts: KeyDict[] = [];
  /** The index in `dicts` of `column`'s dictionary, made on first use. */
  const dictFor = (column: string): number => {
    const d = dicts.findIndex((k) => k.column === column);
    if (d >= 0) return d;
    const dict: KeyDict = {
      column,
      ids: new Map(),
      values: [],
      refs: new Int32Array(MIN_DICT_IDS),
      free: [],
      fresh: [],
      users: [],
      renumbered: 0,
    };
    return dicts.push(dict) - 1;
  };
  topic.groupBys.forEach((def, i) => {
    const twin = groups.find((g) => g.id === ids[i]);
    if (twin !== undefined) {
      twin.twins.push(def.name);
      // Only one name of a computation carries its CPU time (see `countersByName`).
      twin.counters.cpuMs += savedCounters[def.name]?.cpuMs ?? 0;
      return;
    }
    const compiled = compileGroupBy(def);
    const cutoff = saved[uploadCutoffName(ids[i])];
    const dictOf = def.keys.map(dictFor);
    for (const d of new Set(dictOf)) dicts[d].users.push(groups.length);
    groups.push({
      def,
      twins: [],
      id: ids[i],
      compiled,
      horizon: retentionHorizonMs(compiled.windows),
      cutoff: cutoff === undefined ? -Infinity : Number(cutoff),
      keyRoom: entityKeyRoom(store.maxKeyBytes, ids[i]),
      entities: new EntityQueue(),
      dictOf,
      byId: def.keys.length === 1 ? [] : null,
      byIds: def.keys.length === 1 ? null : new IdTupleTable<Entity>(def.keys.length),
      loaded: new Map(),
      overfull: [],
      eventBytes: 32,
      counters: { ...zeroCounters(), ...savedCounters[def.name] },
    });
  });
  const nG = groups.length;
  /**
   * Counters per group-by name: twins report their computation's events (the same for each) and CPU time
   * once, under the first name, so per-name sums (usage reports) count the work once.
   */
  const countersByName = (): Record<string, GroupByCounters> => {
    const out: Record<string, GroupByCounters> = {};
    for (const g of groups) {
      out[g.def.name] = { ...g.counters };
      for (const name of g.twins) out[name] = { ...g.counters, cpuMs: 0 };
    }
    return out;
  };

  let committedOffset = saved[names.offset] ? Number(saved[names.offset]) : 0;
  /** The offset as this worker last saw it stored: every commit expects it (fencing, invariant 8). */
  let storedOffset: string | null = saved[names.offset] ?? null;
  /**
   * Set once the worker stopped for good: a commit was fenced (invariant 8) or the log ends before the
   * committed offset (invariant 11).
   */
  let stoppedError: Error | null = null;
  /** When the log's end was last compared with the committed offset (invariant 11). */
  let logEndCheckedAt = performance.now();
  /**
   * `committedOffset` when the log's end was last compared with it, and a time no earlier than its commit:
   * only an end offsets answer asked after that can say the log ends before it (invariant 11).
   */
  let offsetSeen = committedOffset;
  let offsetSeenAt = openedAt;
  /**
   * When the first answer that put the log's end before `offsetSeen` was asked, or null: a second one asked
   * `LOG_END_CHECK_MS` later stops the worker (invariant 11).
   */
  let behindSince: number | null = null;
  /**
   * The last failed batch's commit: its reply may have been lost after the store applied it (a dropped
   * connection, a failover), so the next step reads the stored offset and commit id before going on.
   */
  let uncertain: UncertainCommit | null = null;
  /** This worker's id in commit ids: random, so no other writer's commit can carry one of its ids. */
  const writerId = randomBytes(8).toString('hex');
  let commitCount = 0;
  /** Ids of the commits tried since the last one known to be stored: any of them may still land. */
  const unconfirmed = new Set<string>();
  let committedWatermark = saved[names.watermark] ? Number(saved[names.watermark]) : -Infinity;
  let nextOffset = committedOffset;
  let watermark = committedWatermark;
  let recordsRead = 0;
  let filtered = 0;
  let invalid = 0;
  let batches = 0;
  /** Entities cached (with or without tiles) and entities with tiles loaded, over all group-bys. */
  let cached = 0;
  let loadedCount = 0;
  /** Encodes every run append of a batch; appends are views into one copy of it. */
  const runWriter = new ByteWriter(1 << 16);
  /** The batch's kept events, their inputs read and encoded once for all group-bys. */
  const inputs = new RunBatch(groups.map((g) => g.compiled.agg));
  /** One event's input values for `TileSet.addInputs` (copied if kept). */
  const valuesScratch: (Scalar | null)[] = [];

  /** One key column's value as routing compares it: `String(v)`, as `entityKey` joins it; null stays null. */
  const keyPart = (v: Scalar | null | undefined): string | null =>
    typeof v === 'string' ? v : v === null || v === undefined ? null : String(v);
  /** `entityByIds`'s answer for a new key too long for the store (then `tooLongKey` holds it). */
  const TOO_LONG = 0;
  let tooLongKey = '';

  /**
   * Per chunk record `i` and key column dictionary `d`, at `d * keyCap + i`: the id of the record's value
   * (-1: null), set for kept records by `internKeys` (reused; grown on demand).
   */
  let keyCap = 0;
  let keyIds = new Int32Array(0);

  /** A new id for `value` in `dict`, listed as fresh. */
  function intern(dict: KeyDict, value: string): number {
    const id = dict.free.length > 0 ? dict.free.pop()! : dict.values.length;
    if (id === dict.values.length) {
      dict.values.push(value);
      if (id >= dict.refs.length) {
        const refs = new Int32Array(2 * dict.refs.length);
        refs.set(dict.refs);
        dict.refs = refs;
      }
    } else dict.values[id] = value;
    dict.ids.set(value, id);
    dict.fresh.push(id);
    return id;
  }

  /** Drops a hold on `id` of `dict` (an evicted entity's), freeing it when it was the last. */
  function release(dict: KeyDict, id: number): void {
    if (--dict.refs[id] === 0) freeId(dict, id);
  }

  function freeId(dict: KeyDict, id: number): void {
    dict.ids.delete(dict.values[id]);
    dict.values[id] = '';
    dict.free.push(id);
  }

  /**
   * Pass 2a for a chunk of the batch (batch records `at`..): interns each kept event's value of every key
   * column into `keyIds`, one column at a time; its time counts for the group-bys keyed on the column.
   */
  function internKeys(records: readonly LogRecord[], at: number): void {
    const n = records.length;
    if (n > keyCap) {
      keyCap = Math.max(n, 2 * keyCap);
      keyIds = new Int32Array(keyCap * dicts.length);
    }
    for (let d = 0; d < dicts.length; d++) {
      const started = performance.now();
      const dict = dicts[d];
      const column = dict.column;
      const ids = dict.ids;
      const base = d * keyCap;
      for (let i = 0; i < n; i++) {
        if (keep[at + i] === 0) continue;
        const value = keyPart(records[i].event[column]);
        keyIds[base + i] = value === null ? -1 : (ids.get(value) ?? intern(dict, value));
      }
      const share = (performance.now() - started) / dict.users.length;
      for (const gi of dict.users) cpuAt[gi] += share;
    }
  }

  /** After a chunk's routing: frees the ids it interned that no entity took (e.g. events before the cutoff). */
  function releaseFresh(): void {
    for (const dict of dicts) {
      for (const id of dict.fresh) if (dict.refs[id] === 0) freeId(dict, id);
      dict.fresh.length = 0;
    }
  }

  /**
   * The cached entity of a multi-column key for chunk record `i`, whose key ids are all set (not null), added
   * when new; `TOO_LONG` for a new key too long for the store.
   */
  function entityByIds(gi: number, i: number): Entity | typeof TOO_LONG {
    const g = groups[gi];
    const cols = g.dictOf;
    const found = g.byIds!.get(keyIds, cols, keyCap, i);
    if (found !== undefined) return found;
    const key = entityKey(cols.map((d) => dicts[d].values[keyIds[d * keyCap + i]]))!;
    if (!fitsUtf8(key, g.keyRoom)) {
      tooLongKey = key;
      return TOO_LONG;
    }
    return addEntity(gi, key, i);
  }

  /** Removes an evicted entity from its group-by's id index and releases its ids. */
  function forgetEntity(e: Entity): void {
    const g = groups[e.gi];
    const cols = g.dictOf;
    if (g.byId !== null) {
      g.byId[e.slot] = undefined;
      release(dicts[cols[0]], e.slot);
    } else {
      for (let c = 0; c < cols.length; c++) release(dicts[cols[c]], g.byIds!.idAt(e.slot, c));
      g.byIds!.delete(e);
    }
  }

  /**
   * Per-batch scratch, reused across batches (grown on demand) so routing allocates nothing per event and
   * keeps no row past its read chunk: per record its time, running watermark, offset and whether the
   * filter kept it; per (group-by, record) the next record index of the same entity (`links[gi * cap + r]`,
   * -1 at the end).
   */
  let cap = 0;
  let tsAt = new Float64Array(0);
  let wmAt = new Float64Array(0);
  let offAt = new Float64Array(0);
  let keep = new Uint8Array(0);
  let links = new Int32Array(0);
  /** Makes room for records [0, n) of the batch, keeping what records [0, kept) wrote. */
  function ensureScratch(n: number, kept: number): void {
    if (n <= cap) return;
    const size = Math.max(n, 2 * cap, 256);
    const grown = <T extends Float64Array | Uint8Array>(old: T, next: T): T => {
      next.set(old.subarray(0, kept));
      return next;
    };
    tsAt = grown(tsAt, new Float64Array(size));
    wmAt = grown(wmAt, new Float64Array(size));
    offAt = grown(offAt, new Float64Array(size));
    keep = grown(keep, new Uint8Array(size));
    const next = new Int32Array(size * nG);
    for (let gi = 0; gi < nG; gi++) next.set(links.subarray(gi * cap, gi * cap + kept), gi * size);
    links = next;
    cap = size;
  }
  /** Where a derive/filter error happened; a function so no message is built per row. */
  let atOffset = 0;
  const where = () => `topic '${topic.name}' partition ${partition} offset ${atOffset}`;
  /** Invariant 10: null for an event to apply, else why it is invalid. */
  const checkEvent = logEventCheck(topic.source);
  const warn = opts.onWarning ?? ((message: string) => console.warn(message));
  const skipped = (what: string) =>
    `stream worker ${topic.name}/${partition} (source '${topic.source.name}'): skipped ${what}`;

  function resetToCommitted(): void {
    tileWrites = [];
    runWrites = [];
    for (const g of groups) {
      g.entities.clear();
      if (g.byId !== null) g.byId = [];
      g.byIds?.clear();
      g.loaded.clear();
      g.overfull = [];
    }
    for (const dict of dicts) {
      dict.ids.clear();
      dict.values = [];
      dict.free.length = dict.fresh.length = 0;
      dict.refs = new Int32Array(MIN_DICT_IDS);
    }
    cached = loadedCount = 0;
    nextOffset = committedOffset;
    watermark = committedWatermark;
  }

  /** Loads the tiles and run of entities about to be rolled up, in one store round trip. */
  async function loadTiles(entities: Entity[], liveFrom: number): Promise<void> {
    for (let from = 0; from < entities.length; from += loadChunk) {
      const part = entities.slice(from, from + loadChunk);
      const requests: TileRequest[] = part.map((e) => ({ groupBy: groups[e.gi].id, key: e.key }));
      const stored = await store.readTiles(requests);
      for (let i = 0; i < part.length; i++) {
        if ((i & 63) === 63) await yieldIfBusy();
        loadEntity(part[i], stored[i], liveFrom);
      }
    }
  }

  /** Builds an entity's tiles from what the store holds for it (`loadTiles`; sync, see `readEvents`). */
  function loadEntity(e: Entity, list: readonly StoredTile[], liveFrom: number): void {
    const g = groups[e.gi];
    const tiles = new TileSet(g.compiled.agg, g.compiled.windows);
    e.storedExactFrom = readExactFrom(list);
    tiles.raiseExactFrom(e.storedExactFrom);
    e.runBytes = 0;
    for (let k = markerCount(list); k < list.length; k++) {
      const s = list[k];
      if (s.level === EVENT_RUN_LEVEL) {
        // Rolled up now, so tiles that retention drops at once are never built (tiles.ts invariant 11).
        tiles.addRun(s.bytes, liveFrom);
        e.runBytes = s.bytes.length;
      } else tiles.addEncodedTile(s.level, s.start, s.bytes);
    }
    e.tiles = tiles;
    g.loaded.set(e.key, e);
    loadedCount++;
  }

  /*
   * The passes of a batch are plain synchronous functions called from `processBatch`: V8 optimizes each
   * as a whole. As loops of the big async `processBatch` they ran mostly unoptimized (OSR-compiled, then
   * deoptimized, about ten times per drain), boxing every number they read (~100 MB of garbage per 200k
   * fraud events).
   */

  /**
   * Records the filter dropped and invalid records (invariant 10) of the batch so far, and why the first
   * invalid one is (set by `readEvents`).
   */
  let batchFiltered = 0;
  let batchInvalid = 0;
  let firstInvalid = '';

  /**
   * Pass 1 for a chunk of the batch (batch records `at`..): checks, derives and filters each record, notes
   * its time, offset and the running watermark (from `wm`, capped at `wmCap`) and encodes the inputs of
   * kept events; returns the watermark after the chunk.
   */
  function readEvents(records: readonly LogRecord[], at: number, wm: number, wmCap: number): number {
    const n = records.length;
    let filteredHere = 0;
    let invalidHere = 0;
    inputs.reserve(at + n);
    for (let i = 0; i < n; i++) {
      const r = at + i;
      const rec = records[i];
      const row = rec.event;
      atOffset = rec.offset;
      offAt[r] = rec.offset;
      const invalidWhy = checkEvent(row, rec.offset);
      if (invalidWhy !== null) {
        keep[r] = 0;
        wmAt[r] = wm;
        if (batchInvalid + invalidHere++ === 0) firstInvalid = invalidWhy;
        continue;
      }
      const ts = row[timeColumn] as number;
      tsAt[r] = ts;
      if (ts > wm) wm = Math.max(wm, Math.min(ts, wmCap));
      wmAt[r] = wm;
      if (deriveAndFilter(topic.source, row, where)) {
        keep[r] = 1;
        inputs.add(r, row, ts, rec.offset);
      } else {
        keep[r] = 0;
        filteredHere++;
      }
    }
    batchFiltered += filteredHere;
    batchInvalid += invalidHere;
    return wm;
  }

  /** Entities touched by this batch per group-by (reused: emptied at the start of each batch). */
  const touched: Entity[][] = groups.map(() => []);
  /** This batch's entities to roll up, to load first, and to append to (reused likewise). */
  const rollUps: Entity[] = [];
  const toLoad: Entity[] = [];
  const appends: Entity[] = [];
  /** Where each of `appends` lies in the batch's run writer: from, to (reused likewise). */
  const appendSpans: number[] = [];
  /** Entity of each run write of the batch (reused likewise). */
  const runOf: Entity[] = [];
  /**
   * The batch's tile and run writes: `tileWrites[0, tileCount)` and `runWrites[0, runCount)`. The objects
   * are reused from batch to batch: made anew, the ~50-180k tile and ~70k run writes of a 100k-record batch
   * lived until its commit, so the scavenger copied and promoted each of them. Stores read a batch only
   * during `commit`; a failed commit drops them (`resetToCommitted`), should a store still hold them.
   */
  let tileWrites: Mutable<TileWrite>[] = [];
  let runWrites: Mutable<RunWrite>[] = [];
  let tileCount = 0;
  let runCount = 0;

  /** Per group-by: the batch's events with a key too long for the store, the first one's offset and bytes. */
  const tooLongCount = new Float64Array(nG);
  const tooLongAt = new Float64Array(nG);
  const tooLongBytes = new Float64Array(nG);
  /** CPU milliseconds of the batch per group-by (`GroupByCounters.cpuMs`; reused). */
  const cpuAt = new Float64Array(nG);
  /**
   * The first chunk of the next batch, read by `step`, taken by `processBatch`: held here, not in a local
   * of `step`, which would keep its rows alive until the batch is committed.
   */
  let firstChunk: LogRecord[] = [];
  const NO_RECORDS: LogRecord[] = [];

  /**
   * Processes one batch of up to `readSize` records, `firstChunk` and the rest read in chunks of
   * `readChunk` (passes 1 and 2 run on each chunk as it arrives), then rolls up and commits it as ONE
   * commit (invariant 2); returns its number of records. The batch ends early at a read that returns fewer
   * records than asked, as one read of the whole batch would.
   */
  async function processBatch(): Promise<number> {
    let records = firstChunk;
    firstChunk = NO_RECORDS;
    busySince = performance.now();
    for (let gi = 0; gi < nG; gi++) touched[gi].length = 0;
    rollUps.length = toLoad.length = appends.length = appendSpans.length = runOf.length = 0;
    inputs.reset(0);
    batchFiltered = batchInvalid = 0;
    firstInvalid = '';
    cpuAt.fill(0);
    tooLongCount.fill(0);
    // Overfull runs of the last commit roll up now (invariant 7).
    for (let gi = 0; gi < nG; gi++) {
      const g = groups[gi];
      for (let i = 0; i < g.overfull.length; i++) {
        g.overfull[i].flags |= TOUCHED;
        touched[gi].push(g.overfull[i]);
      }
      g.overfull = [];
    }
    /** Warnings about this batch (skipped events, invariant 10; a failed read), given once it is committed. */
    const notes: string[] = [];
    const wmCap = Date.now() + maxFutureMs;
    const size = readSize;
    // The next batch's size (`maxBatchBytes`) from the JSON size of up to 16 events spread over this one
    // (sampled before derived columns are added): the events at multiples of `sampleStep`, which for a
    // full batch are those one read of it would have sampled.
    const sampleStep = Math.max(1, Math.floor(size / 16));
    let sampledBytes = 0;
    let sampled = 0;
    // A batch that ends short after several reads (a worker catching up) may have met few multiples of
    // `sampleStep` (only record 0 when under 2 x sampleStep records): it uses up to 16 events per chunk.
    let chunkSampledBytes = 0;
    let chunkSampled = 0;
    let eventBytes = 0;
    let wm = watermark;
    let n = 0;
    let asked = Math.min(size, readChunk);
    for (;;) {
      const len = records.length;
      const last = len < asked || n + len >= size;
      if (n === 0 && last) eventBytes = eventBytesOf(records);
      else {
        for (let r = Math.ceil(n / sampleStep) * sampleStep; r < n + len; r += sampleStep, sampled++)
          sampledBytes += JSON.stringify(records[r - n].event).length;
        const chunkStep = Math.max(1, Math.floor(len / 16));
        for (let r = 0; r < len; r += chunkStep, chunkSampled++)
          chunkSampledBytes += JSON.stringify(records[r].event).length;
      }
      ensureScratch(n + len, n);
      // Pass 1: derive + filter, times, running watermark.
      await yieldIfBusy();
      wm = readEvents(records, n, wm, wmCap);
      // Pass 2: route each event to its entity, group-by by group-by (each in log order; group-bys are
      // independent), so the CPU time of each group-by can be measured for cost reports (and one
      // group-by's entities stay in cache while its events are routed: one pass for all was slower).
      internKeys(records, n);
      for (let gi = 0; gi < nG; gi++) {
        await yieldIfBusy();
        const started = performance.now();
        routeEvents(gi, n, len);
        cpuAt[gi] += performance.now() - started;
      }
      releaseFresh();
      n += len;
      records = NO_RECORDS; // the chunk's rows die here: only compact per-record data stays
      if (last) break;
      asked = Math.min(size - n, readChunk);
      try {
        records = await log.read(topic.name, partition, offAt[n - 1] + 1, asked, 0);
      } catch (error) {
        // The batch ends with what was read (e.g. a Kafka gap right after a full chunk): it is committed,
        // and the next step's read, from there, meets the error again and reports it. If that read works
        // (a transient error), the warning is all that tells of it.
        records = NO_RECORDS;
        notes.push(
          `stream worker ${topic.name}/${partition}: reading records from offset ${offAt[n - 1] + 1} failed (${(error as Error).message}); the batch ends at that offset and the next read retries from there`,
        );
      }
      if (records.length === 0) break;
    }
    if (sampled > 0)
      eventBytes = Math.max(1, n >= size ? sampledBytes / sampled : chunkSampledBytes / chunkSampled);
    readSize = Math.max(1, Math.min(batchSize, Math.floor(maxBatchBytes / eventBytes)));

    filtered += batchFiltered;
    invalid += batchInvalid;
    for (const g of groups) {
      g.counters.filtered += batchFiltered;
      g.counters.invalid += batchInvalid;
    }
    if (batchInvalid > 0)
      notes.push(
        skipped(
          `${batchInvalid} record(s) that are not valid events of the source, counted as 'invalid' and applied to no group-by; the first: ${firstInvalid}`,
        ),
      );
    for (let gi = 0; gi < nG; gi++) if (tooLongCount[gi] > 0) notes.push(tooLongNote(gi));

    // Pass 3: append each entity's events to its run, or roll the run up into tiles when it would
    // outgrow maxRunBytes or an event was dropped as late (the exact-from marker lives with the tiles).
    const compactTo = wm - exactHistoryMs;
    // Hot keys are compacted further, but never past this point (invariant 6). The wall clock bounds it
    // too: the watermark may run up to `maxFutureMs` ahead of it, fetches at the current time may not.
    const keepFrom = Math.max(compactTo, Math.min(wm, Date.now()) - hotKeyExactMs);
    runWriter.reset();
    for (let gi = 0; gi < nG; gi++) {
      await yieldIfBusy();
      const started = performance.now();
      planRuns(gi);
      cpuAt[gi] += performance.now() - started;
    }
    await loadTiles(toLoad, compactTo);

    tileCount = runCount = 0;
    for (let i = 0; i < rollUps.length; i++) {
      if ((i & 63) === 63) await yieldIfBusy();
      const e = rollUps[i];
      const started = performance.now();
      rollUp(e, compactTo, keepFrom);
      if (e.runBytes !== 0) pushRun(e, null);
      cpuAt[e.gi] += performance.now() - started;
    }
    await finishBatch(n, wm, notes);
    return n;
  }

  /** The warning about group-by `gi`'s events of the batch whose key is too long for the store. */
  function tooLongNote(gi: number): string {
    const g = groups[gi];
    return skipped(
      `${tooLongCount[gi]} event(s) whose key of group-by '${g.def.name}' is too long for the ${store.kind} store, counted as 'keyTooLong' and not applied to it; the first at offset ${tooLongAt[gi]}: ${tooLongBytes[gi]} bytes, more than the ${g.keyRoom} the store leaves for this group-by's keys. Have the producer send shorter key values (e.g. a hash of ${g.def.keys.map((k) => `'${k}'`).join(', ')}), or run on the Redis store (--store redis)`,
    );
  }

  /**
   * Pass 2b for group-by `gi` and a chunk of `n` records of the batch (batch records `at`..; their key ids
   * interned): routes each kept event (in log order) to its entity, listing the entities in `touched[gi]`
   * and chaining each one's events through `links`, and counts the events not applied.
   */
  function routeEvents(gi: number, at: number, n: number): void {
    const g = groups[gi];
    const c = g.counters;
    const list = touched[gi];
    const base = gi * cap;
    const byId = g.byId;
    const cols = g.dictOf;
    const first = cols[0] * keyCap;
    const late = exactHistoryMs + g.horizon;
    const cutoff = g.cutoff;
    const room = g.keyRoom;
    let nullKey = 0;
    let beforeCutoff = 0;
    let lateCount = 0;
    let applied = 0;
    let tooLong = 0;
    for (let i = 0; i < n; i++) {
      const r = at + i;
      if (keep[r] === 0) continue;
      const ts = tsAt[r];
      let e: Entity | undefined;
      if (byId !== null) {
        const id = keyIds[first + i];
        if (id < 0) {
          nullKey++;
          continue;
        }
        if (ts < cutoff) {
          beforeCutoff++;
          continue;
        }
        e = byId[id];
        if (e === undefined) {
          const key = dicts[cols[0]].values[id];
          if (!fitsUtf8(key, room)) {
            if (tooLongCount[gi] + tooLong++ === 0) {
              tooLongAt[gi] = offAt[r];
              tooLongBytes[gi] = Buffer.byteLength(key);
            }
            continue;
          }
          e = addEntity(gi, key, i);
        }
      } else {
        let hasNull = false;
        for (let k = 0; k < cols.length; k++) if (keyIds[cols[k] * keyCap + i] < 0) hasNull = true;
        if (hasNull) {
          nullKey++;
          continue;
        }
        if (ts < cutoff) {
          beforeCutoff++;
          continue;
        }
        const found = entityByIds(gi, i);
        if (found === TOO_LONG) {
          if (tooLongCount[gi] + tooLong++ === 0) {
            tooLongAt[gi] = offAt[r];
            tooLongBytes[gi] = Buffer.byteLength(tooLongKey);
          }
          continue;
        }
        e = found;
      }
      if ((e.flags & TOUCHED) === 0) {
        e.flags |= TOUCHED;
        list.push(e);
      }
      if (ts < wmAt[r] - late) {
        lateCount++;
        e.flags |= LATE_DROPPED;
        continue;
      }
      if (e.count === 0) e.first = r;
      else links[base + e.last] = r;
      links[base + r] = -1;
      e.last = r;
      e.count++;
      applied++;
    }
    c.nullKey += nullKey;
    c.keyTooLong += tooLong;
    tooLongCount[gi] += tooLong;
    c.beforeUploadCutoff += beforeCutoff;
    c.lateBeyondRetention += lateCount;
    c.applied += applied;
  }

  /**
   * Pass 3 for group-by `gi`: lists each touched entity in `rollUps` (and `toLoad` without loaded tiles)
   * or encodes its events as a run append in `runWriter` (`appends`).
   */
  function planRuns(gi: number): void {
    const g = groups[gi];
    const agg = g.compiled.agg;
    let bytes = 0;
    let events = 0;
    const base = gi * cap;
    const list = touched[gi];
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      const known = e.runBytes < 0 ? 0 : e.runBytes;
      if (
        (e.flags & LATE_DROPPED) !== 0 ||
        known > maxRunBytes ||
        known + e.count * g.eventBytes > maxRunBytes
      ) {
        rollUps.push(e);
        if (e.tiles === null) toLoad.push(e);
        continue;
      }
      const from = runWriter.length;
      writeRunHeader(runWriter, agg, e.count);
      for (let r = e.first; r >= 0; r = links[base + r]) inputs.writeEvent(runWriter, agg, r);
      appends.push(e);
      appendSpans.push(from, runWriter.length);
      bytes += runWriter.length - from;
      events += e.count;
    }
    if (events > 0) g.eventBytes = Math.ceil(bytes / events);
  }

  /** The group-by id and key of the entity being rolled up, for `pushWrite`. */
  let writeId = '';
  let writeKey = '';
  /** Lists a tile write of the entity being rolled up (`writeId`, `writeKey`) in `tileWrites`. */
  const pushWrite = (level: number, start: number, bytes: Uint8Array | null) => {
    let w = tileWrites[tileCount];
    if (w === undefined) tileWrites.push({ groupBy: writeId, key: writeKey, level, start, bytes });
    else {
      w.groupBy = writeId;
      w.key = writeKey;
      w.level = level;
      w.start = start;
      w.bytes = bytes;
    }
    tileCount++;
  };
  /** Lists a run write (an append, or a delete when `bytes` is null) of entity `e` in `runWrites`. */
  function pushRun(e: Entity, bytes: Uint8Array | null): void {
    let w = runWrites[runCount];
    if (w === undefined) runWrites.push({ groupBy: groups[e.gi].id, key: e.key, bytes });
    else {
      w.groupBy = groups[e.gi].id;
      w.key = e.key;
      w.bytes = bytes;
    }
    runCount++;
    runOf.push(e);
  }

  /** Applies a rolled-up entity's events of this batch to its tiles, compacts them and lists the writes. */
  function rollUp(e: Entity, compactTo: number, keepFrom: number): void {
    const gi = e.gi;
    const g = groups[gi];
    const tiles = e.tiles!;
    writeId = g.id;
    writeKey = e.key;
    const base = gi * cap;
    const agg = g.compiled.agg;
    for (let r = e.first; r >= 0; r = links[base + r])
      tiles.addInputs(inputs.inputs(agg, r, valuesScratch), tsAt[r], offAt[r], compactTo);
    tiles.retainBounded(compactTo, keepFrom, maxTilesPerKey);
    if ((e.flags & LATE_DROPPED) !== 0) tiles.raiseExactFrom(compactTo);
    if (tiles.exactFrom !== e.storedExactFrom) {
      pushWrite(EXACT_FROM_LEVEL, 0, encodeExactFrom(tiles.exactFrom));
      e.storedExactFrom = tiles.exactFrom;
    }
    tiles.flushChanges(pushWrite);
  }

  /** Turns the batch's appends into run writes, commits everything (invariant 2) and updates the cache. */
  async function finishBatch(n: number, wm: number, notes: string[]): Promise<void> {
    if (appends.length > 0) {
      const chunks = runWriter.finish();
      for (let i = 0; i < appends.length; i += 256) {
        if (i > 0) await yieldIfBusy();
        listAppends(chunks, i, Math.min(i + 256, appends.length));
      }
    }
    const writes = tileWrites.length === tileCount ? tileWrites : tileWrites.slice(0, tileCount);
    const runs = runWrites.length === runCount ? runWrites : runWrites.slice(0, runCount);
    for (let gi = 0; gi < nG; gi++) groups[gi].counters.cpuMs += cpuAt[gi];

    const last = offAt[n - 1] + 1;
    const countersJson = JSON.stringify(countersByName());
    const started = performance.now();
    const pending: UncertainCommit = {
      offset: String(last),
      id: `${writerId}.${++commitCount}`,
      notes,
      records: n,
      tileWrites: writes.length,
      started,
    };
    uncertain = pending;
    unconfirmed.add(pending.id);
    const result = await store.commit({
      tiles: writes,
      runs,
      expect: { ...fenceOn, [names.offset]: storedOffset },
      offsets: {
        [names.offset]: pending.offset,
        [names.watermark]: String(wm),
        [names.counters]: countersJson,
        [names.commit]: pending.id,
      },
    });
    uncertain = null;
    unconfirmed.clear();
    committedOffset = nextOffset = last;
    storedOffset = pending.offset;
    committedWatermark = watermark = wm;
    recordsRead += n;
    batches++;
    afterCommit(runs, result.runBytes);
    evictCache();
    committed(pending);
  }

  /** Reports a batch's commit: its warnings (invariant 10; a failed read) and `onCommit`. */
  function committed(c: UncertainCommit): void {
    for (const note of c.notes) warn(note);
    opts.onCommit?.({
      topic: topic.name,
      partition,
      records: c.records,
      nextOffset: Number(c.offset),
      tileWrites: c.tileWrites,
      commitMs: performance.now() - c.started,
    });
  }

  /** Run writes for `appends[from, to)`, each a view of its bytes in the batch's run `chunks`. */
  function listAppends(chunks: Uint8Array, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const e = appends[i];
      pushRun(e, chunks.subarray(appendSpans[2 * i], appendSpans[2 * i + 1]));
    }
  }

  /** After a commit: learns the run sizes, drops tiles that lack appended events, resets touched entities. */
  function afterCommit(runs: readonly RunWrite[], runBytes: readonly number[]): void {
    for (let i = 0; i < runs.length; i++) {
      const e = runOf[i];
      e.runBytes = runBytes[i];
      // Loaded tiles lack the appended events (invariant 7): forget them.
      if (runs[i].bytes !== null && e.tiles !== null) {
        e.tiles = null;
        groups[e.gi].loaded.delete(e.key);
        loadedCount--;
      }
    }
    for (let gi = 0; gi < nG; gi++) {
      const g = groups[gi];
      const list = touched[gi];
      for (let i = 0; i < list.length; i++) {
        const e = list[i];
        e.flags = USED; // no longer touched nor late-dropped
        e.first = e.last = -1;
        e.count = 0;
        if (e.runBytes > maxRunBytes) g.overfull.push(e);
        if (e.tiles !== null) {
          // Re-insert to mark as most recently used (loaded entities are few).
          g.loaded.delete(e.key);
          g.loaded.set(e.key, e);
        }
      }
      list.length = 0; // not to keep evicted entities alive until the next batch
    }
    rollUps.length = toLoad.length = appends.length = appendSpans.length = runOf.length = 0;
    // The reused writes must not keep this batch's bytes alive (its run appends are one buffer).
    for (let i = 0; i < tileCount; i++) tileWrites[i].bytes = null;
    for (let i = 0; i < runCount; i++) runWrites[i].bytes = null;
  }

  /**
   * Lets other work of the process run (e.g. `tessera serve` answering fetches) when this batch has held
   * the event loop for `YIELD_AFTER_MS`: a big batch of a worker that is behind takes a second or more.
   */
  let busySince = performance.now();
  async function yieldIfBusy(): Promise<void> {
    if (performance.now() - busySince < YIELD_AFTER_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    busySince = performance.now();
  }

  /**
   * Caches a new entity of group-by `gi` (nothing known about it yet) whose key's value ids are chunk
   * record `i`'s (`keyIds`): holds them and indexes it by them in `byId` or `byIds`.
   */
  function addEntity(gi: number, key: string, i: number): Entity {
    const g = groups[gi];
    const cols = g.dictOf;
    const e: Entity = {
      gi,
      key,
      slot: -1,
      prev: null,
      next: null,
      tiles: null,
      storedExactFrom: -Infinity,
      runBytes: -1,
      flags: 0,
      first: -1,
      last: -1,
      count: 0,
    };
    g.entities.push(e);
    for (let c = 0; c < cols.length; c++) dicts[cols[c]].refs[keyIds[cols[c] * keyCap + i]]++;
    if (g.byId !== null) g.byId[(e.slot = keyIds[cols[0] * keyCap + i])] = e;
    else g.byIds!.add(e, keyIds, cols, keyCap, i);
    cached++;
    return e;
  }

  /**
   * Drops least recently used tile sets, then entities, round-robin over group-bys (all are
   * clean after a commit). Entities touched since the scan last passed them get a second chance.
   */
  function evictCache(): void {
    if (loadedCount > maxLoaded) {
      const iters = groups.map((g) => g.loaded.values());
      while (loadedCount > maxLoaded * 0.9) {
        let progressed = false;
        for (let gi = 0; gi < nG && loadedCount > maxLoaded * 0.9; gi++) {
          const next = iters[gi].next();
          if (next.done) continue;
          groups[gi].loaded.delete(next.value.key);
          next.value.tiles = null; // the run stays known (empty), so the entity keeps appending
          loadedCount--;
          progressed = true;
        }
        if (!progressed) break;
      }
    }
    if (cached > maxRuns) {
      // Per group-by, the next entity to pass; entities moved to the back are passed again when reached.
      const cursor = groups.map((g) => g.entities.head);
      // Each entity is passed at most twice (once more after its second chance), so the scan ends.
      const budget = groups.map((g) => 2 * g.entities.size);
      while (cached > maxRuns * 0.9) {
        let progressed = false;
        for (let gi = 0; gi < nG && cached > maxRuns * 0.9; gi++) {
          const g = groups[gi];
          if (budget[gi]-- <= 0) continue;
          const e = cursor[gi];
          if (e === null) continue;
          cursor[gi] = e.next;
          progressed = true;
          if ((e.flags & USED) !== 0 || e.runBytes > maxRunBytes) {
            // Recently used, or rolled up next batch (invariant 7): move to the back.
            e.flags &= ~USED;
            g.entities.remove(e);
            g.entities.push(e);
            // The last one moved to the back is passed again next, as a Map's iterator would.
            if (cursor[gi] === null) cursor[gi] = e;
            continue;
          }
          g.entities.remove(e);
          forgetEntity(e);
          if (e.tiles !== null) {
            g.loaded.delete(e.key);
            loadedCount--;
          }
          cached--;
        }
        if (!progressed) break;
      }
    }
    compactDicts();
  }

  /**
   * Shrinks each `KeyDict` that holds at most a quarter of the ids it made (a burst of keys, then
   * evictions), so the arrays indexed by id (its values and refs, `byId`) and its group-bys' `byIds` follow
   * what is cached. Free ids past the highest held one are dropped: no id changes. The held ids are
   * renumbered (in order) only when that drops at least as many ids as it rewrites entities of the
   * group-bys keyed on the column (with their `byIds`): else a column with few values, kept by many
   * entities, renumbered after every batch that brought a few hundred values no entity keeps (a null other
   * key, a too-long key), rehashing a large `byIds` to save a few hundred ids. Either way a dictionary
   * keeps fewer ids than its held ones plus its group-bys' cached entities (free ones are reused first).
   * Runs between batches, when no id is in use but the entities' (`keyIds` is rewritten per chunk).
   */
  function compactDicts(): void {
    for (let d = 0; d < dicts.length; d++) {
      const dict = dicts[d];
      const made = dict.values.length;
      const held = made - dict.free.length;
      if (made <= MIN_DICT_IDS || 4 * held > made) continue;
      let top = made;
      while (top > 0 && dict.refs[top - 1] === 0) top--;
      let rewrites = 0;
      for (const gi of dict.users) rewrites += groups[gi].entities.size;
      if (top > held && top - held >= rewrites) renumber(d);
      else if (top < made) dropFreeIdsFrom(d, top);
    }
  }

  /** Drops the ids of `dicts[d]` from `top` on, all free: no held id changes. */
  function dropFreeIdsFrom(d: number, top: number): void {
    const dict = dicts[d];
    dict.values.length = top;
    let kept = 0;
    for (const id of dict.free) if (id < top) dict.free[kept++] = id;
    dict.free.length = kept;
    const room = Math.max(MIN_DICT_IDS, 2 * top);
    if (room < dict.refs.length) dict.refs = dict.refs.slice(0, room);
    for (const gi of dict.users) {
      const byId = groups[gi].byId;
      if (byId !== null && byId.length > top) byId.length = top;
    }
  }

  /** Renumbers the held ids of `dicts[d]` 0.. in order, and the ids of the entities holding them. */
  function renumber(d: number): void {
    const dict = dicts[d];
    const made = dict.values.length;
    const map = new Int32Array(made);
    const values: string[] = [];
    const refs = new Int32Array(Math.max(MIN_DICT_IDS, 2 * (made - dict.free.length)));
    // Ids below the first free one keep their number: a table holding only those is left as it is.
    let moved = made;
    for (let id = 0; id < made; id++) {
      if (dict.refs[id] === 0) {
        moved = Math.min(moved, id);
        continue;
      }
      const next = values.length;
      map[id] = next;
      refs[next] = dict.refs[id];
      values.push(dict.values[id]);
      dict.ids.set(dict.values[id], next);
    }
    dict.values = values;
    dict.refs = refs;
    dict.free.length = 0;
    dict.renumbered++;
    for (const gi of dict.users) {
      const g = groups[gi];
      if (g.byId !== null) {
        let stays = g.entities.head;
        while (stays !== null && stays.slot < moved) stays = stays.next;
        if (stays === null) {
          if (g.byId.length > values.length) g.byId.length = values.length;
          continue;
        }
        const byId = new Array<Entity | undefined>(values.length).fill(undefined);
        for (let e = g.entities.head; e !== null; e = e.next) byId[(e.slot = map[e.slot])] = e;
        g.byId = byId;
      } else
        for (let c = 0; c < g.dictOf.length; c++) if (g.dictOf[c] === d) g.byIds!.remapColumn(c, map, moved);
    }
  }

  /**
   * After a failed batch: if the store holds the commit that batch tried (its offset and commit id), the
   * commit was applied and only its reply was lost, or a resend of it was fenced by the first send; adopt it
   * (offset, watermark, counters) instead of redoing the batch, whose commit would expect the old offset and
   * be fenced. Returns whether it did. Anything else stored is left to fencing: another writer that reached
   * the same offset (same batch size, same log) wrote another commit id.
   */
  async function adoptLostCommit(): Promise<boolean> {
    const tried = uncertain;
    const stored = await store.readOffsets([names.offset, names.watermark, names.counters, names.commit]);
    // Only now: if this read fails too (the store still down), the next step must check again, or it
    // would redo the batch against the old offset and be fenced although it is the only writer.
    uncertain = null;
    const id = stored[names.commit];
    const offset = stored[names.offset];
    // A failed commit of this writer applied after all: usually the one just tried, but an earlier one may
    // land late (sent before a reconnect) and fence the redo of its batch. Its state is read from the store
    // (the cache was dropped), so adopting it is safe; any other stored commit (another writer's, or one
    // without an id from an older version) is left to fencing.
    if (tried === null || offset === undefined || id === undefined || !unconfirmed.has(id)) return false;
    unconfirmed.clear();
    recordsRead += Number(offset) - committedOffset;
    batches++;
    const adopted: UncertainCommit =
      id === tried.id
        ? tried
        : // An earlier attempt's warnings were not kept (its batch was redone since).
          { ...tried, offset, id, notes: [], records: Number(offset) - committedOffset, tileWrites: 0 };
    committedOffset = nextOffset = Number(offset);
    storedOffset = offset;
    committedWatermark = watermark = stored[names.watermark] ? Number(stored[names.watermark]) : -Infinity;
    const counters: Record<string, GroupByCounters> = stored[names.counters]
      ? JSON.parse(stored[names.counters])
      : {};
    // Over zeros, as at startup: counters saved by an older version lack the newer fields.
    for (const g of groups)
      if (counters[g.def.name]) g.counters = { ...zeroCounters(), ...counters[g.def.name] };
    committed(adopted);
    return true;
  }

  /**
   * After a fenced commit: the error to stop with if a `fenceOn` value changed (another process with other
   * definitions wrote the partition's members entry), else null. A failed read says nothing.
   */
  async function otherDefinitions(fenced: Error): Promise<Error | null> {
    const names = Object.keys(fenceOn);
    if (names.length === 0) return null;
    const stored = await store.readOffsets(names).catch(() => null);
    const changed = names.find((n) => stored !== null && stored[n] !== fenceOn[n]);
    if (changed === undefined) return null;
    return new Error(
      `stream worker ${topic.name}/${partition} stopped: another process with other definitions is writing this partition ('${changed}' is ${stored![changed] ?? 'absent'} in the store, this worker's definitions need ${fenceOn[changed]}): ` +
        `it caught its group-bys up and took the partition over, so events this worker applied would be missing from them. ` +
        `Run one set of definitions per partition: if this process's definitions are outdated, let it go (a rolling deploy replaces it); otherwise stop the other process and restart this one.`,
      { cause: fenced },
    );
  }

  /**
   * The error to stop with if the log partition ends before the committed offset (invariant 11): null
   * unless this answer and an earlier one asked at least `LOG_END_CHECK_MS` before it both say so.
   */
  async function logBehind(what: 'stopped' | 'cannot open'): Promise<Error | null> {
    const now = (logEndCheckedAt = performance.now());
    if (committedOffset !== offsetSeen) {
      offsetSeen = committedOffset;
      offsetSeenAt = now;
      behindSince = null;
    }
    // Any recent answer that reaches the offset will do; one that does not counts only if asked after the
    // commit and, to confirm an earlier one, long enough after it.
    const timed = what === 'stopped';
    let answer = sharedEndOffsets(log, topic.name, now - endCheckInterval(log, topic.name), timed);
    let end = (await answer.ends)[partition];
    const counts = () =>
      Math.max(offsetSeenAt, behindSince === null ? -Infinity : behindSince + LOG_END_CHECK_MS);
    if (end !== undefined && committedOffset > end && answer.askedAt < counts()) {
      if (counts() > performance.now()) return null; // not yet: the next check confirms it
      answer = sharedEndOffsets(log, topic.name, counts(), timed);
      end = (await answer.ends)[partition];
    }
    // A partition missing from the answer (a partial answer) says nothing either way.
    if (end === undefined) return null;
    if (committedOffset <= end || committedOffset !== offsetSeen) {
      behindSince = null;
      return null;
    }
    if (behindSince === null || answer.askedAt < behindSince + LOG_END_CHECK_MS) {
      behindSince ??= answer.askedAt;
      return null;
    }
    return new Error(
      `stream worker ${topic.name}/${partition} ${what}: the store's committed offset ${committedOffset} is past the end of ${log.kind} log topic '${topic.name}' partition ${partition} (${end} records). ` +
        `The log was deleted, recreated or truncated since (a JetStream stream or Redis stream key deleted, a file log directory replaced), ` +
        `lost its un-synced tail (a crash or power loss before the log synced, a Redis failover to a replica the last appends had not reached), ` +
        `or this is a different log than the one the store's offsets were committed against; ` +
        `reading on would skip the first ${committedOffset - end} events it gets. Point the worker at the log the store was built from (--log, and its --data-dir, --redis, --nats-url or --kafka-brokers); ` +
        `if the log really was reset or lost events, start from an empty store (delete it, or use a new path or key prefix) and run \`tessera upload\` again.`,
    );
  }

  /** Checks the log's end if a check is due (invariant 11); throws, stopped for good, if it is behind. */
  async function checkLogEndIfDue(): Promise<void> {
    if (performance.now() - logEndCheckedAt < endCheckInterval(log, topic.name)) return;
    // A log that does not answer is left to the reads to report.
    const behind = await logBehind('stopped').catch(() => null);
    if (behind !== null) throw (stoppedError = behind);
  }

  async function step(): Promise<number> {
    if (stoppedError !== null) throw stoppedError;
    if (uncertain !== null) await adoptLostCommit();
    try {
      firstChunk = await log.read(topic.name, partition, nextOffset, Math.min(readSize, readChunk), pollMs);
    } catch (err) {
      // NATS and Kafka readers refuse an offset past the log's end themselves: compare the ends now and
      // then (invariant 11), or the worker would retry that read forever.
      await checkLogEndIfDue();
      throw err;
    }
    if (firstChunk.length === 0) {
      // Idle: now and then, check the log still reaches the committed offset (invariant 11).
      await checkLogEndIfDue();
      return 0;
    }
    const saved = groups.map((g) => ({ ...g.counters }));
    const savedFiltered = filtered;
    const savedInvalid = invalid;
    let n: number;
    try {
      n = await processBatch();
    } catch (err) {
      // Invariant 2: in-memory state may be ahead of the store; forget it and redo from the commit.
      groups.forEach((g, i) => (g.counters = saved[i]));
      filtered = savedFiltered;
      invalid = savedInvalid;
      resetToCommitted();
      if (err instanceof Error && err.message.startsWith('fenced:')) {
        // The store may hold this very commit: a client that resends a command after its connection dropped
        // (ioredis on a Cluster, for "Connection is closed") sees the first send, applied, fence the resend.
        // Then the stored commit id is this commit's: adopt it, as after a lost reply. If that read fails,
        // `uncertain` stays and the next step checks again before redoing the batch.
        const before = committedOffset;
        if (await adoptLostCommit()) return committedOffset - before;
        stoppedError =
          (await otherDefinitions(err)) ??
          new Error(
            `stream worker ${topic.name}/${partition} stopped: another writer committed this partition (${err.message}). Run exactly one worker per partition (e.g. \`tessera stream --owned\` on disjoint partitions, \`tessera serve --no-workers\` next to them), then restart this one.`,
            { cause: err },
          );
        throw stoppedError;
      }
      throw err;
    }
    return n;
  }

  // Refuse to open on a log behind the store (invariant 11), or open stopped. A first answer that says so is
  // confirmed by a second one `LOG_END_CHECK_MS` later. A log that does not answer yet is checked once
  // reads succeed.
  if (committedOffset > 0) {
    let behind = await logBehind('cannot open').catch(() => null);
    if (behind === null && behindSince !== null) {
      // (+10 ms: a timer may fire a little early by performance.now().)
      await new Promise((r) => setTimeout(r, behindSince! + LOG_END_CHECK_MS + 10 - performance.now()));
      behind = await logBehind('cannot open').catch(() => null);
    }
    if (behind !== null && opts.logBehindAtOpen !== 'stop') throw behind;
    stoppedError = behind;
  }

  const worker: StreamWorker = {
    step,
    async drain() {
      if (stoppedError !== null) throw stoppedError;
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
          // Stopped for good (fenced: not the partition's writer any more; or a log behind the store's
          // offset): retrying cannot succeed.
          if (err === stoppedError) throw err;
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
        invalid,
        batches,
        cachedEntities: cached,
        groupBys: countersByName(),
      };
    },
  };
  routingCheckOf.set(worker, () => {
    const holds = dicts.map((d) => new Int32Array(d.values.length));
    for (const g of groups) {
      const cols = g.dictOf;
      const ids = new Int32Array(cols.length);
      for (let e = g.entities.head; e !== null; e = e.next) {
        for (let c = 0; c < cols.length; c++) ids[c] = g.byId !== null ? e.slot : g.byIds!.idAt(e.slot, c);
        const found = g.byId !== null ? g.byId[e.slot] : g.byIds!.get(ids, [...cols.keys()], 1, 0);
        const key = entityKey([...ids].map((id, c) => dicts[cols[c]].values[id]));
        if (found !== e || key !== e.key)
          throw new Error(`checkRouting: '${g.def.name}' entity '${e.key}' is found by ids naming '${key}'`);
        ids.forEach((id, c) => holds[cols[c]][id]++);
      }
    }
    dicts.forEach((d, di) =>
      d.values.forEach((value, id) => {
        const held = holds[di][id] > 0;
        if (d.refs[id] !== holds[di][id] || (held && d.ids.get(value) !== id) || (!held && value !== ''))
          throw new Error(
            `checkRouting: column '${d.column}' id ${id} ('${value}') has ${d.refs[id]} refs, ${holds[di][id]} holders`,
          );
      }),
    );
    return {
      cachedEntities: cached,
      dicts: dicts.map((d) => ({
        column: d.column,
        made: d.values.length,
        held: d.values.length - d.free.length,
        interned: d.ids.size,
        refs: d.refs.length,
        renumbered: d.renumbered,
      })),
      groups: groups.map((g) => ({
        name: g.def.name,
        entities: g.entities.size,
        index: g.byId !== null ? g.byId.length : g.byIds!.capacity,
      })),
    };
  });
  return worker;
}
