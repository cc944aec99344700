import { afterAll, describe, expect, it } from 'vitest';
import { EVENT_RUN_LEVEL } from '../../src/aggregate/event-run.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { openRedisClient, untilReady } from '../../src/online/redis-client.ts';
import { openRedisStore, partitionTags, readRedisEntity } from '../../src/online/redis-store.ts';
import type { CommitBatch, StoredTile } from '../../src/online/store.ts';
import { keysMatching } from '../support/redis-keys.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';

// Big fenced commits (redis-store.ts `commitPart`: staged, recorded, applied chunk by chunk) as readers see
// them: never half-applied, and finished by a reader when their writer stopped mid-apply. On a single Redis
// (a commit spanning store partitions) and on a 3-master Redis Cluster (a commit in one partition).
const redis = await startRedis();
const cluster = await startRedisCluster();
afterAll(async () => {
  await redis?.stop();
  await cluster?.stop();
});

const S = 4;
const OWNER = 'stream/t/1'; // homed in store partition 1 of 4
let prefixes = 0;

/** `n` entity keys: on a Cluster all in the owner's store partition (a fenced commit's must be). */
function keysFor(clustered: boolean, n: number, tag = 'k'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++)
    if (!clustered || partitionOf(`${tag}${i}`, S) === 1) out.push(`${tag}${i}`);
  return out;
}

const entityKey = (prefix: string, key: string) =>
  `${prefix}e{${partitionTags(S)[partitionOf(key, S)]}}g:${key}`;
const plain = (tiles: StoredTile[]) => tiles.map((t) => [t.level, t.start, [...t.bytes]]);

/**
 * Round `round` of the writer of OWNER: every entity's tile is [round], and its run grows by [round].
 * Unfenced (a bulk upload's commit): no expectation, and its cutoff-like offset is not OWNER's.
 */
const batch = (keys: readonly string[], round: number, withRuns = true, fenced = true): CommitBatch => ({
  tiles: keys.map((key) => ({ groupBy: 'g', key, level: 1, start: 0, bytes: Uint8Array.of(round) })),
  runs: withRuns ? keys.map((key) => ({ groupBy: 'g', key, bytes: Uint8Array.of(round) })) : [],
  ...(fenced
    ? { expect: { [OWNER]: round === 1 ? null : String(round - 1) }, offsets: { [OWNER]: String(round) } }
    : { offsets: { 'upload/g': String(round) } }),
});

const targets: [string, string | undefined, boolean][] = [
  ['a single Redis', redis?.url, false],
  ['a 3-master Redis Cluster', cluster?.url, true],
];

for (const [name, url, clustered] of targets) {
  describe.skipIf(!url)(`big commits as readers see them, on ${name}`, () => {
    it('a commit whose writer stopped after some chunks is finished, whole, by the next fetch of a reader', async () => {
      const prefix = `pend${prefixes++}:`;
      const writer = openRedisStore(url!, { prefix, partitions: S, commitChunkEntities: 3 });
      const reader = openRedisStore(url!, { prefix }); // a serving node: no partitions, never commits
      const raw = openRedisClient(url!);
      try {
        await untilReady(raw);
        const keys = keysFor(clustered, 40);
        await writer.commit(batch(keys, 1));
        // A value the apply cannot merge stops the writer's apply at the chunk holding it, as a writer dying
        // there would; restored at once, so the rest of the log can be applied.
        const stop = entityKey(prefix, keys[20]);
        const saved = await raw.getBuffer(stop);
        await raw.set(stop, 'x');
        await expect(writer.commit(batch(keys, 2))).rejects.toThrow(
          /recorded, then applying chunk \d+ of \d+/,
        );
        await raw.set(stop, saved!);
        const stored = async (key: string) =>
          readRedisEntity((await raw.getBuffer(entityKey(prefix, key)))!, key).map((t) => [...t.bytes]);
        expect([await stored(keys[0]), await stored(keys[39])]).toEqual([
          [[2], [1, 2]],
          [[1], [1]],
        ]);
        expect(await keysMatching(raw, `${prefix}w{*`)).toHaveLength(1);

        // One entity not yet applied, read alone: the whole commit is applied first.
        expect(plain((await reader.readTiles([{ groupBy: 'g', key: keys[39] }]))[0])).toEqual([
          [1, 0, [2]],
          [EVENT_RUN_LEVEL, 0, [1, 2]],
        ]);
        expect(await keysMatching(raw, `${prefix}w{*`)).toEqual([]);
        expect(await keysMatching(raw, `${prefix}p{*`)).toEqual([]);
        const all = await reader.readTiles(keys.map((key) => ({ groupBy: 'g', key })));
        expect(all.map(plain)).toEqual(
          keys.map(() => [
            [1, 0, [2]],
            [EVENT_RUN_LEVEL, 0, [1, 2]],
          ]),
        );
        // Applied once (the runs were not doubled), and the writer goes on from it.
        expect(await writer.readOffsets([OWNER])).toEqual({ [OWNER]: '2' });
        await writer.commit(batch(keys, 3));
        expect(plain((await reader.readTiles([{ groupBy: 'g', key: keys[0] }]))[0])).toEqual([
          [1, 0, [3]],
          [EVENT_RUN_LEVEL, 0, [1, 2, 3]],
        ]);
        expect([
          ...(await keysMatching(raw, `${prefix}w{*`)),
          ...(await keysMatching(raw, `${prefix}p{*`)),
        ]).toEqual([]);
      } finally {
        raw.disconnect();
        await Promise.all([writer.close(), reader.close()]);
      }
    });

    it('an upload commit whose writer stopped mid-apply is finished by a worker reading its offsets', async () => {
      const prefix = `pend${prefixes++}:`;
      const upload = openRedisStore(url!, { prefix, partitions: S, commitChunkEntities: 3 });
      const worker = openRedisStore(url!, { prefix, partitions: S });
      const raw = openRedisClient(url!);
      try {
        await untilReady(raw);
        const keys = keysFor(clustered, 40);
        await upload.commit(batch(keys, 1, true, false));
        const stop = entityKey(prefix, keys[20]);
        const saved = await raw.getBuffer(stop);
        await raw.set(stop, 'x');
        await expect(upload.commit(batch(keys, 2, true, false))).rejects.toThrow(/recorded, then applying/);
        await raw.set(stop, saved!);
        expect(await keysMatching(raw, `${prefix}w{*`)).not.toEqual([]);
        // A worker opening on the partition reads its offsets before it appends runs blindly: the rest of the
        // upload's log, applied after those appends, would rewrite them. So that read finishes it.
        expect(await worker.readOffsets([OWNER])).toEqual({});
        expect(await keysMatching(raw, `${prefix}w{*`)).toEqual([]);
        const all = await worker.readTiles(keys.map((key) => ({ groupBy: 'g', key })));
        expect(all.map(plain)).toEqual(
          keys.map(() => [
            [1, 0, [2]],
            [EVENT_RUN_LEVEL, 0, [1, 2]],
          ]),
        );
      } finally {
        raw.disconnect();
        await Promise.all([upload.close(), worker.close()]);
      }
    });

    // Fenced: a stream worker's commit, in one store partition. Unfenced: a bulk upload's, spanning them
    // (on a Cluster one log per partition: atomic within each, a read being one MGET per partition there).
    for (const fenced of [true, false])
      it(
        `a reader polling during chunked ${fenced ? 'fenced' : 'unfenced'} commits never sees one half-applied`,
        { timeout: 60_000 },
        async () => {
          const prefix = `pend${prefixes++}:`;
          const writer = openRedisStore(url!, { prefix, partitions: S, commitChunkEntities: 1 });
          const reader = openRedisStore(url!, { prefix });
          const raw = openRedisClient(url!);
          try {
            await untilReady(raw);
            const keys = keysFor(clustered && fenced, 150);
            // Entities of other partitions in the same reads (on a Cluster: other MGETs), written once.
            const others = keysFor(false, 40, 'o').filter((k) => !clustered || partitionOf(k, S) !== 1);
            await writer.commit({
              tiles: others.map((key) => ({
                groupBy: 'g',
                key,
                level: 1,
                start: 0,
                bytes: Uint8Array.of(9),
              })),
            });
            const requests = [...keys, ...others].map((key) => ({ groupBy: 'g', key }));
            // The unit that must read as one round: the commit, or on a Cluster its part in one partition.
            const unit = (key: string) => (clustered ? partitionOf(key, S) : 0);
            let writing = true;
            let polls = 0;
            const mixed: string[] = [];
            const polling = (async () => {
              while (writing) {
                const read = await reader.readTiles(requests);
                const rounds = new Map<number, Set<number>>();
                read.slice(0, keys.length).forEach((t, i) => {
                  const u = unit(keys[i]);
                  if (!rounds.has(u)) rounds.set(u, new Set());
                  rounds.get(u)!.add(t.length === 0 ? 0 : t[0].bytes[0]);
                });
                for (const [u, seen] of rounds)
                  if (seen.size > 1)
                    mixed.push(`poll ${polls}, unit ${u}: rounds ${[...seen].sort().join(', ')}`);
                expect(read.slice(keys.length).map((t) => t[0].bytes[0])).toEqual(others.map(() => 9));
                polls++;
              }
            })();
            // At least 8 commits, and more until the reader polled a few times (a poll that finds a commit
            // pending helps apply it, so polls are few; and a busy machine may delay the reader).
            let rounds = 0;
            while (rounds < 8 || (polls < 4 && rounds < 100))
              await writer.commit(batch(keys, ++rounds, false, fenced));
            writing = false;
            await polling;
            expect(mixed).toEqual([]);
            expect(polls).toBeGreaterThan(3);
            const read = await reader.readTiles(requests.slice(0, keys.length));
            expect(read.map((t) => t[0].bytes[0])).toEqual(keys.map(() => rounds));
            expect([
              ...(await keysMatching(raw, `${prefix}w{*`)),
              ...(await keysMatching(raw, `${prefix}p{*`)),
            ]).toEqual([]);
          } finally {
            raw.disconnect();
            await Promise.all([writer.close(), reader.close()]);
          }
        },
      );
  });
}

describe.skipIf(!redis)('pending markers on a single Redis', () => {
  it('a reader that may not write fails a read finding a commit pending, naming the fix', async () => {
    const prefix = `pend${prefixes++}:`;
    const writer = openRedisStore(redis!.url, { prefix, partitions: S, commitChunkEntities: 3 });
    const raw = openRedisClient(redis!.url);
    await raw.acl('SETUSER', 'h3reader', 'on', '>pw', '~*', '+@read');
    const url = redis!.url.replace('redis://', 'redis://h3reader:pw@');
    const readOnly = openRedisStore(url, { prefix });
    const reader = openRedisStore(redis!.url, { prefix });
    try {
      const keys = keysFor(false, 12);
      await writer.commit(batch(keys, 1));
      const stop = entityKey(prefix, keys[6]);
      const saved = await raw.getBuffer(stop);
      await raw.set(stop, 'x');
      await expect(writer.commit(batch(keys, 2))).rejects.toThrow(/recorded, then applying/);
      await raw.set(stop, saved!);
      await expect(readOnly.readTiles([{ groupBy: 'g', key: keys[0] }])).rejects.toThrow(
        /must apply the rest of it .*NOPERM.*Serving nodes need write access/,
      );
      expect(plain((await reader.readTiles([{ groupBy: 'g', key: keys[11] }]))[0])[0]).toEqual([1, 0, [2]]);
      expect(plain((await readOnly.readTiles([{ groupBy: 'g', key: keys[0] }]))[0])[0]).toEqual([1, 0, [2]]);
    } finally {
      await raw.acl('DELUSER', 'h3reader');
      raw.disconnect();
      await Promise.all([writer.close(), reader.close(), readOnly.close()]);
    }
  });

  it('a marker listing a log that is gone is unlisted by the reader; a corrupt one is an error naming it', async () => {
    const prefix = `pend${prefixes++}:`;
    const writer = openRedisStore(redis!.url, { prefix, partitions: S });
    const reader = openRedisStore(redis!.url, { prefix });
    const raw = openRedisClient(redis!.url);
    try {
      await writer.commit({
        tiles: [{ groupBy: 'g', key: 'a', level: 1, start: 0, bytes: Uint8Array.of(5) }],
      });
      const marker = `${prefix}p{${partitionTags(S)[partitionOf('a', S)]}}`;
      // E.g. its writer died between applying the last chunk and unlisting it.
      const log = Buffer.from(`${prefix}w{${partitionTags(S)[1]}}${OWNER}`);
      const entry = Buffer.concat([Buffer.alloc(4), log]);
      entry.writeUInt32LE(log.length, 0);
      await raw.set(marker, entry);
      expect(plain((await reader.readTiles([{ groupBy: 'g', key: 'a' }]))[0])).toEqual([[1, 0, [5]]]);
      expect(await raw.exists(marker)).toBe(0);
      await raw.set(marker, 'xy');
      await expect(reader.readTiles([{ groupBy: 'g', key: 'a' }])).rejects.toThrow(
        new RegExp(`pending marker ${marker.replace(/[{}]/g, '\\$&')} is corrupt .*delete it`),
      );
    } finally {
      raw.disconnect();
      await Promise.all([writer.close(), reader.close()]);
    }
  });
});
