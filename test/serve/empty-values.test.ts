import { describe, expect, it } from 'vitest';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { allWindows } from '../../src/aggregate/window.ts';
import { createFetchGroupBys, emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import type { OnlineStore, StoredTile } from '../../src/online/store.ts';
import { DAY, genEvents, HOUR, makeGroupBy, MIN, win } from '../aggregate/support/fixture.ts';
import { createRng } from '../aggregate/support/prng.ts';

describe('empty-window values of missing keys', () => {
  it('are frozen, so one response cannot change what the next one gets', () => {
    const groupBy = makeGroupBy([win('1h', HOUR, 5 * MIN)]);
    const first = emptyGroupValues(groupBy);
    const histogram = groupBy.aggregations.findIndex((a) => a.op === 'histogram');
    const value = first.values[histogram]![0] as Record<string, number>;
    expect(value).toEqual({});
    expect(() => {
      value.leaked = 1;
    }).toThrow(TypeError);
    expect(() => (first.values[0] as unknown[]).push(1)).toThrow(TypeError);
    expect(emptyGroupValues(groupBy).values[histogram]![0]).toEqual({});
  });

  it('are what a fetched entity gets for a window with nothing in it; object values are its own', async () => {
    const windows = [win('1h', HOUR, 5 * MIN), win('1d', DAY, HOUR)];
    const groupBy = makeGroupBy(windows);
    const agg = createGroupAggregator(groupBy);
    const t = Date.UTC(2024, 2, 1) + 7_777;
    // Events only 3 to 20 hours back: the 1d window has them, the 1h window is empty.
    const rng = createRng(3);
    const tilesOf = new Map<string, StoredTile[]>();
    for (const key of ['a', 'b', 'c']) {
      const tiles = new TileSet(agg, allWindows(groupBy));
      for (const e of genEvents(rng, 5, t - 20 * HOUR, t - 3 * HOUR, [key])) tiles.add(e.row, e.ts, e.seq);
      tilesOf.set(
        key,
        tiles.refs().map(({ level, start }) => ({ level, start, bytes: tiles.encodeTile(level, start)! })),
      );
    }
    const store = { readTiles: async (requests) => requests.map((r) => tilesOf.get(r.key)!) } as OnlineStore;
    const fetched = await createFetchGroupBys(store)([{ id: 'g', groupBy, keys: ['a', 'b', 'c'] }], t);
    const empty = emptyGroupValues(groupBy).values;
    const histogram = groupBy.aggregations.findIndex((a) => a.op === 'histogram');
    const count = groupBy.aggregations.findIndex((a) => a.op === 'count');
    for (const entity of fetched[0]!) {
      expect(entity.status).toBe('ok');
      expect(entity.values[count]![1]).toBeGreaterThan(0); // 1d
      groupBy.aggregations.forEach((_, a) => expect(entity.values[a]![0]).toEqual(empty[a]![0])); // 1h
      expect(Object.isFrozen(entity.values[histogram]![0])).toBe(false);
    }
    const [a, b] = fetched[0]!;
    expect(a!.values[histogram]![0]).not.toBe(b!.values[histogram]![0]);
  });
});
