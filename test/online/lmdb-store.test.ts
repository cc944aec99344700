/** LMDB-specific store behaviour: the on-disk format check, the zero-copy read, atomic and fenced commits. */
import { open } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { sortByBytes } from '../../src/online/lmdb-store.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore, StoredTile, TileRequest, TileWrite } from '../../src/online/store.ts';
import type { TileColumns } from '../../src/online/tile-pack.ts';
import { rng, tempDir } from './fixtures.ts';

const dirs: { remove(): void }[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));
function storeDir(): string {
  const d = tempDir('tessera-lmdb-');
  dirs.push(d);
  return d.path;
}

const plain = (tiles: readonly StoredTile[]) => tiles.map((t) => [t.level, t.start, [...t.bytes]]);
const columnsPlain = (c: TileColumns) =>
  Array.from({ length: c.length }, (_, i) => [c.level[i], c.start[i], [...c.bytes(i)]]);

describe('LMDB store format', () => {
  it('stamps a new store, reopens it, and refuses stores in another layout naming the fix', async () => {
    const path = storeDir();
    const store = openStore({ kind: 'lmdb', path });
    await store.commit({ tiles: [{ groupBy: 'g', key: 'k', level: 1, start: 5, bytes: Uint8Array.of(7) }] });
    await store.close();
    const again = openStore({ kind: 'lmdb', path });
    expect(plain((await again.readTiles([{ groupBy: 'g', key: 'k' }]))[0]!)).toEqual([[1, 5, [7]]]);
    await again.close();

    // A format-1 store: a `tiles` database with ordered-binary array keys and no format stamp.
    const old = storeDir();
    const env = open({ path: old, maxDbs: 8 });
    await env.openDB('tiles', { encoding: 'binary' }).put(['g', 'k'], Buffer.from([0, 0, 0, 0]));
    await env.close();
    expect(() => openStore({ kind: 'lmdb', path: old })).toThrow(
      /layout format 1, but this version of tessera reads format 2\. Delete the store directory .* re-run tessera upload/,
    );

    // A store stamped by a later version.
    const newer = storeDir();
    const env2 = open({ path: newer, maxDbs: 8 });
    env2.openDB('meta', { encoding: 'string' }).putSync('format', '3');
    await env2.close();
    expect(() => openStore({ kind: 'lmdb', path: newer })).toThrow(/layout format 3/);
  });

  it('names the limit when an entity key is too long for LMDB', async () => {
    const store = openStore({ kind: 'lmdb', path: storeDir() });
    const key = 'k'.repeat(1000) + 'é'.repeat(500);
    await expect(
      store.commit({ tiles: [{ groupBy: 'g', key, level: 1, start: 0, bytes: Uint8Array.of(1) }] }),
    ).rejects.toThrow(/bytes, more than the LMDB store's 1978; use shorter key values/);
    // A long key that fits works, multi-byte characters included.
    const fits = 'é'.repeat(600);
    await store.commit({ tiles: [{ groupBy: 'g', key: fits, level: 1, start: 0, bytes: Uint8Array.of(2) }] });
    expect(plain((await store.readTiles([{ groupBy: 'g', key: fits }]))[0]!)).toEqual([[1, 0, [2]]]);
    await store.close();
  });

  it('names the key too long in a run write, and applies nothing of that commit', async () => {
    const store = openStore({ kind: 'lmdb', path: storeDir() });
    const key = 'r'.repeat(2000);
    await expect(
      store.commit({
        tiles: [{ groupBy: 'g', key: 'ok', level: 1, start: 0, bytes: Uint8Array.of(1) }],
        runs: [
          { groupBy: 'g', key: 'fine', bytes: Uint8Array.of(2) },
          { groupBy: 'g', key, bytes: Uint8Array.of(3) },
        ],
        offsets: { o: '1' },
      }),
    ).rejects.toThrow(/entity key 'r{40}…' with its store id is 2002 bytes, more than the LMDB store's 1978/);
    const read = await store.readTiles([
      { groupBy: 'g', key: 'ok' },
      { groupBy: 'g', key: 'fine' },
    ]);
    expect(read).toEqual([[], []]);
    expect(await store.readOffsets()).toEqual({});
    await store.close();
  });

  it('keys entities by the UTF-8 bytes of key, U+0000, group-by, up to exactly the byte limit', async () => {
    const path = storeDir();
    const store = openStore({ kind: 'lmdb', path });
    const limit = 1978;
    // ASCII and multi-byte keys (group-bys too), each at the limit (2-byte 'é', 3-byte '€'), and a lone surrogate.
    const entities = [
      ['g', 'k1'],
      ['g', 'k\u0000x'],
      ['ä', 'ü€'],
      ['g', 'a'.repeat(limit - 2)],
      ['g', 'é'.repeat((limit - 2) / 2)],
      ['€', 'b'.repeat(limit - 4)],
      ['g', '\ud800z'],
    ] as const;
    const tiles = entities.map(([groupBy, key], i) => ({
      groupBy,
      key,
      level: 1,
      start: 0,
      bytes: Uint8Array.of(i),
    }));
    await store.commit({ tiles });
    // One byte over the limit, on the ASCII and on the multi-byte path: refused, and read as absent.
    for (const [groupBy, key] of [
      ['g', 'a'.repeat(limit - 1)],
      ['g', 'é'.repeat((limit - 2) / 2) + 'a'],
      ['€', 'b'.repeat(limit - 3)],
    ] as const) {
      await expect(
        store.commit({ tiles: [{ groupBy, key, level: 1, start: 0, bytes: Uint8Array.of(9) }] }),
      ).rejects.toThrow(`with its store id is ${limit + 1} bytes, more than the LMDB store's ${limit}`);
      expect(await store.readTiles([{ groupBy, key }])).toEqual([[]]);
    }
    const read = await store.readTiles(entities.map(([groupBy, key]) => ({ groupBy, key })));
    expect(read.map((t) => plain(t))).toEqual(entities.map((_, i) => [[1, 0, [i]]]));
    await store.close();

    const env = open({ path, maxDbs: 8 });
    const raw = env.openDB('entities', { encoding: 'binary', keyEncoding: 'binary' });
    const stored = [...raw.getKeys()].map((k) => Buffer.from(k as Uint8Array).toString('hex')).sort();
    const want = entities.map(([g, k]) => Buffer.from(`${k}\u0000${g}`).toString('hex')).sort();
    expect(stored).toEqual(want);
    await env.close();
  });
});

describe('LMDB readEntities (zero-copy read)', () => {
  it('visits exactly what readTiles returns and what a naive model holds, over random commits', async () => {
    const r = rng(11);
    const store = openStore({ kind: 'lmdb', path: storeDir() }) as OnlineStore &
      Required<Pick<OnlineStore, 'readEntities'>>;
    // The naive model: per entity, tiles by address and the run's bytes.
    const model = new Map<string, { tiles: Map<string, StoredTile>; run: number[] }>();
    const groupBys = ['g1', 'g2', 'a\u001fb'];
    const keys = ['k1', 'k2', 'ü', '', 'k\u0000x', 'long'.repeat(20)];
    const levels = [-1, 0, 1, 60_000, 3_600_000];
    const entity = (g: string, k: string) => {
      const id = JSON.stringify([g, k]);
      let e = model.get(id);
      if (e === undefined) model.set(id, (e = { tiles: new Map(), run: [] }));
      return e;
    };
    const bytes = () => Uint8Array.from({ length: Math.floor(r() * 5) }, () => Math.floor(r() * 256));
    const pick = <T>(list: readonly T[]) => list[Math.floor(r() * list.length)]!;
    for (let round = 0; round < 60; round++) {
      const tiles: TileWrite[] = [];
      for (let n = Math.floor(r() * 8); n > 0; n--) {
        const groupBy = pick(groupBys);
        const key = pick(keys);
        const level = pick(levels);
        const start = level <= 0 ? 0 : level * Math.floor(r() * 4);
        const write = r() < 0.25 ? null : bytes();
        tiles.push({ groupBy, key, level, start, bytes: write });
        const e = entity(groupBy, key);
        if (write === null) e.tiles.delete(`${level}:${start}`);
        else e.tiles.set(`${level}:${start}`, { level, start, bytes: write });
      }
      const runs: { groupBy: string; key: string; bytes: Uint8Array | null }[] = [];
      const runEntities = new Set<string>();
      for (let n = Math.floor(r() * 3); n > 0; n--) {
        const groupBy = pick(groupBys);
        const key = pick(keys);
        if (runEntities.has(JSON.stringify([groupBy, key]))) continue; // at most one run write per entity
        runEntities.add(JSON.stringify([groupBy, key]));
        const append = r() < 0.3 ? null : Uint8Array.from({ length: 1 + Math.floor(r() * 4) }, () => 3);
        runs.push({ groupBy, key, bytes: append });
        const e = entity(groupBy, key);
        e.run = append === null ? [] : [...e.run, ...append];
      }
      const result = await store.commit({ tiles, runs });
      runs.forEach((w, i) => expect(result.runBytes[i]).toBe(entity(w.groupBy, w.key).run.length));

      const requests: TileRequest[] = Array.from({ length: 1 + Math.floor(r() * 12) }, () => ({
        groupBy: pick(groupBys),
        key: pick(keys),
      }));
      const viaTiles = (await store.readTiles(requests)).map(plain);
      const visited: unknown[] = new Array(requests.length);
      await store.readEntities(requests, (i, columns) => (visited[i] = columnsPlain(columns)));
      expect(visited).toEqual(viaTiles);
      const want = requests.map(({ groupBy, key }) => {
        const e = entity(groupBy, key);
        const list = [...e.tiles.values()].sort((a, b) => a.level - b.level || a.start - b.start);
        const out = plain(list);
        if (e.run.length > 0) out.push([EVENT_RUN_LEVEL, 0, e.run]);
        return out;
      });
      expect(viaTiles).toEqual(want);
    }
    await store.close();
  });
});

describe('LMDB commit order (sortByBytes)', () => {
  it("sorts byte strings like Buffer.compare (LMDB's key order), shared prefixes, duplicates and empty ones included", () => {
    const r = rng(5);
    for (let round = 0; round < 40; round++) {
      // Few distinct bytes and long shared prefixes (like 'card_000…' ids), so every path of the sort runs.
      const alphabet = [0, 1, 0x30, 0x31, 0x5f, 0x7f, 0x80, 0xff].slice(0, 1 + Math.floor(r() * 8));
      const prefix = Buffer.from('card_000'.slice(0, Math.floor(r() * 9)));
      const n = Math.floor(r() * (round % 4 === 0 ? 3000 : 120));
      const keys = Array.from({ length: n }, () =>
        Buffer.concat([
          r() < 0.8 ? prefix : Buffer.alloc(0),
          Uint8Array.from(
            { length: Math.floor(r() * 12) },
            () => alphabet[Math.floor(r() * alphabet.length)]!,
          ),
        ]),
      );
      const bytes = Buffer.concat(keys);
      const from = new Int32Array(n + 1);
      keys.forEach((k, i) => (from[i + 1] = from[i]! + k.length));
      const order = Int32Array.from({ length: n }, (_, i) => i);
      sortByBytes(bytes, from, order, new Int32Array(n), 0, n, 0, []);
      expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      const got = [...order].map((i) => keys[i]!.toString('hex'));
      const want = [...keys].sort(Buffer.compare).map((k) => k.toString('hex'));
      expect(got).toEqual(want);
    }
  });

  it('commits thousands of entities at once (buffers grow) with the right values and run lengths', async () => {
    const store = openStore({ kind: 'lmdb', path: storeDir() });
    const model = new Map<string, { tile: number | null; run: number[] }>();
    const r = rng(3);
    for (let round = 0; round < 2; round++) {
      const tiles: TileWrite[] = [];
      const runs: { groupBy: string; key: string; bytes: Uint8Array | null }[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < 6000; i++) {
        const groupBy = `g${i % 3}`;
        const key = `entity_${String(Math.floor(r() * 5000)).padStart(6, '0')}_${'x'.repeat(i % 40)}`;
        const id = `${key}\u0000${groupBy}`;
        if (seen.has(id)) continue; // at most one run write per entity
        seen.add(id);
        const e = model.get(id) ?? { tile: null, run: [] };
        model.set(id, e);
        if (i % 7 === 0) {
          tiles.push({ groupBy, key, level: 1, start: 0, bytes: Uint8Array.of(round + 1) });
          e.tile = round + 1;
        }
        const append = Uint8Array.of(i & 0xff, round);
        runs.push({ groupBy, key, bytes: append });
        e.run.push(...append);
      }
      const result = await store.commit({ tiles, runs });
      runs.forEach((w, i) =>
        expect(result.runBytes[i]).toBe(model.get(`${w.key}\u0000${w.groupBy}`)!.run.length),
      );
    }
    const ids = [...model.keys()];
    const read = await store.readTiles(
      ids.map((id) => ({ key: id.split('\u0000')[0]!, groupBy: id.split('\u0000')[1]! })),
    );
    ids.forEach((id, i) => {
      const e = model.get(id)!;
      const want: unknown[] = e.tile === null ? [] : [[1, 0, [e.tile]]];
      want.push([EVENT_RUN_LEVEL, 0, e.run]);
      expect(plain(read[i]!)).toEqual(want);
    });
    await store.close();
  });
});

describe('LMDB commits', () => {
  it('are atomic: a fenced commit applies nothing, and `expect` null means absent', async () => {
    const store = openStore({ kind: 'lmdb', path: storeDir() });
    const tile = (b: number): TileWrite => ({
      groupBy: 'g',
      key: 'k',
      level: 1,
      start: 0,
      bytes: Uint8Array.of(b),
    });
    await store.commit({ tiles: [tile(1)], offsets: { 'stream/s/0': '10' }, expect: { 'stream/s/0': null } });
    await expect(
      store.commit({
        tiles: [tile(2), { ...tile(3), key: 'other' }],
        runs: [{ groupBy: 'g', key: 'k', bytes: Uint8Array.of(9) }],
        offsets: { 'stream/s/0': '20' },
        expect: { 'stream/s/0': '5' },
      }),
    ).rejects.toThrow(/^fenced: offset 'stream\/s\/0' is '10' in the store, this writer expected '5'/);
    await expect(store.commit({ tiles: [], expect: { 'stream/s/1': '1' } })).rejects.toThrow(
      /^fenced: offset 'stream\/s\/1' is absent in the store/,
    );
    const [k, other] = await store.readTiles([
      { groupBy: 'g', key: 'k' },
      { groupBy: 'g', key: 'other' },
    ]);
    expect(plain(k!)).toEqual([[1, 0, [1]]]);
    expect(other).toEqual([]);
    expect(await store.readOffsets()).toEqual({ 'stream/s/0': '10' });
    await store.commit({ tiles: [tile(4)], offsets: { 'stream/s/0': '20' }, expect: { 'stream/s/0': '10' } });
    expect(plain((await store.readTiles([{ groupBy: 'g', key: 'k' }]))[0]!)).toEqual([[1, 0, [4]]]);
    await store.close();
  });

  it('are atomic when a value turns out corrupt midway: nothing of the commit is applied', async () => {
    const path = storeDir();
    const store = openStore({ kind: 'lmdb', path });
    await store.commit({ tiles: [{ groupBy: 'g', key: 'a', level: 1, start: 0, bytes: Uint8Array.of(1) }] });
    await store.close();
    // Entity (g, bad): a value whose one tile claims more bytes than it holds. Keys are `key \0 groupBy`.
    const env = open({ path, maxDbs: 8 });
    const raw = env.openDB('entities', { encoding: 'binary', keyEncoding: 'binary' });
    const corrupt = Buffer.alloc(24);
    corrupt.writeUInt32LE(1, 0);
    corrupt.writeUInt32LE(99, 20);
    await raw.put(Buffer.from('bad\u0000g'), corrupt);
    await env.close();
    const reopened = openStore({ kind: 'lmdb', path });
    await expect(
      reopened.commit({
        tiles: [
          { groupBy: 'g', key: 'a', level: 1, start: 0, bytes: Uint8Array.of(2) },
          { groupBy: 'g', key: 'bad', level: 1, start: 0, bytes: Uint8Array.of(3) },
        ],
        offsets: { o: '1' },
      }),
    ).rejects.toThrow(/packed tiles are corrupt.*re-upload/);
    expect(plain((await reopened.readTiles([{ groupBy: 'g', key: 'a' }]))[0]!)).toEqual([[1, 0, [1]]]);
    expect(await reopened.readOffsets()).toEqual({});
    await reopened.close();
  });
});
