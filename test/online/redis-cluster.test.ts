import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { openStore } from '../../src/online/open-store.ts';
import {
  CLUSTER_SLOTS,
  clusterSlot,
  openRedisClient,
  parseClusterUrl,
  untilReady,
} from '../../src/online/redis-client.ts';
import { partitionTags } from '../../src/online/redis-store.ts';
import type { OnlineStore, StoreConfig } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { freePort, startRedisCluster } from '../support/servers.ts';
import { byUserKind, closeTo, events, groupBys, naive, randomEvents } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

// The Redis store on a 3-master Redis Cluster (layout 3: keys hash-tagged by store partition). The store
// contract runs against it in store-contract.test.ts, the kill -9 test in crash-restart.test.ts.
const cluster = await startRedisCluster();
let nodes: Redis[] = [];
beforeAll(() => {
  nodes = (cluster?.masters ?? []).map((m) => new Redis(m.url));
});
afterAll(async () => {
  for (const n of nodes) n.disconnect();
  await cluster?.stop();
});

let prefixes = 0;
const config = (partitions?: number, prefix = `cl${prefixes++}:`): StoreConfig => ({
  kind: 'redis',
  url: cluster!.url,
  prefix,
  ...(partitions ? { partitions } : {}),
});
const bytes = (...b: number[]) => Uint8Array.from(b);
/** A key whose store partition (of `of`) is `s`. */
const keyIn = (s: number, of: number, tag = 'k') => {
  for (let i = 0; ; i++) if (partitionOf(`${tag}${i}`, of) === s) return `${tag}${i}`;
};

describe('cluster URLs and slots', () => {
  it('parses seed nodes, credentials and TLS, and refuses other databases', () => {
    expect(parseClusterUrl('redis+cluster://a:7000,b,[::1]:7002')).toEqual({
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
    });
    expect(parseClusterUrl('rediss+cluster://u:p%40ss@h:1/0')).toEqual({
      nodes: [{ host: 'h', port: 1 }],
      tls: true,
      username: 'u',
      password: 'p@ss',
    });
    expect(() => parseClusterUrl('redis+cluster://h:1/2')).toThrow(/only database 0/);
    expect(() => parseClusterUrl('redis+cluster://h:x')).toThrow(/'h:x' is not host:port/);
  });

  it('spreads store partitions evenly over the slot range', () => {
    for (const count of [1, 3, 16, 1000]) {
      const slots = partitionTags(count).map(clusterSlot);
      slots.forEach((slot, s) => expect(slot).toBe(Math.floor(((2 * s + 1) * CLUSTER_SLOTS) / (2 * count))));
    }
  });

  it('an unreachable Cluster fails operations after a bounded wait instead of queueing them forever', async () => {
    const port = await freePort();
    const client = openRedisClient(`redis+cluster://127.0.0.1:${port}`);
    try {
      await expect(untilReady(client, 300)).rejects.toThrow(/Redis Cluster not ready within 300 ms/);
    } finally {
      client.disconnect();
    }
    const single = openRedisClient('redis://127.0.0.1:1');
    expect(untilReady(single, 300)).toBeNull();
    single.disconnect();
  });

  describe.skipIf(!cluster)('against the server', () => {
    it('computes slots as Redis does', async () => {
      for (const key of ['foo', 'a', '0', 'zz9', 'tessera:x', 'ü€', ...partitionTags(5)])
        expect(clusterSlot(key)).toBe(await nodes[0].cluster('KEYSLOT', key));
    });
  });
});

describe.skipIf(!cluster)('redis store on a 3-master Redis Cluster', () => {
  let store: OnlineStore;
  beforeAll(() => {
    store = openStore(config(8));
  });
  afterAll(() => store.close());

  it('spreads entities over every master and reads them back in one call', async () => {
    const writes = Array.from({ length: 300 }, (_, i) => ({
      groupBy: 'g',
      key: `user${i}`,
      level: 1,
      start: i,
      bytes: bytes(i % 256),
    }));
    await store.commit({ tiles: writes, offsets: { 'upload/g': '5' } });
    const read = await store.readTiles([...writes, { groupBy: 'g', key: 'none' }]);
    expect(read.map((t) => t.map((x) => [x.start, [...x.bytes]]))).toEqual([
      ...writes.map((w) => [[w.start, [...w.bytes]]]),
      [],
    ]);
    const perMaster = await Promise.all(nodes.map((n) => n.dbsize()));
    for (const n of perMaster) expect(n).toBeGreaterThan(50);
    expect((await store.stats()).byGroupBy.g).toEqual({ entities: 300, tiles: 300, bytes: 300 });
    expect(await store.readOffsets(['upload/g'])).toEqual({ 'upload/g': '5' });
  });

  it('a fenced commit in one partition is one atomic script; one spanning partitions is refused', async () => {
    const a = keyIn(3, 8);
    const b = keyIn(5, 8);
    const tile = (key: string, v: number) => ({ groupBy: 'f', key, level: 1, start: 0, bytes: bytes(v) });
    // Log partition 11 of 16 lands in store partition 11 mod 8 = 3, with entity a.
    await store.commit({
      tiles: [tile(a, 1)],
      runs: [{ groupBy: 'f', key: a, bytes: bytes(7) }],
      expect: { 'stream/t/11': null },
      offsets: { 'stream/t/11': '10', 'watermark/t/11': '99' },
    });
    await expect(
      store.commit({ tiles: [tile(a, 2)], expect: { 'stream/t/11': '5' }, offsets: { 'stream/t/11': '20' } }),
    ).rejects.toThrow(/^fenced: offset 'stream\/t\/11' is '10' in the store but this writer expected '5'/);
    await expect(
      store.commit({ tiles: [tile(a, 3), tile(b, 3)], expect: { 'stream/t/11': '10' } }),
    ).rejects.toThrow(
      /fenced commit \(expecting 'stream\/t\/11'\) spans store partitions .* of 8.*multiple of the store's \(8\)/,
    );
    const [ta, tb] = await store.readTiles([
      { groupBy: 'f', key: a },
      { groupBy: 'f', key: b },
    ]);
    expect(ta.map((t) => [...t.bytes])).toEqual([[1], [7]]);
    expect(tb).toEqual([]);
    expect(await store.readOffsets()).toMatchObject({ 'stream/t/11': '10', 'watermark/t/11': '99' });
  });

  it('readers adopt the recorded partition count; writers must run a multiple of it', async () => {
    const prefix = 'adopt:';
    const reader = openStore(config(undefined, prefix));
    try {
      // Nothing recorded yet: reads see an empty store, writes are refused (keys could not spread).
      expect(await reader.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([[]]);
      await expect(reader.commit({ tiles: [], offsets: { x: '1' } })).rejects.toThrow(
        /this Redis Cluster store is new, and its first write must record how many log partitions .*Give it --partitions N/,
      );
      expect(await reader.readOffsets()).toEqual({});
      const writer = openStore(config(4, prefix));
      await writer.commit({ tiles: [{ groupBy: 'g', key: 'k', level: 1, start: 0, bytes: bytes(4) }] });
      await writer.close();
      expect((await reader.readTiles([{ groupBy: 'g', key: 'k' }]))[0].map((t) => [...t.bytes])).toEqual([
        [4],
      ]);
      // Log partition 5 of 8 lies in store partition 1 of 4; of 6 it would not (6 is no multiple of 4).
      const tile = (p: number) => ({ groupBy: 'g', key: keyIn(p, 4), level: 1, start: 0, bytes: bytes(p) });
      const eight = openStore(config(8, prefix));
      await eight.commit({
        tiles: [tile(1)],
        expect: { 'stream/t/5': null },
        offsets: { 'stream/t/5': '1' },
      });
      await eight.close();
      const six = openStore(config(6, prefix));
      expect((await six.readTiles([{ groupBy: 'g', key: 'k' }]))[0]).toHaveLength(1);
      await expect(six.commit({ tiles: [tile(1)], expect: { 'stream/t/5': '1' } })).rejects.toThrow(
        /created for 4 log partition\(s\).*this stream worker runs 6.*--partitions must be a multiple of 4/,
      );
      await six.close();
    } finally {
      await reader.close();
    }
  });

  it('keeps usage counters (one hash, one slot)', async () => {
    await store.addCounters({ 'usage/fetch/a': 2, 'usage/fetch/b': 1 });
    await store.addCounters({ 'usage/fetch/a': 3 });
    expect(await store.readCounters('usage/fetch/')).toEqual({ 'usage/fetch/a': 5, 'usage/fetch/b': 1 });
  });

  it('bulk loads per slot', async () => {
    const tiles = [{ level: 1, start: 0, bytes: bytes(1, 2) }];
    const entities = Array.from({ length: 5000 }, (_, i) => ({ groupBy: 'load', key: `e${i}`, tiles }));
    await store.loadEntities!(entities);
    const read = await store.readTiles(entities.slice(0, 100));
    expect(read.every((t) => t.length === 1 && t[0].bytes[1] === 2)).toBe(true);
    expect((await store.stats()).byGroupBy.load).toEqual({ entities: 5000, tiles: 5000, bytes: 10000 });
  });
});

describe.skipIf(!cluster)('stream workers on a Redis Cluster (store and Streams log)', () => {
  it('match the oracle with 4 log partitions (one worker each, one slot per commit)', async () => {
    const store = openStore(config(4));
    // The Redis Streams log on the same Cluster: each (topic, partition) stream in its own slot.
    const log = openRedisStreamLog(cluster!.url, { partitions: 4, prefix: 'cl-log:' });
    const all = randomEvents(23, 1200, 40);
    for (let i = 0; i < all.length; i += 300)
      await ingestEvents(log, events, groupBys, all.slice(i, i + 300));
    const workers = [];
    for (const topic of streamTopics(events, groupBys, 4))
      for (let p = 0; p < 4; p++)
        workers.push(await createStreamWorker({ log, store, topic, partition: p, batchSize: 150 }));
    await Promise.all(workers.map((w) => w.drain()));
    await expectUsersMatchOracle(store, all);
    const t = Math.max(...all.map((e) => e.ts as number)) + 1;
    const keys = [
      ...new Set(all.filter((e) => typeof e.kind === 'string').map((e) => `${e.user}\u001f${e.kind}`)),
    ];
    const [values] = await createFetchGroupBys(store)(
      [{ id: groupById(byUserKind), groupBy: byUserKind, keys }],
      t,
    );
    keys.forEach((k, i) => expect(closeTo(values[i].values, naive(all, 'by_user_kind', k, t))).toBe(true));
    // A restarted worker resumes from its committed offset (homed in its partition's slot).
    const again = await createStreamWorker({
      log,
      store,
      topic: streamTopics(events, groupBys, 4)[0],
      partition: 2,
    });
    expect(again.stats().nextOffset).toBe(workers[2].stats().nextOffset);
    await log.close();
    await store.close();
  });
});
