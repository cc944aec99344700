import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { openStore } from '../../src/online/open-store.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import {
  CHUNK_ENTITIES,
  DEFAULT_COMMAND_TIMEOUT_MS,
  openRedisStore,
  partitionTags,
  TIMEOUT_ENV,
} from '../../src/online/redis-store.ts';
import type { OnlineStore, RunWrite, StoredTile, TileWrite } from '../../src/online/store.ts';
import { freePort, startRedis } from '../support/servers.ts';
import { rng } from '../support/rng.ts';

// Redis-specific store behaviour (layout 3: one string per entity, Lua commit) on a single Redis; the shared
// contract is in store-contract.test.ts, Redis Cluster in redis-cluster.test.ts.
const redis = await startRedis();
let raw: Redis;
let prefixes = 0;
const open = (prefix = `rs${prefixes++}:`) => openStore({ kind: 'redis', url: redis!.url, prefix });
beforeAll(() => {
  if (redis) raw = new Redis(redis.url);
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

const plain = (tiles: StoredTile[]) => tiles.map((t) => [t.level, t.start, [...t.bytes]]);

describe.skipIf(!redis)('redis store (layout 3)', () => {
  let store: OnlineStore;
  beforeAll(() => {
    store = open();
  });
  afterAll(() => store.close());

  it('random commits match a naive model (tile merge, deletes, run appends in order, roll-ups, emptied entities)', async () => {
    const r = rng(11);
    // model: entity → address → bytes, and entity → run bytes.
    const tiles = new Map<string, Map<string, number[]>>();
    const runs = new Map<string, number[]>();
    const entities = ['a', 'b', 'c', 'd'].map((key) => ({ groupBy: 'g', key }));
    const levels = [-1, 1, 60_000, 3_600_000, 0];
    for (let step = 0; step < 300; step++) {
      const writes: TileWrite[] = [];
      const runWrites: RunWrite[] = [];
      const expected: number[] = [];
      for (const e of entities) {
        const roll = r();
        if (roll < 0.5) {
          const n = 1 + Math.floor(r() * 4);
          for (let i = 0; i < n; i++) {
            const level = levels[Math.floor(r() * levels.length)];
            const start = level <= 0 ? 0 : Math.floor(r() * 5) * Math.max(level, 1) - 2 * level;
            const bytes =
              r() < 0.3 ? null : Uint8Array.from({ length: Math.floor(r() * 5) }, () => step % 256);
            writes.push({ ...e, level, start, bytes });
            const m = tiles.get(e.key) ?? new Map<string, number[]>();
            tiles.set(e.key, m);
            if (bytes === null) m.delete(`${level}:${start}`);
            else m.set(`${level}:${start}`, [...bytes]);
          }
        }
        // Up to two run writes per entity and commit, applied in order (group-bys sharing a store id).
        for (let w = 0; w < 2; w++) {
          const op = r();
          if (op < 0.3) {
            const bytes = Uint8Array.from({ length: 1 + Math.floor(r() * 3) }, (_, i) => (step + i) % 256);
            runWrites.push({ ...e, bytes });
            runs.set(e.key, [...(runs.get(e.key) ?? []), ...bytes]);
            expected.push(runs.get(e.key)!.length);
          } else if (op < 0.4) {
            runWrites.push({ ...e, bytes: null });
            runs.delete(e.key);
            expected.push(0);
          } else break;
        }
      }
      const res = await store.commit({ tiles: writes, runs: runWrites });
      expect(res.runBytes).toEqual(expected);
      const read = await store.readTiles(entities);
      // readEntities (the fetch path) visits the same entries as columns.
      const visited: StoredTile[][] = [];
      await store.readEntities!(entities, (i, c) => {
        visited[i] = Array.from({ length: c.length }, (_, j) => ({
          level: c.level[j],
          start: c.start[j],
          bytes: Uint8Array.from(c.bytes(j)),
        }));
      });
      expect(visited.map(plain)).toEqual(read.map(plain));
      entities.forEach((e, i) => {
        const model = [...(tiles.get(e.key) ?? new Map<string, number[]>())]
          .map(([addr, b]) => [...addr.split(':').map(Number), b] as [number, number, number[]])
          .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        const run = runs.get(e.key);
        if (run && run.length > 0) model.push([EVENT_RUN_LEVEL, 0, run]);
        expect(plain(read[i])).toEqual(model);
      });
    }
    // Emptied entities leave no key behind.
    for (const e of entities) {
      await store.commit({
        tiles: [...(tiles.get(e.key)?.keys() ?? [])].map((addr) => {
          const [level, start] = addr.split(':').map(Number);
          return { ...e, level, start, bytes: null };
        }),
        runs: [{ ...e, bytes: null }],
      });
    }
    expect(await raw.keys(`rs0:e{*`)).toEqual([]);
  });

  it('fencing: a commit whose expectation fails applies nothing and throws fenced:', async () => {
    const t = (bytes: number) => ({
      groupBy: 'f',
      key: 'k',
      level: 1,
      start: 0,
      bytes: Uint8Array.of(bytes),
    });
    await store.commit({ tiles: [t(1)], expect: { 'stream/f/0': null }, offsets: { 'stream/f/0': '10' } });
    await expect(
      store.commit({
        tiles: [t(2)],
        runs: [{ groupBy: 'f', key: 'k', bytes: Uint8Array.of(9) }],
        offsets: { 'stream/f/0': '20' },
        expect: { 'stream/f/0': '5' },
      }),
    ).rejects.toThrow(/^fenced: offset 'stream\/f\/0' is '10' in the store but this writer expected '5'/);
    await expect(store.commit({ tiles: [t(3)], expect: { 'stream/f/0': null } })).rejects.toThrow(
      /^fenced: offset 'stream\/f\/0' is '10' in the store but this writer expected absent/,
    );
    await expect(store.commit({ tiles: [t(3)], expect: { 'stream/f/9': '1' } })).rejects.toThrow(
      /^fenced: offset 'stream\/f\/9' is absent in the store/,
    );
    expect(plain((await store.readTiles([{ groupBy: 'f', key: 'k' }]))[0])).toEqual([[1, 0, [1]]]);
    expect(await store.readOffsets(['stream/f/0'])).toEqual({ 'stream/f/0': '10' });
    await store.commit({ tiles: [t(4)], expect: { 'stream/f/0': '10' }, offsets: { 'stream/f/0': '11' } });
    expect(plain((await store.readTiles([{ groupBy: 'f', key: 'k' }]))[0])).toEqual([[1, 0, [4]]]);
    expect(await store.readOffsets(['stream/f/0'])).toEqual({ 'stream/f/0': '11' });
  });

  it('a reader never sees tiles and run from different commits', async () => {
    // Each commit adds one event: appended to the run, or (every 4th) rolled up into the tile, which then
    // holds the total, with the run deleted. tile total + run length must always equal a commit count that
    // never decreases.
    const e = { groupBy: 'at', key: 'x' };
    let stop = false;
    const writer = (async () => {
      let total = 0;
      for (let i = 1; i <= 400; i++) {
        if (i % 4 === 0) {
          total = i;
          const bytes = Buffer.alloc(4);
          bytes.writeUInt32LE(total);
          await store.commit({ tiles: [{ ...e, level: 1, start: 0, bytes }], runs: [{ ...e, bytes: null }] });
        } else await store.commit({ tiles: [], runs: [{ ...e, bytes: Uint8Array.of(i % 256) }] });
      }
      stop = true;
    })();
    let last = 0;
    let reads = 0;
    while (!stop) {
      const [list] = await store.readTiles([e, e]);
      const tile = list.find((t) => t.level === 1);
      const run = list.find((t) => t.level === EVENT_RUN_LEVEL);
      const seen = (tile ? Buffer.from(tile.bytes).readUInt32LE(0) : 0) + (run?.bytes.length ?? 0);
      expect(seen).toBeGreaterThanOrEqual(last);
      last = seen;
      reads++;
    }
    await writer;
    expect(reads).toBeGreaterThan(10);
    const [final] = await store.readTiles([e]);
    expect(Buffer.from(final[0].bytes).readUInt32LE(0)).toBe(400);
    expect(final).toHaveLength(1);
  });

  describe('commits bigger than one script (staged, applied chunk by chunk)', () => {
    // Entity i gets a tile write when i % 3 == 0 and a run append of i % 7 + 1 bytes, so the commit spans
    // a few chunks; the model is what one atomic commit would leave.
    const n = 2 * CHUNK_ENTITIES + 500;
    const keys = Array.from({ length: n }, (_, i) => `k${i}`);
    const batch = (round: number) => ({
      tiles: keys
        .filter((_, i) => i % 3 === 0)
        .map((key) => ({ groupBy: 'big', key, level: 1, start: 0, bytes: Uint8Array.of(round) })),
      runs: keys.map((key, i) => ({
        groupBy: 'big',
        key,
        bytes: Uint8Array.from({ length: (i % 7) + 1 }, () => round),
      })),
    });
    const check = async (s: OnlineStore, rounds: number) => {
      const read = await s.readTiles(keys.map((key) => ({ groupBy: 'big', key })));
      read.forEach((tiles, i) => {
        const model: [number, number, number[]][] = [];
        if (i % 3 === 0) model.push([1, 0, [rounds]]);
        const run = Array.from({ length: rounds }, (_, r) => Array((i % 7) + 1).fill(r + 1)).flat();
        model.push([EVENT_RUN_LEVEL, 0, run]);
        expect(plain(tiles)).toEqual(model);
      });
    };
    // Scripts run since the last `CONFIG RESETSTAT`.
    const scripts = async () => {
      const stats = await raw.info('commandstats');
      return [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    };

    it('fenced and unfenced: same result as one commit, runBytes, several scripts, no keys left', async () => {
      const s = open('big1:');
      try {
        await raw.config('RESETSTAT');
        const first = await s.commit({
          ...batch(1),
          expect: { 'stream/big/0': null },
          offsets: { 'stream/big/0': '1' },
        });
        expect(await scripts()).toBeGreaterThanOrEqual(4); // record, then >= 3 chunks
        expect(first.runBytes).toEqual(keys.map((_, i) => (i % 7) + 1));
        await raw.config('RESETSTAT');
        const second = await s.commit(batch(2)); // unfenced: chunk by chunk
        expect(await scripts()).toBeGreaterThanOrEqual(3);
        expect(second.runBytes).toEqual(keys.map((_, i) => 2 * ((i % 7) + 1)));
        await check(s, 2);
        expect(await s.readOffsets(['stream/big/0'])).toEqual({ 'stream/big/0': '1' });
        expect([...(await raw.keys('big1:w{*')), ...(await raw.keys('big1:x{*'))]).toEqual([]);
        // A fenced staged commit applies nothing and leaves no staging behind.
        await expect(
          s.commit({ ...batch(3), expect: { 'stream/big/0': '0' }, offsets: { 'stream/big/0': '2' } }),
        ).rejects.toThrow(/^fenced:/);
        await check(s, 2);
        expect(await raw.keys('big1:x{*')).toEqual([]);
      } finally {
        await s.close();
      }
    });

    it('a recorded commit whose writer failed while applying it is finished exactly once by the next reader of its offset', async () => {
      const s = open('big2:');
      const corrupt = `big2:e{${partitionTags(1)[0]}}big:${keys[0]}`;
      try {
        await s.commit({ ...batch(1), expect: { 'stream/big/0': null }, offsets: { 'stream/big/0': '1' } });
        // A corrupt value in the first chunk stops the apply after the commit was recorded.
        const saved = await raw.getBuffer(corrupt);
        await raw.set(corrupt, 'x');
        await expect(
          s.commit({ ...batch(2), expect: { 'stream/big/0': '1' }, offsets: { 'stream/big/0': '2' } }),
        ).rejects.toThrow(/recorded, then applying chunk 1 of [3-9] .*is corrupt/);
        expect(await raw.hget(`big2:w{${partitionTags(1)[0]}}stream/big/0`, 'next')).toBe('1');
        // Until applied, a commit of that writer refuses (it was computed without the rest).
        await raw.set(corrupt, saved!);
        const others = [open('big2:'), open('big2:')];
        try {
          await Promise.all(others.map((o) => o.readOffsets())); // opened (no names: finishes nothing)
          // Writers racing to finish it apply each chunk once (runs would be doubled otherwise).
          const read = await Promise.all([...others, s].map((o) => o.readOffsets(['stream/big/0'])));
          expect(read).toEqual(read.map(() => ({ 'stream/big/0': '2' })));
          await check(s, 2);
          expect(await raw.keys('big2:w{*')).toEqual([]);
          await expect(
            s.commit({ ...batch(3), expect: { 'stream/big/0': '1' }, offsets: { 'stream/big/0': '3' } }),
          ).rejects.toThrow(/^fenced:/);
        } finally {
          await Promise.all(others.map((o) => o.close()));
        }
      } finally {
        await s.close();
      }
    });

    it('a commit of a writer whose earlier commit is not fully applied finishes it and refuses', async () => {
      const s = open('big3:');
      const corrupt = `big3:e{${partitionTags(1)[0]}}big:${keys[n - 1]}`;
      try {
        await s.commit({ ...batch(1), expect: { 'stream/big/0': null }, offsets: { 'stream/big/0': '1' } });
        const saved = await raw.getBuffer(corrupt);
        await raw.set(corrupt, 'x');
        await expect(
          s.commit({ ...batch(2), expect: { 'stream/big/0': '1' }, offsets: { 'stream/big/0': '2' } }),
        ).rejects.toThrow(/recorded, then applying/);
        await raw.set(corrupt, saved!);
        const small = { tiles: [], runs: [{ groupBy: 'big', key: 'k0', bytes: Uint8Array.of(9) }] };
        await expect(
          s.commit({ ...small, expect: { 'stream/big/0': '2' }, offsets: { 'stream/big/0': '3' } }),
        ).rejects.toThrow(/recorded but not fully applied.*redo it from the stored offset/);
        await check(s, 2);
        expect(await raw.keys('big3:w{*')).toEqual([]);
      } finally {
        await s.close();
      }
    });
  });

  it('refuses a prefix holding the older hash-per-entity layout, naming the fix', async () => {
    await raw.hset('old1:t:{g:k}', '1:0', 'x');
    const old = open('old1:');
    try {
      await expect(old.readTiles([{ groupBy: 'g', key: 'k' }])).rejects.toThrow(
        /prefix 'old1:': holds store layout 1 .*reads layout 3.*delete keys 'old1:t:\{\*', 'old1:r:\{\*', 'old1:offsets', 'old1:format'.*re-run tessera upload/,
      );
      await expect(old.commit({ tiles: [], offsets: { a: '1' } })).rejects.toThrow(/layout 1/);
    } finally {
      await old.close();
    }
    await raw.hset('old2:offsets', 'stream/s/0', '5');
    const old2 = open('old2:');
    try {
      await expect(old2.stats()).rejects.toThrow(/prefix 'old2:': holds store layout 1/);
    } finally {
      await old2.close();
    }
    await raw.set('old3:format', '7');
    const other = open('old3:');
    try {
      await expect(other.readTiles([{ groupBy: 'g', key: 'k' }])).rejects.toThrow(/layout 7 \(unknown/);
    } finally {
      await other.close();
    }
    await raw.set('old4:format', '2');
    const two = open('old4:');
    try {
      await expect(two.readOffsets()).rejects.toThrow(
        /holds store layout 2 \(one string per entity, hash-tagged by entity\).*delete keys 'old4:e:\{\*', 'old4:offsets', 'old4:format'/,
      );
    } finally {
      await two.close();
    }
    expect(await raw.get('old1:format')).toBeNull();
  });

  it('a fresh prefix records its layout; a corrupt value is an error naming the key', async () => {
    const fresh = open('fresh:');
    try {
      expect(await fresh.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([[]]);
      expect(await raw.get('fresh:format')).toBeNull();
      await fresh.commit({ tiles: [] });
      expect(await raw.get('fresh:format')).toBe('3;partitions=1');
      await raw.set(`fresh:e{${partitionTags(1)[0]}}g:bad`, Buffer.from([200, 0, 0, 0, 1]));
      await expect(fresh.readTiles([{ groupBy: 'g', key: 'bad' }])).rejects.toThrow(
        /fresh:e\{\w+\}g:bad is corrupt/,
      );
      await expect(fresh.readEntities!([{ groupBy: 'g', key: 'bad' }], () => {})).rejects.toThrow(
        /fresh:e\{\w+\}g:bad is corrupt/,
      );
      await expect(
        fresh.commit({ tiles: [{ groupBy: 'g', key: 'bad', level: 1, start: 0, bytes: Uint8Array.of(1) }] }),
      ).rejects.toThrow(/failed: ERR entity value fresh:e\{\w+\}g:bad is corrupt.*re-upload its group-by\.$/);
    } finally {
      await fresh.close();
    }
  });

  it('keys entities and offsets by store partition; writers need a multiple of it, readers adopt it', async () => {
    const writer = openStore({ kind: 'redis', url: redis!.url, prefix: 'sp:', partitions: 4 });
    const tags = partitionTags(4);
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const tile = (key: string, b: number) => ({
      groupBy: 'g',
      key,
      level: 1,
      start: 0,
      bytes: Uint8Array.of(b),
    });
    try {
      // On a single Redis a fenced commit may span store partitions: still one script.
      await writer.commit({
        tiles: keys.map((k) => tile(k, 1)),
        expect: { 'stream/t/3': null },
        offsets: { 'stream/t/3': '7', 'upload/g': '9' },
      });
      await expect(
        writer.commit({ tiles: keys.map((k) => tile(k, 2)), expect: { 'stream/t/3': '6' } }),
      ).rejects.toThrow(/^fenced:/);
      expect(await raw.get('sp:format')).toBe('3;partitions=4');
      for (const k of keys) expect(await raw.exists(`sp:e{${tags[partitionOf(k, 4)]}}g:${k}`)).toBe(1);
      expect(new Set(keys.map((k) => partitionOf(k, 4))).size).toBeGreaterThan(1);
      expect(await raw.hget(`sp:o{${tags[3]}}`, 'stream/t/3')).toBe('7');
      expect(await raw.hget(`sp:o{${tags[partitionOf('upload/g', 4)]}}`, 'upload/g')).toBe('9');
    } finally {
      await writer.close();
    }
    const reader = open('sp:');
    const eight = openStore({ kind: 'redis', url: redis!.url, prefix: 'sp:', partitions: 8 });
    const two = openStore({ kind: 'redis', url: redis!.url, prefix: 'sp:', partitions: 2 });
    try {
      expect(
        (await reader.readTiles(keys.map((key) => ({ groupBy: 'g', key })))).map((t) => t[0].bytes[0]),
      ).toEqual(keys.map(() => 1));
      expect(await eight.readOffsets()).toEqual({ 'stream/t/3': '7', 'upload/g': '9' });
      expect(await two.readOffsets(['upload/g'])).toEqual({ 'upload/g': '9' });
      await expect(two.commit({ tiles: [], expect: { 'stream/t/1': null } })).rejects.toThrow(
        /prefix 'sp:': was created for 4 log partition\(s\).*this stream worker runs 2.*multiple of 4: run with --partitions 4, or rebuild the store for 2: delete keys 'sp:e\{\*', 'sp:o\{\*', 'sp:w\{\*', 'sp:p\{\*' and 'sp:format'/,
      );
    } finally {
      await Promise.all([reader.close(), eight.close(), two.close()]);
    }
    // Reads record nothing; on a single Redis a first write without a partition count records 1, which
    // every writer's count is a multiple of.
    const first = open('sp1:');
    expect(await first.readOffsets()).toEqual({});
    expect(await raw.get('sp1:format')).toBeNull();
    await first.commit({ tiles: [] });
    const later = openStore({ kind: 'redis', url: redis!.url, prefix: 'sp1:', partitions: 3 });
    try {
      await later.commit({
        tiles: [tile('x', 5)],
        expect: { 'stream/t/2': null },
        offsets: { 'stream/t/2': '1' },
      });
      expect(await raw.get('sp1:format')).toBe('3;partitions=1');
      expect((await first.readTiles([{ groupBy: 'g', key: 'x' }]))[0][0].bytes[0]).toBe(5);
    } finally {
      await Promise.all([first.close(), later.close()]);
    }
  });

  it('reads keys of any characters, in request order, across partitions and group-bys (the MGET is written as bytes)', async () => {
    // Non-ASCII prefix, group-by ids and keys (UTF-8 longer than the string, surrogate pairs), a key repeated
    // under several group-bys and twice in a row, missing keys: each value must land at its request.
    const writer = openStore({ kind: 'redis', url: redis!.url, prefix: 'ü8:', partitions: 4 });
    const reader = openStore({ kind: 'redis', url: redis!.url, prefix: 'ü8:' });
    const keys = ['a', 'café', '日本語', '🎉x', 'k'.repeat(300), '', 'b'];
    const groupBys = ['g', 'gé'];
    const byte = (g: number, k: number) => 1 + g * keys.length + k;
    try {
      await writer.commit({
        tiles: groupBys.flatMap((groupBy, g) =>
          keys.map((key, k) => ({ groupBy, key, level: 1, start: 0, bytes: Uint8Array.of(byte(g, k)) })),
        ),
      });
      expect(new Set(keys.map((k) => partitionOf(k, 4))).size).toBeGreaterThan(1);
      const requests = [
        ...keys.flatMap((key) => groupBys.map((groupBy) => ({ groupBy, key }))),
        { groupBy: 'g', key: 'café' },
        { groupBy: 'g', key: 'café' },
        { groupBy: 'g', key: 'missing' },
        { groupBy: 'other', key: 'a' },
        { groupBy: 'gé', key: '🎉x' },
      ];
      const expected = requests.map(({ groupBy, key }) =>
        groupBy === 'other' || key === 'missing' ? null : byte(groupBys.indexOf(groupBy), keys.indexOf(key)),
      );
      const tiles = await reader.readTiles(requests);
      expect(tiles.map((t) => (t.length === 0 ? null : t[0].bytes[0]))).toEqual(expected);
      const visited: (number | null)[] = [];
      await reader.readEntities!(requests, (i, columns) => {
        visited[i] = columns.length === 0 ? null : columns.bytes(0)[0];
      });
      expect(visited).toEqual(expected);
      const tags = partitionTags(4);
      for (const [i, { groupBy, key }] of requests.entries()) {
        const stored = await raw.getBuffer(`ü8:e{${tags[partitionOf(key, 4)]}}${groupBy}:${key}`);
        expect(stored === null ? null : stored[stored.length - 1]).toBe(expected[i]);
      }
    } finally {
      await Promise.all([writer.close(), reader.close()]);
    }
  });

  it('takes its reply timeout from the option, else TESSERA_REDIS_TIMEOUT_MS, else 2000 ms; refuses a bad one naming both', () => {
    const saved = process.env.TESSERA_REDIS_TIMEOUT_MS;
    try {
      process.env.TESSERA_REDIS_TIMEOUT_MS = '2s';
      expect(() => openRedisStore('redis://h:1', { commandTimeoutMs: 0 })).toThrow(
        'Redis store at redis://h:1 (commandTimeoutMs): the reply timeout must be a positive integer (ms), got 0; omit it (and TESSERA_REDIS_TIMEOUT_MS) for the default 2000',
      );
      expect(() => openRedisStore('redis://h:1')).toThrow(/got TESSERA_REDIS_TIMEOUT_MS=2s; omit it/);
    } finally {
      if (saved === undefined) delete process.env.TESSERA_REDIS_TIMEOUT_MS;
      else process.env.TESSERA_REDIS_TIMEOUT_MS = saved;
    }
    expect(DEFAULT_COMMAND_TIMEOUT_MS).toBe(2000);
    expect(TIMEOUT_ENV).toBe('TESSERA_REDIS_TIMEOUT_MS');
  });

  it('refuses a prefix with braces', () => {
    expect(() => open('a{b}:')).toThrow(/prefix 'a\{b\}:' contains '\{' or '\}'/);
  });

  it('refuses a Redis Cluster node behind a plain redis:// URL, naming redis+cluster://', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tessera-cluster-'));
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--save', '', '--dir', dir],
      { stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const clustered = openStore({ kind: 'redis', url: `redis://127.0.0.1:${port}`, prefix: 'c:' });
    try {
      let error: Error | undefined;
      for (let i = 0; i < 100 && error === undefined; i++) {
        // Retried until the server listens (connection errors name reachability, not Cluster).
        error = await clustered.readTiles([{ groupBy: 'g', key: 'k' }]).then(
          () => new Error('read succeeded'),
          (e: Error) => (/Cluster/.test(e.message) ? e : undefined),
        );
        if (error === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(error?.message).toMatch(
        /is a Redis Cluster node; connect with --redis redis\+cluster:\/\/host:port/,
      );
    } finally {
      await clustered.close();
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
