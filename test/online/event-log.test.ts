import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventLog, LogEntry } from '../../src/online/log/event-log.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openKafkaLog } from '../../src/online/log/kafka-log.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { logStreamToken } from '../../src/online/log/topic-token.ts';
import { startNats, startRedis, startRedisCluster } from '../support/servers.ts';
import { FakeKafka } from './kafka-fake.ts';

const [redis, nats, cluster] = await Promise.all([startRedis(), startNats(), startRedisCluster()]);
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-log-'));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  await Promise.all([redis?.stop(), nats?.stop(), cluster?.stop()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let n = 0;
const makers: [string, ((partitions: number) => EventLog) | null][] = [
  ['file', (partitions) => openFileLog(tempDir(), { partitions, segmentBytes: 300 })],
  ['redis', redis ? (partitions) => openRedisStreamLog(redis.url, { partitions, prefix: `l${n++}:` }) : null],
  [
    'redis cluster',
    cluster ? (partitions) => openRedisStreamLog(cluster.url, { partitions, prefix: `l${n++}:` }) : null,
  ],
  ['nats', nats ? (partitions) => openNatsLog(nats.url, { partitions, prefix: `l${n++}` }) : null],
  // Kafka is only tested against an in-process fake of kafkajs (no broker runs here): kafka-fake.ts.
  [
    'kafka (fake)',
    (partitions) => openKafkaLog(['fake:9092'], { partitions, prefix: `l${n++}`, client: kafka.client() }),
  ],
];
const kafka = new FakeKafka();

const entries = (from: number, count: number): LogEntry[] =>
  Array.from({ length: count }, (_, i) => ({
    partitionKey: `k${(from + i) % 7}`,
    event: { k: `k${(from + i) % 7}`, i: from + i, ts: 1000 + from + i },
  }));

for (const [name, make] of makers) {
  describe.skipIf(!make)(`${name} event log contract`, () => {
    it('assigns dense offsets per partition and reads back in order from any offset', async () => {
      const log = make!(3);
      const r1 = await log.append('src', entries(0, 20));
      const r2 = await log.append('src', entries(20, 15));
      for (const r of [...r1, ...r2]) expect(r.partition).toBeGreaterThanOrEqual(0);
      const ends = await log.endOffsets('src');
      expect(ends.reduce((a, b) => a + b, 0)).toBe(35);
      for (let p = 0; p < 3; p++) {
        const expected = entries(0, 35)
          .filter((e) => partitionOf(e.partitionKey, 3) === p)
          .map((e) => e.event);
        const all = await log.read('src', p, 0, 1000);
        expect(all.map((r) => r.offset)).toEqual(expected.map((_, i) => i));
        expect(all.map((r) => r.event)).toEqual(expected);
        // paging, restarting mid-batch, and past the end
        const paged = [];
        for (let from = 0; ; ) {
          const page = await log.read('src', p, from, 2);
          if (page.length === 0) break;
          paged.push(...page);
          from = page[page.length - 1].offset + 1;
        }
        expect(paged).toEqual(all);
        expect(await log.read('src', p, 3, 2)).toEqual(all.slice(3, 5));
        expect(await log.read('src', p, ends[p], 10)).toEqual([]);
      }
      expect(await log.read('other', 0, 0, 10)).toEqual([]);
      await log.close();
    });

    it('a waiting read returns as soon as events arrive', async () => {
      const log = make!(1);
      const started = Date.now();
      const pending = log.read('w', 0, 0, 10, 2000);
      setTimeout(() => void log.append('w', entries(0, 2)), 50);
      const got = await pending;
      expect(got.map((r) => r.offset)).toEqual([0, 1]);
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await log.read('w', 0, 2, 10, 30)).toEqual([]);
      await log.close();
    });
  });
}

describe('file log durability', () => {
  it('recovers from a torn tail and keeps appending with dense offsets; other readers see the data', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { segmentBytes: 1 << 20 });
    await log.append('t', entries(0, 5));
    await log.close();
    const pdir = join(dir, 't', 'p0');
    const seg = join(pdir, readdirSync(pdir)[0]);
    const size = statSync(seg).size;
    appendFileSync(seg, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 91, 123])); // a torn frame
    const reader = openFileLog(dir);
    expect((await reader.read('t', 0, 0, 100)).length).toBe(5); // readers stop before the torn frame
    const again = openFileLog(dir);
    const r = await again.append('t', entries(5, 2));
    expect(r).toEqual([{ partition: 0, first: 5, count: 2 }]);
    expect(statSync(seg).size).toBeGreaterThan(size);
    const all = await reader.read('t', 0, 0, 100);
    expect(all.map((x) => x.event.i)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(await reader.endOffsets('t')).toEqual([7]);
    await again.close();
    await reader.close();
  });

  it('treats a zero-filled tail (a file extended by a crash before its data reached the disk) as torn', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { segmentBytes: 1 << 20 });
    await log.append('t', entries(0, 3));
    await log.close();
    const pdir = join(dir, 't', 'p0');
    appendFileSync(join(pdir, readdirSync(pdir)[0]), Buffer.alloc(24)); // two all-zero frame headers
    const reader = openFileLog(dir);
    expect((await reader.read('t', 0, 0, 100)).map((x) => x.event.i)).toEqual([0, 1, 2]);
    const again = openFileLog(dir);
    expect(await again.append('t', entries(3, 2))).toEqual([{ partition: 0, first: 3, count: 2 }]);
    expect((await reader.read('t', 0, 0, 100)).map((x) => x.event.i)).toEqual([0, 1, 2, 3, 4]);
    await again.close();
    await reader.close();
  });

  it('rolls segments and reads across them', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { segmentBytes: 200 });
    for (let i = 0; i < 10; i++) await log.append('t', entries(i * 3, 3));
    expect(readdirSync(join(dir, 't', 'p0')).length).toBeGreaterThan(2);
    const reader = openFileLog(dir);
    const all = await reader.read('t', 0, 0, 1000);
    expect(all.map((x) => x.event.i)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect((await reader.read('t', 0, 17, 4)).map((x) => x.offset)).toEqual([17, 18, 19, 20]);
    expect(await reader.endOffsets('t')).toEqual([30]);
    await log.close();
  });

  it('rejects unsafe topic names', async () => {
    const log = openFileLog(tempDir());
    await expect(log.append('../etc', entries(0, 1))).rejects.toThrow(/unsafe in a directory name/);
  });
});

describe('file log group commit', () => {
  it('concurrent appends get distinct dense offsets and are all durable', async () => {
    const dir = tempDir();
    const log = openFileLog(dir, { partitions: 2 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => log.append('g', entries(i * 5, 5))),
    );
    const ranges = results.flat().sort((a, b) => a.partition - b.partition || a.first - b.first);
    for (let p = 0; p < 2; p++) {
      const mine = ranges.filter((r) => r.partition === p);
      let next = 0;
      for (const r of mine) {
        expect(r.first).toBe(next);
        next += r.count;
      }
    }
    await log.close();
    const reader = openFileLog(dir, { partitions: 2 });
    const all = [...(await reader.read('g', 0, 0, 1000)), ...(await reader.read('g', 1, 0, 1000))];
    expect(all.map((r) => r.event.i).sort((a, b) => (a as number) - (b as number))).toEqual(
      Array.from({ length: 100 }, (_, i) => i),
    );
    await reader.close();
  });
});

describe('log topic tokens', () => {
  it('spell any topic with stream-safe characters, injectively', () => {
    const topics = [
      'charges',
      'charges.card_id',
      'charges_002ecard_id',
      'a__b',
      'a_b',
      'a+b',
      'a.b',
      'é.x',
      'p_p0',
    ];
    const tokens = topics.map(logStreamToken);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(new Set(tokens).size).toBe(topics.length);
    expect(logStreamToken('charges.card_id+merchant_id')).toBe('charges_002ecard__id_002bmerchant__id');
  });
});

describe.skipIf(!nats)('NATS JetStream log', () => {
  it('appends from several connections interleave, and each reports the offsets it got', async () => {
    const a = openNatsLog(nats!.url, { prefix: 'mc' });
    const b = openNatsLog(nats!.url, { prefix: 'mc' });
    const batches = Array.from({ length: 12 }, (_, i) =>
      Array.from({ length: 25 }, (_, j) => ({ partitionKey: '', event: { writer: i % 2, batch: i, j } })),
    );
    const results = await Promise.all(batches.map((entries, i) => (i % 2 ? b : a).append('t', entries)));
    const all = await a.read('t', 0, 0, 1000);
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    results.forEach((ranges, i) => {
      const got = ranges.flatMap((r) => all.slice(r.first, r.first + r.count).map((x) => x.event));
      expect(got).toEqual(batches[i].map((e) => e.event)); // in order, nothing else in its ranges
    });
    await Promise.all([a.close(), b.close()]);
  });

  it('an append JetStream refuses fails with the reason it gave', async () => {
    const nc = await connect({ servers: nats!.url });
    const jsm = await jetstreamManager(nc);
    const token = logStreamToken('t');
    // An operator-made stream with a limit: accepted (it captures exactly our subject), and enforced.
    await jsm.streams.add({
      name: `rf_${token}_p0`,
      subjects: [`rf.${token}.0`],
      max_msgs: 3,
      discard: DiscardPolicy.New,
    });
    const log = openNatsLog(nats!.url, { prefix: 'rf' });
    expect(await log.append('t', entries(0, 2))).toEqual([{ partition: 0, first: 0, count: 2 }]);
    await expect(log.append('t', entries(2, 4))).rejects.toThrow(
      /JetStream refused an event: maximum messages exceeded/,
    );
    await nc.close();
    await log.close();
  });

  it('a read across deleted or expired messages fails naming the missing offsets', async () => {
    const log = openNatsLog(nats!.url, { prefix: 'gap' });
    await log.append('t', entries(0, 6));
    expect((await log.read('t', 0, 0, 2)).map((r) => r.offset)).toEqual([0, 1]);
    const nc = await connect({ servers: nats!.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.deleteMessage(`gap_${logStreamToken('t')}_p0`, 4); // offset 3
    await expect(log.read('t', 0, 2, 10)).rejects.toThrow(/offsets 3\.\.3 are missing/);
    // reading past the hole works (a worker never does that by itself)
    expect((await log.read('t', 0, 4, 10)).map((r) => r.offset)).toEqual([4, 5]);
    await expect(log.read('t', 0, 7, 10)).rejects.toThrow(/offset 7 is past the end .* \(6 records\)/);
    await nc.close();
    await log.close();
  });
});
