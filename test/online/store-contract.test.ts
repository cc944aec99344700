import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { openStore } from '../../src/online/open-store.ts';
import { CHUNK_ENTITIES } from '../../src/online/redis-store.ts';
import type { OnlineStore, StoredTile, TileWrite } from '../../src/online/store.ts';
import { startRedis, startRedisCluster, type TestCluster, type TestServer } from '../support/servers.ts';

const redis = await startRedis();
const cluster = await startRedisCluster();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  await cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let redisPrefixes = 0;
const backends: [string, (() => OnlineStore) | null][] = [
  [
    'lmdb',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'tessera-store-'));
      dirs.push(dir);
      return openStore({ kind: 'lmdb', path: dir });
    },
  ],
  [
    'redis',
    redis
      ? () => openStore({ kind: 'redis', url: (redis as TestServer).url, prefix: `t${redisPrefixes++}:` })
      : null,
  ],
  [
    // 4 store partitions over 3 masters: commits without fencing span slots (one script per partition).
    'redis cluster',
    cluster
      ? () =>
          openStore({
            kind: 'redis',
            url: (cluster as TestCluster).url,
            prefix: `t${redisPrefixes++}:`,
            partitions: 4,
          })
      : null,
  ],
];

const bytes = (...b: number[]) => Uint8Array.from(b);
const plain = (tiles: StoredTile[]) => tiles.map((t) => [t.level, t.start, [...t.bytes]]);

for (const [name, make] of backends) {
  describe.skipIf(!make)(`${name} store contract`, () => {
    let store: OnlineStore;
    beforeAll(() => {
      store = make!();
    });
    afterAll(() => store.close());

    it('reads all tiles of many (groupBy, key) pairs in one call, sorted, isolated by prefix', async () => {
      await store.commit({
        tiles: [
          { groupBy: 'g1', key: 'k', level: 3_600_000, start: 7_200_000, bytes: bytes(1) },
          { groupBy: 'g1', key: 'k', level: 1, start: 5, bytes: bytes(2, 2) },
          { groupBy: 'g1', key: 'k', level: 0, start: 86_400_000, bytes: bytes(3) },
          { groupBy: 'g1', key: 'k', level: 1, start: 1_700_000_000_123, bytes: bytes(4) },
          { groupBy: 'g1', key: 'kk', level: 1, start: 5, bytes: bytes(5) },
          { groupBy: 'g1', key: 'k\u001fx', level: 1, start: 5, bytes: bytes(6) },
          { groupBy: 'g2', key: 'k', level: 1, start: 5, bytes: bytes(7) },
        ],
      });
      const res = await store.readTiles([
        { groupBy: 'g1', key: 'k' },
        { groupBy: 'g2', key: 'k' },
        { groupBy: 'g1', key: 'missing' },
        { groupBy: 'g1', key: 'k' },
      ]);
      expect(res.map(plain)).toEqual([
        [
          [0, 86_400_000, [3]],
          [1, 5, [2, 2]],
          [1, 1_700_000_000_123, [4]],
          [3_600_000, 7_200_000, [1]],
        ],
        [[1, 5, [7]]],
        [],
        [
          [0, 86_400_000, [3]],
          [1, 5, [2, 2]],
          [1, 1_700_000_000_123, [4]],
          [3_600_000, 7_200_000, [1]],
        ],
      ]);
    });

    it('upserts replace, null deletes, offsets commit with tiles', async () => {
      await store.commit({
        tiles: [
          { groupBy: 'g3', key: 'a', level: 1, start: 1, bytes: bytes(1) },
          { groupBy: 'g3', key: 'a', level: 1, start: 2, bytes: bytes(2) },
        ],
        offsets: { 'stream/s/0': '10' },
      });
      await store.commit({
        tiles: [
          { groupBy: 'g3', key: 'a', level: 1, start: 1, bytes: null },
          { groupBy: 'g3', key: 'a', level: 1, start: 2, bytes: bytes(9, 9) },
          { groupBy: 'g3', key: 'b', level: 1, start: 2, bytes: null },
        ],
        offsets: { 'stream/s/0': '20', 'upload/g3': '1000' },
      });
      const [a] = await store.readTiles([{ groupBy: 'g3', key: 'a' }]);
      expect(plain(a)).toEqual([[1, 2, [9, 9]]]);
      expect(await store.readOffsets(['stream/s/0', 'nope'])).toEqual({ 'stream/s/0': '20' });
      expect(await store.readOffsets()).toMatchObject({ 'stream/s/0': '20', 'upload/g3': '1000' });
    });

    it('returned bytes stay valid after later reads and writes', async () => {
      const writes: TileWrite[] = [];
      for (let i = 0; i < 200; i++)
        writes.push({ groupBy: 'g4', key: `k${i}`, level: 1, start: i, bytes: bytes(i % 256, 7) });
      await store.commit({ tiles: writes });
      const first = await store.readTiles(writes.map((w) => ({ groupBy: w.groupBy, key: w.key })));
      await store.readTiles(writes.map((w) => ({ groupBy: w.groupBy, key: w.key })));
      await store.commit({ tiles: writes.map((w) => ({ ...w, bytes: bytes(0, 0, 0) })) });
      first.forEach((tiles, i) => expect([...tiles[0].bytes]).toEqual([i % 256, 7]));
    });

    it('event runs: appends concatenate, come after the tiles, commit atomically and report their size', async () => {
      const r1 = await store.commit({
        tiles: [{ groupBy: 'g6', key: 'k', level: 1, start: 5, bytes: bytes(9) }],
        runs: [
          { groupBy: 'g6', key: 'k', bytes: bytes(1, 2) },
          { groupBy: 'g6', key: 'only-run', bytes: bytes(3) },
        ],
        offsets: { 'stream/r/0': '1' },
      });
      expect(r1.runBytes).toEqual([2, 1]);
      const r2 = await store.commit({
        tiles: [],
        runs: [{ groupBy: 'g6', key: 'k', bytes: bytes(4, 5, 6) }],
      });
      expect(r2.runBytes).toEqual([5]);
      const [k, onlyRun, none] = await store.readTiles([
        { groupBy: 'g6', key: 'k' },
        { groupBy: 'g6', key: 'only-run' },
        { groupBy: 'g6', key: 'none' },
      ]);
      expect(plain(k)).toEqual([
        [1, 5, [9]],
        [EVENT_RUN_LEVEL, 0, [1, 2, 4, 5, 6]],
      ]);
      expect(plain(onlyRun)).toEqual([[EVENT_RUN_LEVEL, 0, [3]]]);
      expect(none).toEqual([]);
      const s = await store.stats();
      expect(s.byGroupBy.g6).toEqual({ entities: 2, tiles: 1, bytes: 1 + 5 + 1 });
      // A roll-up deletes the run in the same commit as the tiles it wrote.
      const r3 = await store.commit({
        tiles: [{ groupBy: 'g6', key: 'k', level: 1, start: 6, bytes: bytes(7) }],
        runs: [{ groupBy: 'g6', key: 'k', bytes: null }],
      });
      expect(r3.runBytes).toEqual([0]);
      const [after] = await store.readTiles([{ groupBy: 'g6', key: 'k' }]);
      expect(plain(after)).toEqual([
        [1, 5, [9]],
        [1, 6, [7]],
      ]);
      expect(await store.readOffsets(['stream/r/0'])).toEqual({ 'stream/r/0': '1' });
    });

    it('a commit of thousands of entities applies whole (Redis: more than one script), fenced or not', async () => {
      // All in store partition 1 of 4 with the offset, as a stream worker of log partition 1 commits.
      const keys = Array.from({ length: 4 * (CHUNK_ENTITIES + 600) }, (_, i) => `big${i}`).filter(
        (k) => partitionOf(k, 4) === 1,
      );
      expect(keys.length).toBeGreaterThan(CHUNK_ENTITIES);
      const commit = (round: number, expect: string | null) =>
        store.commit({
          tiles: keys
            .filter((_, i) => i % 2 === 0)
            .map((key) => ({ groupBy: 'g7', key, level: 1, start: 0, bytes: bytes(round) })),
          runs: keys.map((key) => ({ groupBy: 'g7', key, bytes: bytes(round, round) })),
          expect: { 'stream/big/1': expect },
          offsets: { 'stream/big/1': String(round) },
        });
      const first = await commit(1, null);
      expect(first.runBytes).toEqual(keys.map(() => 2));
      await expect(commit(2, '0')).rejects.toThrow(/^fenced:/);
      const second = await commit(2, '1');
      expect(second.runBytes).toEqual(keys.map(() => 4));
      const read = await store.readTiles(keys.map((key) => ({ groupBy: 'g7', key })));
      read.forEach((tiles, i) =>
        expect(plain(tiles)).toEqual([
          ...(i % 2 === 0 ? [[1, 0, [2]]] : []),
          [EVENT_RUN_LEVEL, 0, [1, 1, 2, 2]],
        ]),
      );
      expect(await store.readOffsets(['stream/big/1'])).toEqual({ 'stream/big/1': '2' });
      // Unfenced, spanning partitions (bulk upload): every entity, then the offset.
      const spread = Array.from({ length: CHUNK_ENTITIES + 500 }, (_, i) => `up${i}`);
      await store.commit({
        tiles: spread.map((key) => ({ groupBy: 'g8', key, level: 1, start: 0, bytes: bytes(3) })),
        offsets: { 'upload/g8': '9' },
      });
      const up = await store.readTiles(spread.map((key) => ({ groupBy: 'g8', key })));
      expect(up.map(plain)).toEqual(spread.map(() => [[1, 0, [3]]]));
      expect(await store.readOffsets(['upload/g8'])).toEqual({ 'upload/g8': '9' });
    });

    it('stats counts entities, tiles and bytes per groupBy', async () => {
      await store.commit({
        tiles: [
          { groupBy: 'g5', key: 'x', level: 1, start: 1, bytes: bytes(1, 2, 3) },
          { groupBy: 'g5', key: 'x', level: 2, start: 0, bytes: bytes(1) },
          { groupBy: 'g5', key: 'y', level: 1, start: 1, bytes: bytes(1, 2) },
        ],
      });
      const s = await store.stats();
      expect(s.byGroupBy.g5).toEqual({ entities: 2, tiles: 3, bytes: 6 });
      expect(s.tiles).toBeGreaterThanOrEqual(3);
    });
  });
}
