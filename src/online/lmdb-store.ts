import { open, type Database, type RootDatabase } from 'lmdb';
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
import { mergePacked, packTiles, unpackTiles } from './tile-pack.ts';

type EntityKey = [string, string];

/**
 * Embedded LMDB store (the default; no service needed). The `tiles` database maps the ordered-binary key
 * `[groupBy, key]` to ALL tiles of that entity packed into one value (tile-pack.ts): a read is one get per
 * entity, and a commit rewrites each touched entity once, however many of its tiles changed (per-tile
 * entries made commits cost ~80 puts per event). The `runs` database maps the same key to the entity's
 * event run (store.ts layout 5), so a worker appending events rewrites a few hundred bytes, not the
 * entity's tiles. Offsets live in the `offsets` database of the same environment, so one write
 * transaction covers tiles, runs and offsets.
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
      `Cannot open the LMDB online store at '${path}': ${(cause as Error).message}. Check the path is a writable directory (or choose another with --store-path).`,
      { cause },
    );
  }
  const tiles: Database<Buffer, EntityKey> = env.openDB('tiles', { encoding: 'binary' });
  const runs: Database<Buffer, EntityKey> = env.openDB('runs', { encoding: 'binary' });
  const offsets: Database<string, string> = env.openDB('offsets', { encoding: 'string' });
  const counters: Database<number, string> = env.openDB('usage', { encoding: 'ordered-binary' });
  return new LmdbStore(env, tiles, runs, offsets, counters);
}

class LmdbStore implements OnlineStore {
  readonly kind = 'lmdb' as const;
  constructor(
    private readonly env: RootDatabase,
    private readonly tiles: Database<Buffer, EntityKey>,
    private readonly runs: Database<Buffer, EntityKey>,
    private readonly offsets: Database<string, string>,
    private readonly counters: Database<number, string>,
  ) {}

  async readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]> {
    return this.readTilesSync(requests);
  }

  /** Synchronous read (LMDB reads never block on I/O beyond page faults); one snapshot for all requests. */
  readTilesSync(requests: readonly TileRequest[]): StoredTile[][] {
    const transaction = this.tiles.useReadTransaction();
    try {
      const out: StoredTile[][] = new Array(requests.length);
      for (let i = 0; i < requests.length; i++) {
        const k: EntityKey = [requests[i].groupBy, requests[i].key];
        const packed = copyFast(this.tiles, k, transaction);
        const list = packed === undefined ? [] : unpackTiles(packed);
        const run = copyFast(this.runs, k, transaction);
        if (run !== undefined) list.push({ level: EVENT_RUN_LEVEL, start: 0, bytes: run });
        out[i] = list;
      }
      return out;
    } finally {
      transaction.done();
    }
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    const { tiles, runs, offsets } = this;
    const runWrites = batch.runs ?? [];
    const runBytes: number[] = new Array(runWrites.length);
    const runValues: (Uint8Array | null)[] = new Array(runWrites.length);
    const byEntity = new Map<string, TileWrite[]>();
    for (const t of batch.tiles) {
      const id = `${t.groupBy}\u0000${t.key}`;
      const list = byEntity.get(id);
      if (list === undefined) byEntity.set(id, [t]);
      else list.push(t);
    }
    await this.env.transaction(() => {
      for (const writes of byEntity.values()) {
        const k: EntityKey = [writes[0].groupBy, writes[0].key];
        // A view into LMDB's shared buffer, valid until the next get: it is merged into a new value (copied)
        // before that, which saves copying every entity's blob once more.
        const packed = tiles.getBinaryFast(k);
        const merged = mergePacked(packed, writes);
        if (merged === null) {
          if (packed !== undefined) tiles.remove(k);
        } else tiles.put(k, merged);
      }
      for (let i = 0; i < runWrites.length; i++) {
        const w = runWrites[i];
        const k: EntityKey = [w.groupBy, w.key];
        if (w.bytes === null) {
          runs.remove(k);
          runBytes[i] = 0;
          runValues[i] = null;
          continue;
        }
        let next = w.whole && Buffer.from(w.whole.buffer, w.whole.byteOffset, w.whole.byteLength);
        if (next === undefined) {
          const old = runs.getBinary(k);
          next = Buffer.allocUnsafe((old?.length ?? 0) + w.bytes.length);
          if (old !== undefined) next.set(old, 0);
          next.set(w.bytes, old?.length ?? 0);
        }
        runs.put(k, next);
        runBytes[i] = next.length;
        runValues[i] = next;
      }
      if (batch.offsets) for (const [name, value] of Object.entries(batch.offsets)) offsets.put(name, value);
    });
    return { runBytes, runValues };
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
    // Entities holding only an event run count too; run bytes count as stored bytes.
    const runBytes = new Map<string, number>();
    for (const { key, value } of this.runs.getRange()) runBytes.set(`${key[0]}\u0000${key[1]}`, value.length);
    const addRun = (groupBy: string, bytesOfRun: number) => {
      const g = (byGroupBy[groupBy] ??= { entities: 0, tiles: 0, bytes: 0 });
      bytes += bytesOfRun;
      g.bytes += bytesOfRun;
    };
    for (const { key, value } of this.tiles.getRange()) {
      const id = `${key[0]}\u0000${key[1]}`;
      const run = runBytes.get(id);
      if (run !== undefined) {
        runBytes.delete(id);
        addRun(key[0], run);
      }
      const g = (byGroupBy[key[0]] ??= { entities: 0, tiles: 0, bytes: 0 });
      // The exact-from marker (exact-from.ts) is not a tile; an entity holding only it has no tiles.
      const list = unpackTiles(value).filter((t) => t.level !== EXACT_FROM_LEVEL);
      if (list.length === 0 && run === undefined) continue;
      entities++;
      g.entities++;
      tiles += list.length;
      g.tiles += list.length;
      for (const t of list) {
        bytes += t.bytes.length;
        g.bytes += t.bytes.length;
      }
    }
    for (const [id, run] of runBytes) {
      const groupBy = id.slice(0, id.indexOf('\u0000'));
      addRun(groupBy, run);
      entities++;
      byGroupBy[groupBy].entities++;
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  async loadEntities(entities: readonly EntityTiles[]): Promise<void> {
    const packed = new Map<readonly StoredTile[], Buffer>();
    // Loading into a store without runs (the usual bulk case) skips a remove per entity.
    const hasRuns = (this.runs.getStats() as { entryCount: number }).entryCount > 0;
    await this.env.transaction(() => {
      for (const e of entities) {
        let value = packed.get(e.tiles);
        if (value === undefined) packed.set(e.tiles, (value = packTiles(e.tiles)));
        const k: EntityKey = [e.groupBy, e.key];
        this.tiles.put(k, value);
        if (hasRuns) this.runs.remove(k);
      }
    });
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}

/**
 * `db.get` for binary values, about 2x cheaper on the fetch path: `get` copies LMDB's shared read buffer with
 * `Uint8Array#slice` (~3 µs per value here), while a pooled `Buffer.allocUnsafe` + `set` costs a fraction.
 * The copy is needed because the shared buffer is overwritten by the next get.
 */
function copyFast(
  db: Database<Buffer, EntityKey>,
  key: EntityKey,
  transaction: ReturnType<Database<Buffer, EntityKey>['useReadTransaction']>,
): Buffer | undefined {
  // The typings omit getBinaryFast's options argument; lmdb reads it (read.js) to use our snapshot.
  const view = (db.getBinaryFast as (k: EntityKey, o: object) => Buffer | undefined).call(db, key, {
    transaction,
  });
  if (view === undefined) return undefined;
  const size = (db as unknown as { lastSize: number }).lastSize;
  const copy = Buffer.allocUnsafe(size);
  copy.set(view.subarray(0, size));
  return copy;
}
