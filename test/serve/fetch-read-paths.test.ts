/**
 * The online fetch primitive reads LMDB in place (`readEntities`, TileColumns) and other stores through
 * `readTiles`: both paths must give the naive oracle's values, tiles and event runs merged.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { writeRunEvent, writeRunHeader } from '../../src/aggregate/event-run.ts';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { allWindows } from '../../src/aggregate/window.ts';
import type { GroupByDef, Row } from '../../src/define/types.ts';
import { entityKey } from '../../src/online/entity-key.ts';
import { createFetchGroupBys, type FetchCounters } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { openStore } from '../../src/online/open-store.ts';
import { deriveAndFilter } from '../../src/online/source-transform.ts';
import type { OnlineStore, RunWrite, TileWrite } from '../../src/online/store.ts';
import { closeTo, events, groupBys, naive, randomEvents, tempDir } from '../online/fixtures.ts';

const dir = tempDir('tessera-read-paths-');
afterAll(() => dir.remove());

const keyOf = (g: GroupByDef, row: Row) => entityKey(g.keys.map((k) => row[k] as string | null));

/** Writes the first `split` events of each entity as tiles and the rest as its event run. */
async function load(store: OnlineStore, all: readonly Row[], split: number): Promise<Set<string>[]> {
  const tiles: TileWrite[] = [];
  const runs: RunWrite[] = [];
  const keysOf: Set<string>[] = [];
  for (const g of groupBys) {
    const agg = createGroupAggregator(g);
    const byKey = new Map<string, { row: Row; seq: number }[]>();
    all.forEach((raw, seq) => {
      const row = { ...raw };
      if (!deriveAndFilter(events, row, `event ${seq}`)) return;
      const key = keyOf(g, row);
      if (key === null) return;
      const list = byKey.get(key) ?? [];
      list.push({ row, seq });
      byKey.set(key, list);
    });
    keysOf.push(new Set(byKey.keys()));
    for (const [key, list] of byKey) {
      const cut = Math.floor(list.length * split);
      const set = new TileSet(agg, allWindows(g));
      for (const { row, seq } of list.slice(0, cut)) set.add(row, row.ts as number, seq);
      for (const { level, start } of set.refs())
        tiles.push({ groupBy: groupById(g), key, level, start, bytes: set.encodeTile(level, start)! });
      if (cut < list.length) {
        const w = new ByteWriter();
        writeRunHeader(w, agg, list.length - cut);
        for (const { row, seq } of list.slice(cut)) writeRunEvent(w, agg, row, row.ts as number, seq);
        runs.push({ groupBy: groupById(g), key, bytes: w.finish() });
      }
    }
  }
  await store.commit({ tiles, runs });
  return keysOf;
}

describe('fetch read paths', () => {
  it('readEntities (in place) and readTiles give the oracle values, runs included', async () => {
    const store = openStore({ kind: 'lmdb', path: dir.path });
    expect(store.readEntities).toBeTypeOf('function');
    // The same store seen through readTiles only (what a store without readEntities offers).
    const tilesOnly = Object.create(store, { readEntities: { value: undefined } }) as OnlineStore;
    const all = randomEvents(21, 500, 6);
    const keysOf = await load(store, all, 0.6);
    const inPlace: FetchCounters = { storeReads: 0, entitiesRead: 0, tilesDecoded: 0 };
    const copied: FetchCounters = { storeReads: 0, entitiesRead: 0, tilesDecoded: 0 };
    const viaEntities = createFetchGroupBys(store, inPlace);
    const viaTiles = createFetchGroupBys(tilesOnly, copied);
    const last = Math.max(...all.map((e) => e.ts as number));
    const requests = groupBys.map((g, i) => ({
      id: groupById(g),
      groupBy: g,
      keys: [...keysOf[i]!, 'nobody', [...keysOf[i]!][0]!],
    }));
    let checked = 0;
    for (const t of [last + 1, last - 3_600_000, last - 7 * 60_000, last + 86_400_000]) {
      const a = await viaEntities(requests, t);
      const b = await viaTiles(requests, t);
      expect(a).toEqual(b);
      requests.forEach((r, g) =>
        r.keys.forEach((key, k) => {
          const got = a[g]![k]!;
          if (key === 'nobody') return expect(got.status).toBe('missing_key');
          const want = naive(all, r.groupBy.name, key, t);
          expect(closeTo(got.values, want), `${r.groupBy.name} ${key} at ${t}`).toBe(true);
          checked++;
        }),
      );
    }
    expect(checked).toBeGreaterThan(40);
    // The repeated key is read and decoded once per fetch.
    const distinct = keysOf[0]!.size + keysOf[1]!.size + 2;
    expect(inPlace).toEqual(copied);
    expect(inPlace.entitiesRead).toBe(4 * distinct);
    await store.close();
  });
});
