import { open, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import {
  checkCounterDeltas,
  type CommitBatch,
  type CommitResult,
  type EntityTiles,
  type OnlineStore,
  type StoreStats,
  type StoredTile,
  type TileRequest,
  type TileWrite,
} from './store.ts';
import { EXACT_FROM_LEVEL } from './exact-from.ts';
import { mergePacked, PackedBuffer, packTiles, TileColumns, unpackTiles } from './tile-pack.ts';

/** On-disk layout version, kept in the `meta` database; bump when the layout changes. */
const FORMAT = '2';

/**
 * Embedded LMDB store (the default; no service needed). The `entities` database maps the UTF-8 key
 * `key + "\u0000" + groupBy` (`EntityKey`) to ONE value per entity (tile-pack.ts): all its tiles packed,
 * then its event run (store.ts layout 5). A read is one get per entity, decoded in place (`readEntities`);
 * a commit rewrites each touched entity once, however many of its tiles changed (per-tile entries made
 * commits cost ~80 puts per event), and a run append copies the entity's value once (a few KiB at most)
 * instead of every read paying a second lookup per entity. Offsets live in the `offsets` database of the
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
 * separates them. Encoded once per entity straight from its parts, then copied by `entityKeys.writeKey`
 * into each get and put: joining the parts into a string per entity, and encoding that string once per
 * get and once per put, was a tenth of a commit.
 */
class EntityKey {
  /** The key is `bytes[0, length)`; `length` may exceed `MAX_KEY_BYTES` after `set` returned false. */
  readonly bytes = Buffer.allocUnsafe(MAX_KEY_BYTES);
  length = 0;

  /** Encodes `(groupBy, key)`; false (nothing usable) when it takes more than `MAX_KEY_BYTES`. */
  set(groupBy: string, key: string): boolean {
    const b = this.bytes;
    const n = key.length;
    const m = groupBy.length;
    if (n + 1 + m <= MAX_KEY_BYTES) {
      // ASCII (most keys: ids and store ids) byte by byte: cheaper than Buffer#write's per-call cost.
      let at = 0;
      while (at < n) {
        const c = key.charCodeAt(at);
        if (c >= 0x80) break;
        b[at++] = c;
      }
      if (at === n) {
        b[at++] = 0;
        let i = 0;
        while (i < m) {
          const c = groupBy.charCodeAt(i++);
          if (c >= 0x80) break;
          b[at++] = c;
        }
        if (at === n + 1 + m) {
          this.length = at;
          return true;
        }
      }
    }
    // Measured first: Buffer#write truncates silently.
    const keySize = Buffer.byteLength(key);
    this.length = keySize + 1 + Buffer.byteLength(groupBy);
    if (this.length > MAX_KEY_BYTES) return false;
    b.write(key, 0);
    b[keySize] = 0;
    b.write(groupBy, keySize + 1);
    return true;
  }

  /** The error a writer throws for an entity whose `set` returned false. */
  tooLong(key: string): Error {
    return new Error(
      `entity key '${key.slice(0, 40)}…' with its store id is ${this.length} bytes, more than the LMDB store's ${MAX_KEY_BYTES}; use shorter key values (e.g. a hash) or the Redis store`,
    );
  }
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
      for (let i = 0; i < n; i++) target[start + i] = bytes[i];
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
}

/** The tile writes of entities that only change their run (`mergePacked` never sorts an empty list). */
const NO_TILES: TileWrite[] = [];

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
    const { merged, writeKey: id } = this;
    const runWrites = batch.runs ?? [];
    const runBytes: number[] = new Array(runWrites.length);
    // Entities with tile writes (few: roll-ups), each with its tile writes and run write (-1: none).
    // Writers list an entity's tile writes together, so the map is consulted once per entity, not per tile.
    const withTiles: PendingEntity[] = [];
    // The same entities by group-by, then key: run writes look themselves up here with the strings they
    // carry (whose hashes V8 caches), not with a joined id built and hashed per run write.
    const byGroupBy = new Map<string, Map<string, PendingEntity>>();
    const tiles = batch.tiles;
    for (let i = 0; i < tiles.length; ) {
      const { groupBy, key } = tiles[i]!;
      let j = i + 1;
      while (j < tiles.length && tiles[j]!.key === key && tiles[j]!.groupBy === groupBy) j++;
      const list = tiles.slice(i, j);
      let keys = byGroupBy.get(groupBy);
      if (keys === undefined) byGroupBy.set(groupBy, (keys = new Map()));
      const e = keys.get(key);
      if (e === undefined) {
        const added = { groupBy, key, tiles: list, run: -1 };
        keys.set(key, added);
        withTiles.push(added);
      } else e.tiles = e.tiles.concat(list); // keeps write order: a later write of one address wins
      i = j;
    }
    /** Per run write, 1: its entity also has tile writes (merged with them in `withTiles`). */
    const merges = new Uint8Array(runWrites.length);
    if (byGroupBy.size > 0)
      for (let i = 0; i < runWrites.length; i++) {
        const { groupBy, key } = runWrites[i]!;
        const e = byGroupBy.get(groupBy)?.get(key);
        if (e !== undefined) {
          e.run = i;
          merges[i] = 1;
        }
      }
    /** Rewrites one entity's value: `mergePacked` of the stored value, its tile writes and run write. */
    const update = (groupBy: string, key: string, writes: TileWrite[], run: number) => {
      if (!id.set(groupBy, key)) throw id.tooLong(key);
      // LMDB's shared read buffer, valid until the next get (mergePacked reads only its `length` bytes, see
      // readSync): it is merged into `merged` before that, which saves copying every entity's value once more.
      const value = this.getFast(id);
      const next = mergePacked(value, writes, run < 0 ? undefined : runWrites[run]!.bytes, merged);
      // A put inside a write transaction copies the value at once, so `merged` is free again after it.
      if (next === null) {
        if (value !== undefined) this.remove(id);
      } else this.put(id, next);
      if (run >= 0) runBytes[run] = next === null ? 0 : next.length - merged.tilesEnd;
    };
    // A child transaction, because only it is rolled back by a throw (a fenced offset, a corrupt value):
    // `transaction` alone would commit the writes made before it.
    await this.env.childTransaction(() => {
      if (batch.expect) checkExpected(this.offsets, batch.expect);
      for (const e of withTiles) update(e.groupBy, e.key, e.tiles, e.run);
      for (let i = 0; i < runWrites.length; i++)
        if (merges[i] === 0) update(runWrites[i]!.groupBy, runWrites[i]!.key, NO_TILES, i);
      if (batch.offsets)
        for (const [name, value] of Object.entries(batch.offsets)) this.offsets.put(name, value);
    });
    return { runBytes };
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
