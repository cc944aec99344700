/**
 * An in-process fake of the kafkajs surface that src/online/log/kafka-log.ts uses (`KafkaClient`), for
 * tests: no Kafka broker runs on the development machine. It models what the adapter relies on:
 * - topics with partitions of dense offsets; `send` with explicit partitions returns each partition's
 *   base offset; missing topics are errors (auto-creation off);
 * - a consumer that must `subscribe` before `run` and `run` before `seek`; a fetch loop that delivers
 *   batches of varying size per unpaused partition from its position (`fromBeginning`: offset 0), moves
 *   the position past a batch once `eachBatch` returns (auto-resolve) unless a `seek` happened meanwhile,
 *   and, like kafkajs, can still deliver a batch fetched just before a `seek` (`isStale()` true);
 * - crash events (`crashConsumers`), holes in a partition (`deleteRecords`), and unreachable brokers
 *   (`down`).
 * It does not model consumer-group rebalancing, replication, or retention.
 */
import type { Batch, ConsumerCrashEvent, ConsumerRunConfig, KafkaMessage, RecordMetadata } from 'kafkajs';
import type {
  KafkaAdmin,
  KafkaClient,
  KafkaConsumer,
  KafkaProducer,
} from '../../src/online/log/kafka-log.ts';
import { rng } from './fixtures.ts';

interface StoredRecord {
  offset: number;
  value: Buffer;
}

export class FakeKafka {
  /** When true, every connect() fails as with unreachable brokers. */
  down = false;
  readonly topics = new Map<string, (StoredRecord | null)[][]>();
  private readonly wakers = new Set<() => void>();
  private readonly consumers = new Set<FakeConsumer>();
  private readonly random = rng(7);

  client(): KafkaClient {
    return {
      producer: () => this.producer(),
      consumer: () => this.consumer(),
      admin: () => this.admin(),
    };
  }

  /** Removes records (as compaction would), leaving holes in the offsets. */
  deleteRecords(topic: string, partition: number, offsets: number[]): void {
    const log = this.partition(topic, partition);
    for (const o of offsets) log[o] = null;
  }

  /** Every running consumer crashes (as on a lost broker) and stops fetching. */
  crashConsumers(error: Error): void {
    for (const c of this.consumers) c.crash(error);
  }

  batchSize(): number {
    return 1 + Math.floor(this.random() * 37);
  }

  partition(topic: string, p: number): (StoredRecord | null)[] {
    const t = this.topics.get(topic);
    if (!t || !t[p]) throw unknownTopic(topic);
    return t[p];
  }

  onAppend(wake: () => void): () => void {
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  }

  async connect(): Promise<void> {
    await tick();
    if (this.down) throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
  }

  private producer(): KafkaProducer {
    return {
      connect: () => this.connect(),
      disconnect: async () => {},
      send: async (record) => {
        await tick();
        if (record.acks !== -1) throw new Error('fake: Tessera must produce with acks = -1 (all)');
        const byPartition = new Map<number, Buffer[]>();
        for (const m of record.messages) {
          if (m.partition === undefined) throw new Error('fake: messages must name their partition');
          const value = Buffer.from(m.value as string);
          byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), value]);
        }
        const out: RecordMetadata[] = [];
        for (const [p, values] of byPartition) {
          const log = this.partition(record.topic, p);
          const base = log.length;
          for (const value of values) log.push({ offset: log.length, value });
          out.push({ topicName: record.topic, partition: p, errorCode: 0, baseOffset: String(base) });
        }
        for (const w of this.wakers) w();
        return out;
      },
    };
  }

  private consumer(): KafkaConsumer {
    const c = new FakeConsumer(this);
    this.consumers.add(c);
    return c;
  }

  private admin(): KafkaAdmin {
    return {
      connect: () => this.connect(),
      disconnect: async () => {},
      createTopics: async ({ topics }) => {
        await tick();
        let created = false;
        for (const t of topics) {
          if (this.topics.has(t.topic)) continue;
          this.topics.set(
            t.topic,
            Array.from({ length: t.numPartitions ?? 1 }, () => []),
          );
          created = true;
        }
        return created;
      },
      fetchTopicMetadata: async ({ topics }) => {
        await tick();
        return {
          topics: topics.map((name) => {
            const t = this.topics.get(name);
            if (!t) throw unknownTopic(name);
            return {
              name,
              partitions: t.map((_, partitionId) => ({
                partitionErrorCode: 0,
                partitionId,
                leader: 0,
                replicas: [0],
                isr: [0],
              })),
            };
          }),
        };
      },
      fetchTopicOffsets: async (topic) => {
        await tick();
        const t = this.topics.get(topic);
        if (!t) throw unknownTopic(topic);
        return t.map((log, partition) => ({
          partition,
          offset: String(log.length),
          high: String(log.length),
          low: '0',
        }));
      },
    };
  }
}

class FakeConsumer implements KafkaConsumer {
  private topic: string | null = null;
  private fromBeginning = false;
  private running = false;
  private positions: number[] = [];
  private readonly seeks = new Map<number, number>();
  private readonly paused = new Set<number>();
  private crashListeners: ((e: ConsumerCrashEvent) => void)[] = [];
  private wake: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly kafka: FakeKafka) {}

  connect(): Promise<void> {
    return this.kafka.connect();
  }

  async disconnect(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.wake?.();
  }

  async subscribe(s: { topics: (string | RegExp)[]; fromBeginning?: boolean }): Promise<void> {
    if (this.running) throw new Error('Cannot subscribe to topic while consumer is running');
    const [topic] = s.topics;
    if (typeof topic !== 'string' || !this.kafka.topics.has(topic)) throw unknownTopic(String(topic));
    this.topic = topic;
    this.fromBeginning = s.fromBeginning ?? false;
  }

  async run(config: ConsumerRunConfig): Promise<void> {
    if (!this.topic) throw new Error('fake: subscribe before run');
    if (config.autoCommit !== false) throw new Error('fake: Tessera must not commit offsets to Kafka');
    const partitions = this.kafka.topics.get(this.topic)!;
    this.positions = partitions.map((log) => (this.fromBeginning ? 0 : log.length));
    this.running = true;
    this.unsubscribe = this.kafka.onAppend(() => this.wake?.());
    void this.loop(config.eachBatch!);
  }

  seek({ partition, offset }: { topic: string; partition: number; offset: string }): void {
    if (!this.running)
      throw new Error('Consumer group was not initialized, consumer#run must be called first');
    this.seeks.set(partition, Number(offset));
  }

  pause(topics: { topic: string; partitions?: number[] }[]): void {
    for (const t of topics)
      for (const p of t.partitions ?? this.positions.map((_, i) => i)) this.paused.add(p);
  }

  resume(topics: { topic: string; partitions?: number[] }[]): void {
    for (const t of topics)
      for (const p of t.partitions ?? this.positions.map((_, i) => i)) this.paused.delete(p);
    this.wake?.();
  }

  on(_event: 'consumer.crash', listener: (e: ConsumerCrashEvent) => void): () => void {
    this.crashListeners.push(listener);
    return () => {};
  }

  crash(error: Error): void {
    if (!this.running) return;
    this.running = false;
    for (const l of this.crashListeners)
      l({
        id: '0',
        type: 'consumer.crash',
        timestamp: Date.now(),
        payload: { error, groupId: 'g', restart: false },
      });
  }

  private async loop(eachBatch: NonNullable<ConsumerRunConfig['eachBatch']>): Promise<void> {
    const topic = this.topic!;
    while (this.running) {
      // A fetch: apply pending seeks, then take one batch per unpaused partition that has records.
      for (const [p, o] of this.seeks) this.positions[p] = o;
      this.seeks.clear();
      const batches: { partition: number; records: StoredRecord[]; highWatermark: number }[] = [];
      for (let p = 0; p < this.positions.length; p++) {
        if (this.paused.has(p)) continue;
        const log = this.kafka.partition(topic, p);
        const records = log
          .slice(this.positions[p], this.positions[p] + this.kafka.batchSize())
          .filter((r): r is StoredRecord => r !== null);
        if (records.length > 0) batches.push({ partition: p, records, highWatermark: log.length });
      }
      if (batches.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        continue;
      }
      await tick(); // the network: a seek or pause may land while the response is in flight
      for (const b of batches) {
        if (!this.running) return;
        await eachBatch(payload(topic, b, () => this.seeks.has(b.partition)));
        const last = b.records[b.records.length - 1].offset;
        if (!this.seeks.has(b.partition)) this.positions[b.partition] = last + 1;
      }
    }
  }
}

function payload(
  topic: string,
  b: { partition: number; records: StoredRecord[]; highWatermark: number },
  isStale: () => boolean,
): Parameters<NonNullable<ConsumerRunConfig['eachBatch']>>[0] {
  const messages: KafkaMessage[] = b.records.map((r) => ({
    key: null,
    value: r.value,
    timestamp: '0',
    attributes: 0,
    offset: String(r.offset),
    headers: {},
  }));
  const batch: Batch = {
    topic,
    partition: b.partition,
    highWatermark: String(b.highWatermark),
    messages,
    isEmpty: () => messages.length === 0,
    firstOffset: () => messages[0]?.offset ?? null,
    lastOffset: () => messages[messages.length - 1].offset,
    offsetLag: () => String(b.highWatermark - 1 - Number(messages[messages.length - 1].offset)),
    offsetLagLow: () => String(b.highWatermark - 1 - Number(messages[0].offset)),
  };
  return {
    batch,
    resolveOffset: () => {},
    heartbeat: async () => {},
    pause: () => () => {},
    commitOffsetsIfNecessary: async () => {},
    uncommittedOffsets: () => ({ topics: [] }),
    isRunning: () => true,
    isStale,
  };
}

function unknownTopic(topic: string): Error {
  return Object.assign(new Error(`This server does not host this topic-partition (${topic})`), {
    type: 'UNKNOWN_TOPIC_OR_PARTITION',
  });
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
