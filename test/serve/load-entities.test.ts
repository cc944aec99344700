import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore, StoredTile } from '../../src/online/store.ts';
import { startRedis } from '../support/servers.ts';

// OnlineStore.loadEntities: the bulk path bench:serve preloads with (see bench/serve.ts).
const redis = await startRedis();
const dir = mkdtempSync(join(tmpdir(), 'tessera-load-'));
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const backends: [string, (() => OnlineStore) | null][] = [
  ['lmdb', () => openStore({ kind: 'lmdb', path: dir })],
  ['redis', redis ? () => openStore({ kind: 'redis', url: redis.url, prefix: 'load:' }) : null],
];
const tile = (level: number, start: number, ...b: number[]): StoredTile => ({
  level,
  start,
  bytes: Uint8Array.from(b),
});
const plain = (tiles: StoredTile[]) => tiles.map((t) => [t.level, t.start, [...t.bytes]]);

for (const [name, make] of backends) {
  describe.skipIf(!make)(`${name} loadEntities`, () => {
    it('sets whole entities (shared tile lists included), replacing tiles and dropping runs', async () => {
      const store = make!();
      try {
        const shared = [tile(-1, 0, 0, 0, 0, 0, 0, 0, 240, 63), tile(1000, 2000, 7), tile(60_000, 0, 8, 9)];
        await store.commit({
          tiles: [{ groupBy: 'g', key: 'a', level: 5, start: 10, bytes: Uint8Array.from([1]) }],
          runs: [{ groupBy: 'g', key: 'a', bytes: Uint8Array.from([3, 1, 0]) }],
        });
        const before = await store.readTiles([{ groupBy: 'g', key: 'a' }]);
        expect(before[0]!.at(-1)!.level).toBe(EVENT_RUN_LEVEL);
        await store.loadEntities!([
          { groupBy: 'g', key: 'a', tiles: shared },
          { groupBy: 'g', key: 'b', tiles: shared },
          { groupBy: 'h', key: 'a', tiles: [tile(1, 5, 4)] },
        ]);
        const [a, b, h, none] = await store.readTiles([
          { groupBy: 'g', key: 'a' },
          { groupBy: 'g', key: 'b' },
          { groupBy: 'h', key: 'a' },
          { groupBy: 'h', key: 'b' },
        ]);
        expect(plain(a!)).toEqual(plain(shared));
        expect(plain(b!)).toEqual(plain(shared));
        expect(plain(h!)).toEqual([[1, 5, [4]]]);
        expect(none).toEqual([]);
      } finally {
        await store.close();
      }
    });
  });
}
