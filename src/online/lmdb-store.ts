import { open, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import {
  checkCounterDeltas,
  type CommitBatch,
  type CommitResult,
  type EntityTiles,
  type OnlineStore,
  type RunWrite,
  type StoreStats,
  type StoredTile,
  type TileRequest,
  type TileWrite,
} from './store.ts';
import { EXACT_FROM_LEVEL } from './exact-from.ts';
import { mergePacked, PackedBuffer, packTiles, TileColumns, unpackTiles } from './tile-pack.ts';

/** Entities per write transaction of `deleteGroupBys`: short transactions, so stream workers' commits wait for one batch at most. */
const DELETE_BATCH = 10_000;

/** On-disk layout version, kept in the `meta` database; bump when the layout changes. */
const FORMAT = '2';

/**
 * Embedded LMDB store (the default; no service needed). The `entities` database maps the UTF-8 key
 * `key + "\u0000" + groupBy` (`EntityKey`) to ONE value per entity (tile-pack.ts): all its tiles packed,
 * then its event run (store.ts layout 5). A read is one get per entity, decoded in place (`readEntities`);
 * a commit rewrites each touched entity once, however many of its tiles changed (per-tile entries made
 * commits cost ~80 puts per event), in key order (`sortByBytes`), and a run append copies the entity's
 * value once (a few KiB at most) instead of every read paying a second lookup per entity. Offsets live in the `offsets` database of the
 * same environment, so one write transaction covers tiles, runs and offsets. The layout version is in
 * `meta` (`format`).
 *
 * @example
 * const store = openLmdbStore('.tessera/store');
 */
export function openLmdbStore(path: string): OnlineStore {
  let env: RootDatabase;
  try {
    // overlappingSync (default on Linux) keeps commits durable against process crashes without blocking on fsync.
    env = open({ path, maxDbs: 8, mapSize: 2 ** 34 });
  } catch (cause) {
    throw new Error(
      `Cannot open the LMDB online store at '${path}': ${(cause as Error).message}. Check the path is a writable directory (or choose another with --data-dir: the store is <dir>/store).`,
      { cause },
    );
  }
  try {
    checkFormat(env, path);
  } catch (error) {
    void env.close();
    throw error;
  }
  // `keyEncoder` is a documented database option that the typings only declare for `open`.
  const entities: Database<Buffer, string> = env.openDB('entities', {
    encoding: 'binary',
    keyEncoder: entityKeys,
  } as DatabaseOptions);
  const offsets: Database<string, string> = env.openDB('offsets', { encoding: 'string' });
  const counters: Database<number, string> = env.openDB('usage', { encoding: 'ordered-binary' });
  return new LmdbStore(env, entities, offsets, counters);
}

/**
 * Fails on a store written in another layout (reading it would give garbage or nothing); stamps a new,
 * empty store with `FORMAT`. Stores from before format 2 have no `meta` format but a `tiles` database.
 */
function checkFormat(env: RootDatabase, path: string): void {
  const meta: Database<string, string> = env.openDB('meta', { encoding: 'string' });
  const format = meta.get('format');
  if (format === FORMAT) return;
  // `create: false` (missing from the typings) opens an existing database only.
  const openExisting = env.openDB as (name: string, o: object) => Database | undefined;
  const old = format ?? (openExisting.call(env, 'tiles', { create: false }) ? '1' : undefined);
  if (old !== undefined) {
    throw new Error(
      `the LMDB online store at '${path}' has layout format ${old}, but this version of tessera reads format ${FORMAT}. ` +
        `Delete the store directory (or choose another with --data-dir: the store is <dir>/store) and re-run tessera upload; stream workers then rebuild the rest from the log.`,
    );
  }
  meta.putSync('format', FORMAT);
}

/**
 * An entity's LMDB key, `key + "\u0000" + groupBy` as UTF-8: entity key first, so the group-bys of one
 * entity key, which a request reads together, sit next to each other in the B-tree (3x cheaper gets than
 * group-by first: the pages are already in cache). Store ids never contain U+0000, so the last one
 * separates them. Encoded once per entity straight from its parts (`encodeKey`), then copied by
 * `entityKeys.writeKey` into each get and put: joining the parts into a string per entity, and encoding that
 * string once per get and once per put, was a tenth of a commit. The bytes are `bytes[start, start + length)`:
 * its own buffer after `set`, or one key of a commit's `EntityKeyList` after `point`.
 */
class EntityKey {
  private readonly own = Buffer.allocUnsafe(MAX_KEY_BYTES);
  bytes: Buffer = this.own;
  start = 0;
  /** May exceed `MAX_KEY_BYTES` after `set` returned false (then nothing usable is written). */
  length = 0;

  /** Encodes `(groupBy, key)`; false (nothing usable) when it takes more than `MAX_KEY_BYTES`. */
  set(groupBy: string, key: string): boolean {
    this.bytes = this.own;
    this.start = 0;
    this.length = encodeKey(groupBy, key, this.own, 0);
    return this.length <= MAX_KEY_BYTES;
  }

  /** Makes this the key `bytes[from, to)` (e.g. one of an `EntityKeyList`, until that list changes). */
  point(bytes: Buffer, from: number, to: number): void {
    this.bytes = bytes;
    this.start = from;
    this.length = to - from;
  }

  /** The error a writer throws for an entity whose `set` returned false. */
  tooLong(key: string): Error {
    return tooLongError(key, this.length);
  }
}

function tooLongError(key: string, size: number): Error {
  return new Error(
    `entity key '${key.slice(0, 40)}…' with its store id is ${size} bytes, more than the LMDB store's ${MAX_KEY_BYTES}; use shorter key values (e.g. a hash) or the Redis store`,
  );
}

/**
 * Writes `key + "\u0000" + groupBy` as UTF-8 to `target` at `at` (which has `MAX_KEY_BYTES` bytes of room)
 * and returns its size in bytes; when that exceeds `MAX_KEY_BYTES`, nothing usable is written.
 */
function encodeKey(groupBy: string, key: string, target: Buffer, at: number): number {
  const n = key.length;
  const m = groupBy.length;
  if (n + 1 + m <= MAX_KEY_BYTES) {
    // ASCII (most keys: ids and store ids) byte by byte: cheaper than Buffer#write's per-call cost.
    let p = at;
    const keyEnd = at + n;
    while (p < keyEnd) {
      const c = key.charCodeAt(p - at);
      if (c >= 0x80) break;
      target[p++] = c;
    }
    if (p === keyEnd) {
      target[p++] = 0;
      let i = 0;
      while (i < m) {
        const c = groupBy.charCodeAt(i++);
        if (c >= 0x80) break;
        target[p++] = c;
      }
      if (p === keyEnd + 1 + m) return n + 1 + m;
    }
  }
  // Measured first: Buffer#write truncates silently.
  const keySize = Buffer.byteLength(key);
  const size = keySize + 1 + Buffer.byteLength(groupBy);
  if (size > MAX_KEY_BYTES) return size;
  target.write(key, at);
  target[at + keySize] = 0;
  target.write(groupBy, at + keySize + 1);
  return size;
}

/**
 * The entity keys of one commit, encoded back to back (key `i` is `bytes[from[i], from[i + 1])`), so they
 * can be sorted into LMDB's key order (`sortByBytes`) before the commit gets and puts them. Reused by every
 * commit (commits run one at a time).
 */
class EntityKeyList {
  bytes = Buffer.allocUnsafe(1 << 16);
  from: Int32Array = new Int32Array(1 << 12);
  count = 0;
  /** Index of the first key longer than `MAX_KEY_BYTES` (stored empty), -1: none; its size in `tooLongSize`. */
  tooLong = -1;
  tooLongSize = 0;

  clear(): void {
    this.count = 0;
    this.tooLong = -1;
  }

  add(groupBy: string, key: string): void {
    const i = this.count;
    if (i + 2 > this.from.length) {
      const from = new Int32Array(2 * this.from.length);
      from.set(this.from);
      this.from = from;
    }
    const at = i === 0 ? 0 : this.from[i]!;
    if (at + MAX_KEY_BYTES > this.bytes.length) {
      const bytes = Buffer.allocUnsafe(2 * this.bytes.length);
      bytes.set(this.bytes.subarray(0, at));
      this.bytes = bytes;
    }
    this.from[i] = at;
    let size = encodeKey(groupBy, key, this.bytes, at);
    if (size > MAX_KEY_BYTES) {
      if (this.tooLong < 0) {
        this.tooLong = i;
        this.tooLongSize = size;
      }
      size = 0;
    }
    this.from[i + 1] = at + size;
    this.count = i + 1;
  }
}

/**
 * Sorts `order[lo, hi)`, indices of byte strings `bytes[from[i], from[i + 1])` that agree on their first
 * `depth` bytes, into LMDB's default key order (bytewise, a prefix first): an MSD radix sort, with an
 * insertion sort for short ranges. `tmp` is scratch as long as `order`, `counts[d]` the counts of depth `d`
 * (zeroed; left zeroed). A commit's gets and puts in key order walk the B-tree's pages in order instead of
 * at random: -7% (min) to -10% (median) of commit CPU replaying the commits of a 1M-event fraud drain
 * (~170k entities each, into a 500k-entity store), ~0 at 200k events, whose store stays in cache. The
 * sort costs ~0.15 µs per key; `Array#sort` with a comparison of the key strings cost ~1 µs, more than
 * the order saves.
 *
 * @internal Exported for tests.
 */
export function sortByBytes(
  bytes: Uint8Array,
  from: Int32Array,
  order: Int32Array,
  tmp: Int32Array,
  lo: number,
  hi: number,
  depth = 0,
  counts: Int32Array[] = [],
): void {
  for (;;) {
    if (hi - lo <= 24) {
      insertionSort(bytes, from, order, lo, hi, depth);
      return;
    }
    // Bucket 1: the key ends here (sorts first); b + 2: its next byte is b. Only `[min, max]` is used (and
    // zeroed again after), so a range of decimal ids costs a few buckets, not 258.
    const count = (counts[depth] ??= new Int32Array(258));
    let min = 257;
    let max = 1;
    for (let k = lo; k < hi; k++) {
      const i = order[k]!;
      const at = from[i]! + depth;
      const c = at < from[i + 1]! ? bytes[at]! + 2 : 1;
      count[c]++;
      if (c < min) min = c;
      if (c > max) max = c;
    }
    if (min === max) {
      // One bucket (a shared prefix, e.g. "card_000"): nothing to move; all ended: all equal. The rest of
      // the shared prefix is measured in one pass (one visit per key instead of one per byte).
      count[min] = 0;
      if (min === 1) return;
      depth += 1 + sharedPrefix(bytes, from, order, lo, hi, depth + 1);
      continue;
    }
    // Prefix sums: count[c] is where bucket c ends; the scatter below leaves it where bucket c starts.
    count[min] += lo;
    for (let c = min + 1; c <= max; c++) count[c] += count[c - 1]!;
    for (let k = hi - 1; k >= lo; k--) {
      const i = order[k]!;
      const at = from[i]! + depth;
      tmp[--count[at < from[i + 1]! ? bytes[at]! + 2 : 1]!] = i;
    }
    for (let k = lo; k < hi; k++) order[k] = tmp[k]!;
    // Bucket 1 (keys that end here) holds equal keys; the byte buckets are sorted from the next byte on.
    for (let c = min < 2 ? 2 : min; c <= max; c++) {
      const end = c < max ? count[c + 1]! : hi;
      if (end - count[c]! > 1) sortByBytes(bytes, from, order, tmp, count[c]!, end, depth + 1, counts);
    }
    count.fill(0, min, max + 1);
    return;
  }
}

/** How many bytes from `depth` on the keys `order[lo, hi)` all share. */
function sharedPrefix(
  bytes: Uint8Array,
  from: Int32Array,
  order: Int32Array,
  lo: number,
  hi: number,
  depth: number,
): number {
  const first = order[lo]!;
  const base = from[first]! + depth;
  let shared = from[first + 1]! - base;
  for (let k = lo + 1; k < hi && shared > 0; k++) {
    const i = order[k]!;
    const at = from[i]! + depth;
    const n = Math.min(shared, from[i + 1]! - at);
    let j = 0;
    while (j < n && bytes[at + j] === bytes[base + j]) j++;
    shared = j;
  }
  return shared;
}

/** `sortByBytes` of a short range: keys compared byte by byte from `depth`. */
function insertionSort(
  bytes: Uint8Array,
  from: Int32Array,
  order: Int32Array,
  lo: number,
  hi: number,
  depth: number,
): void {
  for (let k = lo + 1; k < hi; k++) {
    const i = order[k]!;
    let j = k;
    while (j > lo && compareFrom(bytes, from, order[j - 1]!, i, depth) > 0) {
      order[j] = order[j - 1]!;
      j--;
    }
    order[j] = i;
  }
}

/** Byte strings `a` and `b` (see `sortByBytes`) compared from `depth` on: < 0, 0 or > 0. */
function compareFrom(bytes: Uint8Array, from: Int32Array, a: number, b: number, depth: number): number {
  let x = from[a]! + depth;
  let y = from[b]! + depth;
  const xEnd = from[a + 1]!;
  const yEnd = from[b + 1]!;
  for (; x < xEnd && y < yEnd; x++, y++) if (bytes[x] !== bytes[y]) return bytes[x]! - bytes[y]!;
  return xEnd - x - (yEnd - y);
}

/** Fencing (`CommitBatch.expect`): throws `fenced: ...` when a stored offset is not the expected one. */
function checkExpected(
  offsets: Database<string, string>,
  expect: Readonly<Record<string, string | null>>,
): void {
  for (const [name, want] of Object.entries(expect)) {
    const stored = offsets.get(name) ?? null;
    if (stored !== want) {
      const show = (v: string | null) => (v === null ? 'absent' : `'${v}'`);
      throw new Error(
        `fenced: offset '${name}' is ${show(stored)} in the store, this writer expected ${show(want)} (another writer committed to this partition; stop this one)`,
      );
    }
  }
}

/** lmdb's default maximum key size, in bytes. */
export const MAX_KEY_BYTES = 1978;

/** The `entities` keys: `EntityKey`s written as their bytes (cheaper than lmdb's ordered-binary encoding). */
const entityKeys = {
  writeKey(id: EntityKey | Uint8Array, target: Buffer, start: number): number {
    if (id instanceof EntityKey) {
      const n = id.length;
      // A RangeError makes lmdb retry with a fresh buffer.
      if (start + n > target.length) throw new RangeError('key does not fit the buffer');
      // Byte by byte: `set` costs more than the loop for keys this short.
      const bytes = id.bytes;
      const from = id.start;
      for (let i = 0; i < n; i++) target[start + i] = bytes[from + i]!;
      return start + n;
    }
    if (id instanceof Uint8Array) {
      // lmdb's own range bounds (a range with no start begins at the byte key [0]).
      target.set(id, start);
      return start + id.length;
    }
    throw new TypeError(`LMDB entity keys are EntityKey or bytes, got ${typeof id}`);
  },
  readKey: (source: Buffer, start: number, end: number): string => source.toString('utf8', start, end),
};

type ReadTransaction = ReturnType<Database['useReadTransaction']>;

/** One entity's writes in a commit. */
interface PendingEntity {
  readonly groupBy: string;
  readonly key: string;
  tiles: TileWrite[];
  /** Index of its run write, -1: none. */
  run: number;
  /** The next pending entity with the same `key` (another group-by), null: none. */
  next: PendingEntity | null;
}

/** The tile writes of entities that only change their run (`mergePacked` never sorts an empty list). */
const NO_TILES: TileWrite[] = [];

/** The run writes of a commit without any. */
const NO_RUNS: readonly RunWrite[] = [];

/** `list` in an array twice as long. */
function grown(list: Int32Array): Int32Array {
  const out = new Int32Array(2 * list.length);
  out.set(list);
  return out;
}

class LmdbStore implements OnlineStore {
  readonly kind = 'lmdb' as const;
  /** Addresses are LMDB keys `key + "\u0000" + groupBy` (`EntityKey`), which lmdb limits. */
  readonly maxKeyBytes = MAX_KEY_BYTES;
  /** Reused by every `readEntities` call: reads are synchronous, so one call uses it at a time. */
  private readonly columns = new TileColumns();
  /** Every entity value a commit writes is merged here (commits run one at a time, each put copies it). */
  private readonly merged = new PackedBuffer();
  /** The key of the entity being read (reads are synchronous: one at a time). */
  private readonly readKey = new EntityKey();
  /** The key of the entity being written (write transaction callbacks run one at a time). */
  private readonly writeKey = new EntityKey();
  /** A commit's entity keys, their order and scratch for sorting it (write callbacks run one at a time). */
  private readonly keys = new EntityKeyList();
  private order: Int32Array = new Int32Array(1 << 12);
  private scratch: Int32Array = new Int32Array(1 << 12);
  /** Per run write of an entity without tile writes, its index in `runs` (by entity, after `withTiles`). */
  private runOf: Int32Array = new Int32Array(1 << 12);
  private readonly counts: Int32Array[] = [];
  // `entities` with `EntityKey` keys (the typings know only lmdb's own key types; `entityKeys` writes them).
  /** `getBinaryFast`, in a read transaction or (no options) the write transaction; the typings omit options. */
  private readonly getFast: (id: EntityKey, o?: { transaction: ReadTransaction }) => Buffer | undefined;
  private readonly put: (id: EntityKey, value: Buffer) => void;
  private readonly remove: (id: EntityKey) => void;

  constructor(
    private readonly env: RootDatabase,
    private readonly entities: Database<Buffer, string>,
    private readonly offsets: Database<string, string>,
    private readonly counters: Database<number, string>,
  ) {
    this.getFast = entities.getBinaryFast.bind(entities) as unknown as typeof this.getFast;
    this.put = entities.put.bind(entities) as unknown as typeof this.put;
    this.remove = entities.remove.bind(entities) as unknown as typeof this.remove;
  }

  async readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]> {
    const out: StoredTile[][] = new Array(requests.length);
    this.readSync(requests, (i, value) => {
      if (value === undefined) out[i] = [];
      else {
        // getBinaryFast's buffer is overwritten by the next get, so a kept result needs its own copy.
        const copy = Buffer.allocUnsafe(value.length);
        copy.set(value.subarray(0, value.length));
        out[i] = unpackTiles(copy);
      }
    });
    return out;
  }

  async readEntities(
    requests: readonly TileRequest[],
    visit: (index: number, tiles: TileColumns) => void,
  ): Promise<void> {
    const columns = this.columns;
    this.readSync(requests, (i, value) => visit(i, columns.fromPacked(value)));
  }

  /**
   * One read transaction (one snapshot) for all requests. `value` is valid only during `visit`, and is
   * LMDB's shared read buffer: its `length` is the value's size (lmdb sets it) but its `byteLength` is the
   * buffer's, so readers use `length` only (TileColumns.fromPacked does).
   */
  private readSync(
    requests: readonly TileRequest[],
    visit: (index: number, value: Buffer | undefined) => void,
  ): void {
    const transaction = this.entities.useReadTransaction();
    const options = { transaction };
    const id = this.readKey;
    try {
      for (let i = 0; i < requests.length; i++) {
        const r = requests[i]!;
        // An id longer than lmdb keys can be was never written (writers skip such entities, worker.ts
        // invariant 10): it reads as absent, like any unknown key, instead of failing the whole read.
        visit(i, id.set(r.groupBy, r.key) ? this.getFast(id, options) : undefined);
      }
    } finally {
      transaction.done();
    }
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    const runWrites = batch.runs ?? NO_RUNS;
    const runBytes: number[] = new Array(runWrites.length);
    // Entities with tile writes (few: roll-ups), each with its tile writes and run write (-1: none).
    // Writers list an entity's tile writes together, so the map is consulted once per entity, not per tile.
    const withTiles: PendingEntity[] = [];
    // The same entities by key (the group-bys of one key chained by `next`): every run write looks itself up
    // here with the strings it carries (whose hashes V8 caches), one lookup each, no joined id.
    const byKey = new Map<string, PendingEntity>();
    const tiles = batch.tiles;
    for (let i = 0; i < tiles.length; ) {
      const { groupBy, key } = tiles[i]!;
      let j = i + 1;
      while (j < tiles.length && tiles[j]!.key === key && tiles[j]!.groupBy === groupBy) j++;
      const list = tiles.slice(i, j);
      const first = byKey.get(key);
      let e: PendingEntity | null | undefined = first;
      while (e !== undefined && e !== null && e.groupBy !== groupBy) e = e.next;
      if (e === undefined || e === null) {
        const added: PendingEntity = { groupBy, key, tiles: list, run: -1, next: first ?? null };
        byKey.set(key, added);
        withTiles.push(added);
      } else e.tiles = e.tiles.concat(list); // keeps write order: a later write of one address wins
      i = j;
    }
    /** Per run write, 1: its entity also has tile writes (merged with them in `withTiles`). */
    const merges = new Uint8Array(runWrites.length);
    if (byKey.size > 0)
      for (let i = 0; i < runWrites.length; i++) {
        const { groupBy, key } = runWrites[i]!;
        let e: PendingEntity | null | undefined = byKey.get(key);
        while (e !== undefined && e !== null && e.groupBy !== groupBy) e = e.next;
        if (e !== undefined && e !== null) {
          e.run = i;
          merges[i] = 1;
        }
      }
    // A child transaction, because only it is rolled back by a throw (a fenced offset, a corrupt value):
    // `transaction` alone would commit the writes made before it.
    await this.env.childTransaction(() => {
      if (batch.expect) checkExpected(this.offsets, batch.expect);
      // Every entity once, tile writes and run write together, in key order (for speed only: each entity is
      // written once, so the order changes nothing else). Keys are encoded here, inside the callback: the
      // reused lists are this commit's only while it runs (callbacks never overlap; commits may).
      const keys = this.keys;
      keys.clear();
      for (const e of withTiles) keys.add(e.groupBy, e.key);
      const tileEntities = keys.count;
      let runOf = this.runOf;
      for (let i = 0; i < runWrites.length; i++) {
        if (merges[i] !== 0) continue;
        if (keys.count - tileEntities >= runOf.length) runOf = this.runOf = grown(runOf);
        runOf[keys.count - tileEntities] = i;
        keys.add(runWrites[i]!.groupBy, runWrites[i]!.key);
      }
      if (keys.tooLong >= 0) {
        const t = keys.tooLong;
        throw tooLongError(
          t < tileEntities ? withTiles[t]!.key : runWrites[runOf[t - tileEntities]!]!.key,
          keys.tooLongSize,
        );
      }
      const n = keys.count;
      if (this.order.length < n) {
        this.order = new Int32Array(Math.max(n, 2 * this.order.length));
        this.scratch = new Int32Array(this.order.length);
      }
      const order = this.order;
      for (let k = 0; k < n; k++) order[k] = k;
      sortByBytes(keys.bytes, keys.from, order, this.scratch, 0, n, 0, this.counts);
      const id = this.writeKey;
      for (let k = 0; k < n; k++) {
        const u = order[k]!;
        id.point(keys.bytes, keys.from[u]!, keys.from[u + 1]!);
        if (u < tileEntities) {
          const e = withTiles[u]!;
          const size = this.rewrite(id, e.tiles, e.run < 0 ? undefined : runWrites[e.run]!.bytes);
          if (e.run >= 0) runBytes[e.run] = size;
        } else {
          // A run write alone: most of a stream worker's commit (one per entity its events touched).
          const i = runOf[u - tileEntities]!;
          runBytes[i] = this.rewrite(id, NO_TILES, runWrites[i]!.bytes);
        }
      }
      if (batch.offsets)
        for (const [name, value] of Object.entries(batch.offsets)) this.offsets.put(name, value);
    });
    return { runBytes };
  }

  /**
   * Rewrites the entity `id`, inside the commit's write transaction: `mergePacked` of its stored value, its
   * tile writes and its run write (undefined: none). Returns the run's length afterwards.
   */
  private rewrite(id: EntityKey, writes: TileWrite[], run: Uint8Array | null | undefined): number {
    const merged = this.merged;
    // LMDB's shared read buffer, valid until the next get (mergePacked reads only its `length` bytes, see
    // readSync): it is merged into `merged` before that, which saves copying every entity's value once more.
    const value = this.getFast(id);
    const next = mergePacked(value, writes, run, merged);
    // A put inside a write transaction copies the value at once, so `merged` is free again after it.
    if (next === null) {
      if (value !== undefined) this.remove(id);
      return 0;
    }
    this.put(id, next);
    return next.length - merged.tilesEnd;
  }

  async readOffsets(names?: readonly string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    if (names) {
      for (const n of names) {
        const v = this.offsets.get(n);
        if (v !== undefined) out[n] = v;
      }
    } else {
      for (const { key, value } of this.offsets.getRange()) out[key] = value;
    }
    return out;
  }

  async addCounters(deltas: Readonly<Record<string, number>>): Promise<void> {
    const entries = Object.entries(deltas).filter(([, d]) => d !== 0);
    if (entries.length === 0) return;
    checkCounterDeltas(entries);
    // Read-add-write inside one write transaction: LMDB serializes writers, also across processes.
    await this.env.transaction(() => {
      for (const [name, d] of entries) this.counters.put(name, (this.counters.get(name) ?? 0) + d);
    });
  }

  async readCounters(prefix = ''): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const { key, value } of this.counters.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      out[key] = value;
    }
    return out;
  }

  async stats(): Promise<StoreStats> {
    const byGroupBy: Record<string, { entities: number; tiles: number; bytes: number }> = {};
    let entities = 0;
    let tiles = 0;
    let bytes = 0;
    const columns = new TileColumns();
    for (const { key, value } of this.entities.getRange()) {
      const groupBy = key.slice(key.lastIndexOf('\u0000') + 1);
      columns.fromPacked(value);
      // The exact-from marker (exact-from.ts) is not a tile; an entity holding only it holds nothing.
      // Run bytes count as stored bytes.
      let entityTiles = 0;
      let entityBytes = 0;
      for (let i = 0; i < columns.length; i++) {
        if (columns.level[i] === EXACT_FROM_LEVEL) continue;
        if (columns.level[i] !== EVENT_RUN_LEVEL) entityTiles++;
        entityBytes += columns.bytes(i).length;
      }
      if (entityBytes === 0 && entityTiles === 0) continue;
      const g = (byGroupBy[groupBy] ??= { entities: 0, tiles: 0, bytes: 0 });
      entities++;
      g.entities++;
      tiles += entityTiles;
      g.tiles += entityTiles;
      bytes += entityBytes;
      g.bytes += entityBytes;
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  async deleteGroupBys(
    ids: readonly string[],
    onProgress?: (deleted: number) => void,
  ): Promise<Record<string, number>> {
    const out: Record<string, number> = Object.fromEntries(ids.map((id) => [id, 0]));
    const wanted = new Set(ids);
    let deleted = 0;
    // Keys are entity key first (`EntityKey`), so an id's entities are spread over the whole database: one
    // pass over the keys (as `stats`), deleting each batch in a write transaction of its own (a single one
    // would hold the writer lock, and every stream worker's commit, for the whole scan), the next batch
    // found from the last key deleted on.
    let start: Buffer | undefined;
    for (;;) {
      const batch: Buffer[] = [];
      for (const key of this.entities.getKeys(start === undefined ? undefined : { start })) {
        const groupBy = key.slice(key.lastIndexOf('\u0000') + 1);
        if (!wanted.has(groupBy)) continue;
        batch.push(Buffer.from(key, 'utf8'));
        out[groupBy]!++;
        if (batch.length === DELETE_BATCH) break;
      }
      if (batch.length === 0) return out;
      const id = this.writeKey;
      await this.env.transaction(() => {
        for (const key of batch) {
          id.point(key, 0, key.length);
          this.remove(id);
        }
      });
      deleted += batch.length;
      onProgress?.(deleted);
      if (batch.length < DELETE_BATCH) return out;
      start = batch[batch.length - 1];
    }
  }

  async deleteOffsets(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await this.env.transaction(() => {
      for (const name of names) this.offsets.remove(name);
    });
  }

  async loadEntities(list: readonly EntityTiles[]): Promise<void> {
    const packed = new Map<readonly StoredTile[], Buffer>();
    await this.env.transaction(() => {
      for (const e of list) {
        let value = packed.get(e.tiles);
        if (value === undefined) packed.set(e.tiles, (value = packTiles(e.tiles)));
        // The whole value: tiles and no run.
        if (!this.writeKey.set(e.groupBy, e.key)) throw this.writeKey.tooLong(e.key);
        this.put(this.writeKey, value);
      }
    });
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}
