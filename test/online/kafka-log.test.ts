/**
 * The Kafka log against an in-process fake of kafkajs (kafka-fake.ts): no Kafka broker runs on the
 * development machine, so these tests show the adapter's logic, not its behaviour with a real broker.
 * Only the "unreachable brokers" test uses the real kafkajs client.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openKafkaLog } from '../../src/online/log/kafka-log.ts';
import { logStreamToken } from '../../src/online/log/topic-token.ts';
import { openStore } from '../../src/online/open-store.ts';
import { startStreamWorkers } from '../../src/online/stream-runner.ts';
import { events, groupBys, randomEvents, tempDir } from './fixtures.ts';
import { FakeKafka } from './kafka-fake.ts';
import { ingestAll, snapshot } from './nats-kafka-support.ts';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));
const dir = () => {
  const d = tempDir();
  cleanups.push(d.remove);
  return d.path;
};
const entries = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ partitionKey: '', event: { i: from + i } }));

describe('Kafka log (against a fake kafkajs)', () => {
  for (const partitions of [1, 3]) {
    it(`stream workers fetch the same values as the file-log path (${partitions} partition(s))`, async () => {
      const kafka = new FakeKafka();
      const all = randomEvents(41 + partitions, 900);
      const kafkaLog = openKafkaLog(['fake:9092'], { partitions, client: kafka.client() });
      const fileLog = openFileLog(dir(), { partitions });
      await Promise.all([ingestAll(kafkaLog, all, 70), ingestAll(fileLog, all, 70)]);
      const viaKafka = openStore({ kind: 'lmdb', path: dir() });
      const viaFile = openStore({ kind: 'lmdb', path: dir() });
      for (const [log, store] of [
        [kafkaLog, viaKafka],
        [fileLog, viaFile],
      ] as const) {
        const runner = await startStreamWorkers({
          sources: [events],
          groupBys,
          log,
          store,
          worker: { batchSize: 101 },
        });
        await runner.drain();
        expect(runner.stats().reduce((a, s) => a + s.recordsRead, 0)).toBe(
          all.length * (partitions === 1 ? 1 : 2),
        );
      }
      expect(await snapshot(viaKafka, all)).toEqual(await snapshot(viaFile, all));
      await Promise.all([kafkaLog.close(), fileLog.close(), viaKafka.close(), viaFile.close()]);
    });
  }

  it('a hole in a partition (compaction, transactions, retention) is an error naming the offsets', async () => {
    const kafka = new FakeKafka();
    const log = openKafkaLog(['fake:9092'], { client: kafka.client() });
    await log.append('t', entries(0, 8));
    kafka.deleteRecords(`tessera.${logStreamToken('t')}`, 0, [4, 5]);
    const got: number[] = [];
    await expect(
      (async () => {
        for (let from = 0; ; ) {
          const page = await log.read('t', 0, from, 3);
          if (page.length === 0) return;
          got.push(...page.map((r) => r.offset));
          from += page.length;
        }
      })(),
    ).rejects.toThrow(/offsets 4\.\.5 of topic 'tessera\.t' partition 0 are missing/);
    expect(got).toEqual([0, 1, 2, 3]);
    await log.close();
  });

  it('after a consumer crash the read fails, and the next read continues from the offset asked', async () => {
    const kafka = new FakeKafka();
    const log = openKafkaLog(['fake:9092'], { client: kafka.client() });
    await log.append('t', entries(0, 5));
    expect((await log.read('t', 0, 0, 2)).map((r) => r.offset)).toEqual([0, 1]);
    kafka.crashConsumers(new Error('broker went away'));
    await expect(log.read('t', 0, 2, 10, 50)).rejects.toThrow(/consumer crashed: broker went away/);
    expect((await log.read('t', 0, 2, 10)).map((r) => r.event.i)).toEqual([2, 3, 4]);
    await log.close();
  });

  it('a waiting read wakes on a new append; reads past the end fail', async () => {
    const kafka = new FakeKafka();
    const log = openKafkaLog(['fake:9092'], { client: kafka.client(), partitions: 2 });
    const pending = log.read('w', 1, 0, 10, 5000);
    const started = Date.now();
    setTimeout(() => void log.append('w', [{ partitionKey: 'k', event: { i: 1 } }, ...entries(0, 3)]), 50);
    // 'k' and '' hash to different partitions; whichever is 1 wakes the read
    const got = await pending;
    expect(got.length).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await log.endOffsets('w')).toEqual([4 - got.length, got.length]);
    for (
      let i = 0;
      i < 2;
      i++ // and again on a retry
    )
      await expect(log.read('w', 1, got.length + 1, 10)).rejects.toThrow(/offset \d+ is past the end/);
    await log.close();
  });

  it('pauses a partition while its buffer is full and resumes as reads drain it', async () => {
    const kafka = new FakeKafka();
    const log = openKafkaLog(['fake:9092'], { client: kafka.client(), bufferRecords: 10 });
    await log.append('t', entries(0, 120));
    const got: number[] = [];
    for (let from = 0; from < 120; ) {
      const page = await log.read('t', 0, from, 7);
      expect(page.length).toBeGreaterThan(0);
      got.push(...page.map((r) => r.event.i as number));
      from += page.length;
    }
    expect(got).toEqual(Array.from({ length: 120 }, (_, i) => i));
    await log.close();
  });

  it('rejects an existing topic with fewer partitions than --partitions', async () => {
    const kafka = new FakeKafka();
    kafka.topics.set(`tessera.${logStreamToken('t')}`, [[]]);
    const log = openKafkaLog(['fake:9092'], { client: kafka.client(), partitions: 4 });
    await expect(log.append('t', entries(0, 1))).rejects.toThrow(
      /topic 'tessera.t' has 1 partition\(s\) but --partitions is 4/,
    );
    await log.close();
  });

  it('names the brokers and the flag when they are unreachable (real kafkajs client)', async () => {
    const log = openKafkaLog(['127.0.0.1:1']);
    await expect(log.endOffsets('events')).rejects.toThrow(
      /cannot connect to brokers 127\.0\.0\.1:1: .*--kafka-brokers/,
    );
    await log.close();
    expect(() => openKafkaLog(['nohostport'])).toThrow(/host:port \(--kafka-brokers/);
  });
});
