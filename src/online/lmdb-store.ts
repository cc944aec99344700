import { open, type Database, type RootDatabase } from 'lmdb';
import type { CommitBatch, OnlineStore, StoreStats, StoredTile, TileRequest } from './store.ts';

/** Sorts after every number in lmdb's ordered-binary key encoding, so it closes a `[groupBy, key]` range. */
const RANGE_END = '\uffff';

type TileKey = [string, string, number, number];

/**
 * Embedded LMDB store (the default; no service needed). Keys are ordered-binary arrays
 * `[groupBy, key, level, start]` in the `tiles` database, offsets live in the `offsets` database of the same
 * environment, so one write transaction covers both.
 *
 * @example
 * const store = openLmdbStore('.tessera/store');
 */
export function openLmdbStore(path: string): OnlineStore {
  let env: RootDatabase;
  try {
    // overlappingSync (default on Linux) keeps commits durable against process crashes without blocking on fsync.
    env = open({ path, maxDbs: 4, mapSize: 2 ** 34 });
  } catch (cause) {
    throw new Error(
      `Cannot open the LMDB online store at '${path}': ${(cause as Error).message}. Check the path is a writable directory (or choose another with --store-path).`,
      { cause },
    );
  }
  const tiles: Database<Uint8Array, TileKey> = env.openDB('tiles', { encoding: 'binary' });
  const offsets: Database<string, string> = env.openDB('offsets', { encoding: 'string' });
  return new LmdbStore(env, tiles, offsets);
}

class LmdbStore implements OnlineStore {
  readonly kind = 'lmdb' as const;
  constructor(
    private readonly env: RootDatabase,
    private readonly tiles: Database<Uint8Array, TileKey>,
    private readonly offsets: Database<string, string>,
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
        const { groupBy, key } = requests[i];
        const list: StoredTile[] = [];
        const range = this.tiles.getRange({
          start: [groupBy, key] as unknown as TileKey,
          end: [groupBy, key, RANGE_END] as unknown as TileKey,
          transaction,
        });
        for (const { key: k, value } of range) list.push({ level: k[2], start: k[3], bytes: value });
        out[i] = list;
      }
      return out;
    } finally {
      transaction.done();
    }
  }

  async commit(batch: CommitBatch): Promise<void> {
    const { tiles, offsets } = this;
    await this.env.transaction(() => {
      for (const t of batch.tiles) {
        const k: TileKey = [t.groupBy, t.key, t.level, t.start];
        if (t.bytes === null) tiles.remove(k);
        else tiles.put(k, t.bytes);
      }
      if (batch.offsets) for (const [name, value] of Object.entries(batch.offsets)) offsets.put(name, value);
    });
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

  async stats(): Promise<StoreStats> {
    const byGroupBy: Record<string, { entities: number; tiles: number; bytes: number }> = {};
    let entities = 0;
    let tiles = 0;
    let bytes = 0;
    let lastEntity = '';
    for (const { key, value } of this.tiles.getRange()) {
      const g = (byGroupBy[key[0]] ??= { entities: 0, tiles: 0, bytes: 0 });
      const entity = `${key[0]}\u0000${key[1]}`;
      if (entity !== lastEntity) {
        entities++;
        g.entities++;
        lastEntity = entity;
      }
      tiles++;
      g.tiles++;
      bytes += value.length;
      g.bytes += value.length;
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}
