import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { allWindows } from '../../src/aggregate/window.ts';
import type { GroupByDef } from '../../src/define/types.ts';
import { createFetchGroupBys, type FetchGroupRequest } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { openLmdbStore } from '../../src/online/lmdb-store.ts';
import type { OnlineStore, TileRequest, TileWrite } from '../../src/online/store.ts';
import { cardStats, merchantStats } from '../serve/fixtures.ts';

const HOUR = 3_600_000;
const T = 1_700_000_000_000 - (1_700_000_000_000 % HOUR);
const A = groupById(cardStats);
const B = groupById(merchantStats);

/** Tiles of `n` events per key (a different count per key), through the workers' TileSet code. */
function tileWrites(groupBy: GroupByDef, keyColumn: string, counts: Record<string, number>): TileWrite[] {
  const agg = createGroupAggregator(groupBy);
  const writes: TileWrite[] = [];
  for (const [key, n] of Object.entries(counts)) {
    const tiles = new TileSet(agg, allWindows(groupBy));
    for (let e = 0; e < n; e++) {
      const ts = T - (e + 1) * 60_000;
      tiles.add({ [keyColumn]: key, card_id: 'c', amount: e, ts }, ts, e);
    }
    for (const t of tiles.tiles())
      writes.push({
        groupBy: groupById(groupBy),
        key,
        level: t.level,
        start: t.start,
        bytes: agg.encode(t.irs),
      });
  }
  return writes;
}

let dir: string;
let store: OnlineStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-fetch-order-'));
  store = openLmdbStore(join(dir, 'store'));
  await store.commit({
    tiles: [
      ...tileWrites(cardStats, 'card_id', { k1: 1, k2: 2, k3: 3 }),
      ...tileWrites(merchantStats, 'merchant_id', { k1: 4, k3: 5 }),
    ],
  });
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fetch request order', () => {
  it('requests the group-bys that share a key list key by key, with the values of separate fetches', async () => {
    const reads: TileRequest[][] = [];
    // readTiles only, recording what it is asked for.
    const recording = Object.create(store, {
      readEntities: { value: undefined },
      readTiles: {
        value: (requests: readonly TileRequest[]) => {
          reads.push([...requests]);
          return store.readTiles(requests);
        },
      },
    }) as OnlineStore;
    const keys = ['k1', 'k2', 'k3'];
    const groups: FetchGroupRequest[] = [
      { id: A, groupBy: cardStats, keys },
      { id: B, groupBy: merchantStats, keys: ['k3', 'k1'] }, // its own list, read after the shared one
      { id: B, groupBy: merchantStats, keys },
    ];
    const fetched = await createFetchGroupBys(recording)(groups, T);
    expect(reads).toHaveLength(1);
    expect(reads[0]!.map((r) => `${r.groupBy === A ? 'A' : 'B'} ${r.key}`)).toEqual([
      'A k1',
      'B k1',
      'A k2',
      'B k2',
      'A k3',
      'B k3',
    ]);
    // Each group's values are those of fetching it alone (where no order is involved).
    const alone = createFetchGroupBys(store);
    for (let g = 0; g < groups.length; g++) expect(fetched[g]).toEqual((await alone([groups[g]!], T))[0]);
    expect(fetched[0]!.map((v) => v.values[0]![1])).toEqual([1, 2, 3]);
    expect(fetched[1]!.map((v) => v.status)).toEqual(['ok', 'ok']);
    expect(fetched[2]!.map((v) => v.status)).toEqual(['ok', 'missing_key', 'ok']);
  });
});
