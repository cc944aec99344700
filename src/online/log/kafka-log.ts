import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type {
  ConsumerConfig,
  ConsumerCrashEvent,
  ConsumerRunConfig,
  ConsumerSubscribeTopics,
  ITopicConfig,
  ITopicMetadata,
  ProducerConfig,
  ProducerRecord,
  RecordMetadata,
  TopicPartitionOffset,
} from 'kafkajs';
import { decodeLogEvent } from '../log-event-check.ts';
import type { AppendOptions, AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import { IdempotencyUnsupportedError } from './idempotency.ts';
import { LogUnavailableError } from './log-unavailable.ts';
import { partitionOf } from './partition.ts';
import { checkRecordedPartitions } from './partition-record.ts';
import { logStreamToken } from './topic-token.ts';

/**
 * Kafka log (kafkajs). ONLY TESTED AGAINST AN IN-PROCESS FAKE of the kafkajs surface below
 * (test/online/kafka-fake.ts), never against a Kafka broker: no broker runs on the development machine.
 * Invariants:
 * 1. Topic `<prefix>.<token>` (token: topic-token.ts) has at least `partitions` Kafka partitions; log
 *    partition p is Kafka partition p and offset = Kafka offset. The adapter creates missing topics with
 *    exactly `partitions` partitions. Offsets are dense only on topics that are not compacted and not
 *    written by transactional producers (control records and compaction leave holes): that is a
 *    requirement, and a hole is reported as an error, never skipped.
 * 2. `append` sends one record batch per partition with acks = all from an idempotent producer (no
 *    duplicates from its own retries) and resolves once the in-sync replicas have it; each partition's
 *    batch is contiguous from the base offset Kafka returns.
 * 3. Reads use one consumer per topic in a consumer group of its own (so it is assigned every partition)
 *    that never commits: workers keep offsets with their tiles. Each partition starts paused; a read from
 *    an offset other than where the partition's buffer continues seeks there. Fetched records are
 *    buffered per partition (pausing the partition while the buffer is full); a read returns what is
 *    buffered, waits for the consumer while the high watermark says records exist, and otherwise waits
 *    up to `waitMs` for new ones.
 *
 * @example
 * const log = openKafkaLog(['127.0.0.1:9092'], { partitions: 4 });
 */
export function openKafkaLog(
  brokers: readonly string[],
  opts: {
    partitions?: number;
    prefix?: string;
    replicationFactor?: number;
    /** Records buffered per partition before its consumer pauses (default 20,000). */
    bufferRecords?: number;
    /** The client to use (tests pass a fake); default `new Kafka(...)` for `brokers`. */
    client?: KafkaClient;
  } = {},
): EventLog {
  if (brokers.length === 0 || brokers.some((b) => !/^[^\s:]+:\d+$/.test(b)))
    throw new Error(
      `Kafka log: brokers '${brokers.join(',')}' must be a comma-separated list of host:port (--kafka-brokers, env KAFKA_BROKERS)`,
    );
  const prefix = opts.prefix ?? 'tessera';
  if (!/^[A-Za-z0-9-]+$/.test(prefix))
    throw new Error(`Kafka log prefix '${prefix}' is not allowed: use letters, digits and '-'`);
  const client =
    opts.client ??
    new Kafka({
      brokers: [...brokers],
      clientId: 'tessera',
      logLevel: logLevel.NOTHING, // errors reach the caller with the broker list and the fix instead
      connectionTimeout: 3000,
      retry: { retries: 3, initialRetryTime: 200 },
    });
  return new KafkaLog(
    client,
    brokers.join(','),
    opts.partitions ?? 1,
    prefix,
    opts.replicationFactor,
    opts.bufferRecords ?? 20_000,
  );
}

/** The part of kafkajs' `Kafka` this log uses (so a fake can stand in for tests). */
export interface KafkaClient {
  producer(config: ProducerConfig): KafkaProducer;
  consumer(config: ConsumerConfig): KafkaConsumer;
  admin(): KafkaAdmin;
}
export interface KafkaProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
}
export interface KafkaConsumer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  subscribe(subscription: ConsumerSubscribeTopics): Promise<void>;
  run(config: ConsumerRunConfig): Promise<void>;
  seek(target: TopicPartitionOffset): void;
  pause(topics: { topic: string; partitions?: number[] }[]): void;
  resume(topics: { topic: string; partitions?: number[] }[]): void;
  on(event: 'consumer.crash', listener: (event: ConsumerCrashEvent) => void): unknown;
}
export interface KafkaAdmin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  createTopics(options: { topics: ITopicConfig[]; waitForLeaders?: boolean }): Promise<boolean>;
  fetchTopicMetadata(options: { topics: string[] }): Promise<{ topics: ITopicMetadata[] }>;
  fetchTopicOffsets(
    topic: string,
  ): Promise<{ partition: number; offset: string; high: string; low: string }[]>;
}

/** How long a read waits for the consumer to deliver records the high watermark says exist. */
const DELIVERY_TIMEOUT_MS = 30_000;

class KafkaLog implements EventLog {
  readonly kind = 'kafka' as const;
  private readonly admin: Promise<KafkaAdmin>;
  private producer: Promise<KafkaProducer> | null = null;
  /** Topics known to exist with enough partitions. */
  private readonly topics = new Map<string, Promise<void>>();
  private readonly readers = new Map<string, Promise<TopicReader>>();

  constructor(
    private readonly client: KafkaClient,
    private readonly brokers: string,
    readonly partitions: number,
    private readonly prefix: string,
    private readonly replicationFactor: number | undefined,
    private readonly bufferRecords: number,
  ) {
    this.admin = this.connected(client.admin());
    this.admin.catch(() => {}); // reported on first use
  }

  private async connected<T extends { connect(): Promise<void> }>(c: T): Promise<T> {
    try {
      await c.connect();
      return c;
    } catch (cause) {
      throw new Error(
        `Kafka log: cannot connect to brokers ${this.brokers}: ${(cause as Error).message}. Start Kafka, or point --kafka-brokers (env KAFKA_BROKERS) at running brokers.`,
        { cause },
      );
    }
  }

  private fail(what: string, cause: unknown): Error {
    if ((cause as Error).message.startsWith('Kafka log')) return cause as Error;
    return new Error(
      `Kafka log at ${this.brokers}: ${what} failed: ${(cause as Error).message}. Check that the Kafka brokers are running and reachable.`,
      { cause },
    );
  }

  private kafkaTopic(topic: string): string {
    return `${this.prefix}.${logStreamToken(topic)}`;
  }

  /** Creates topic `name` with `partitions` partitions unless it exists; resolves to its partition count. */
  private async createTopic(name: string): Promise<number> {
    const admin = await this.admin;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: name,
          numPartitions: this.partitions,
          ...(this.replicationFactor ? { replicationFactor: this.replicationFactor } : {}),
        },
      ],
    });
    return (await admin.fetchTopicMetadata({ topics: [name] })).topics[0]?.partitions.length ?? 0;
  }

  /** Creates the topic with `partitions` partitions unless it exists; checks an existing one has enough. */
  private ensureTopic(topic: string): Promise<void> {
    let done = this.topics.get(topic);
    if (!done) {
      const name = this.kafkaTopic(topic);
      done = (async () => {
        const have = await this.createTopic(name);
        if (have < this.partitions)
          throw new Error(
            `Kafka log: topic '${name}' has ${have} partition(s) but --partitions is ${this.partitions}. Add partitions to the topic (kafka-topics --alter) or lower --partitions.`,
          );
      })();
      this.topics.set(topic, done);
      done.catch(() => this.topics.delete(topic)); // retry on next use
    }
    return done;
  }

  /**
   * Checks `partitions` against the count the log records (EventLog): the partition count of the topic
   * `<prefix>._partitions` (`_p` never occurs in a token, so no event topic is named so), which the first
   * process to check creates, empty, with its own count: topic creation is atomic, so of processes starting
   * at once with different counts exactly one records its own. (Event topics cannot record it: one created
   * beforehand may have more partitions, and a process with another count uses other topics.)
   */
  async checkPartitionCount(): Promise<void> {
    const name = `${this.prefix}._partitions`;
    let recorded: number;
    try {
      recorded = await this.createTopic(name);
    } catch (cause) {
      throw new LogUnavailableError(this.fail('checking its partition count', cause).message, { cause });
    }
    checkRecordedPartitions(
      `Kafka log at ${this.brokers}`,
      `the partition count of topic '${name}'`,
      String(recorded),
      this.partitions,
      `delete the topic (kafka-topics --delete --topic ${name})`,
    );
  }

  async append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult> {
    // kafkajs' idempotent producer dedupes its own retries within a session only, not a caller's resend.
    if (opts?.idempotencyKey !== undefined) throw new IdempotencyUnsupportedError('Kafka');
    if (entries.length === 0) return [];
    const counts = new Map<number, number>();
    const messages = entries.map((e) => {
      const partition = partitionOf(e.partitionKey, this.partitions);
      counts.set(partition, (counts.get(partition) ?? 0) + 1);
      return { partition, value: JSON.stringify(e.event) };
    });
    let meta: RecordMetadata[];
    try {
      await this.ensureTopic(topic);
      this.producer ??= this.connected(
        this.client.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false }),
      );
      this.producer.catch(() => (this.producer = null));
      meta = await (await this.producer).send({ topic: this.kafkaTopic(topic), acks: -1, messages });
    } catch (cause) {
      throw this.fail(`append to topic '${topic}'`, cause);
    }
    return [...counts].map(([partition, count]) => {
      const m = meta.find((x) => x.partition === partition);
      if (!m || m.errorCode !== 0 || m.baseOffset === undefined)
        throw this.fail(
          `append to topic '${topic}'`,
          new Error(`no offset acknowledged for partition ${partition} (error code ${m?.errorCode})`),
        );
      return { partition, first: Number(m.baseOffset), count };
    });
  }

  async read(topic: string, partition: number, from: number, max: number, waitMs = 0): Promise<LogRecord[]> {
    if (!Number.isSafeInteger(from) || from < 0) throw new Error(`Kafka log read: bad offset ${from}`);
    try {
      await this.ensureTopic(topic);
      let reader = this.readers.get(topic);
      if (!reader) {
        reader = TopicReader.start(
          this.client,
          this.kafkaTopic(topic),
          this.partitions,
          this.bufferRecords,
          (n) => this.connected(n),
        );
        this.readers.set(topic, reader);
        reader.catch(() => this.readers.delete(topic));
      }
      const r = await reader;
      return await r.read(partition, from, max, waitMs, () => this.highWatermark(topic, partition));
    } catch (cause) {
      if ((cause as { readerDead?: boolean }).readerDead) {
        const dead = this.readers.get(topic);
        this.readers.delete(topic); // the next read starts a fresh consumer at its offset
        await (await dead)?.stop();
      }
      throw this.fail(`read of topic '${topic}' partition ${partition} from offset ${from}`, cause);
    }
  }

  private async highWatermark(topic: string, partition: number): Promise<number> {
    const offsets = await (await this.admin).fetchTopicOffsets(this.kafkaTopic(topic));
    return Number(offsets.find((o) => o.partition === partition)?.high ?? 0);
  }

  async endOffsets(topic: string): Promise<number[]> {
    try {
      // Ensuring the topic first: asking a broker with auto.create.topics.enable about a missing topic would
      // create it with the broker's default partition count.
      await this.ensureTopic(topic);
      const offsets = await (await this.admin).fetchTopicOffsets(this.kafkaTopic(topic));
      return Array.from({ length: this.partitions }, (_, p) =>
        Number(offsets.find((o) => o.partition === p)?.high ?? 0),
      );
    } catch (cause) {
      throw this.fail(`endOffsets of topic '${topic}'`, cause);
    }
  }

  async close(): Promise<void> {
    const readers = await Promise.allSettled([...this.readers.values()]);
    this.readers.clear();
    await Promise.all(readers.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    const producer = await this.producer?.catch(() => null);
    await producer?.disconnect().catch(() => {});
    const admin = await this.admin.catch(() => null);
    await admin?.disconnect().catch(() => {});
  }
}

interface PartitionState {
  /** Whether a reader has positioned this partition (it is paused until then). */
  active: boolean;
  paused: boolean;
  buffer: LogRecord[];
  /** Offset of the next record to buffer (= buffer end). */
  next: number;
  /** Highest high watermark (end offset) seen in fetched batches. */
  highWatermark: number;
  error: Error | null;
  wake: (() => void) | null;
  queue: Promise<unknown>;
}

/** One consumer for all partitions of one topic; see invariant 3. */
class TopicReader {
  private readonly parts: PartitionState[];
  private crashed: Error | null = null;

  private constructor(
    private readonly consumer: KafkaConsumer,
    private readonly topic: string,
    partitions: number,
    private readonly bufferRecords: number,
  ) {
    this.parts = Array.from({ length: partitions }, () => ({
      active: false,
      paused: true,
      buffer: [],
      next: 0,
      highWatermark: 0,
      error: null,
      wake: null,
      queue: Promise.resolve(),
    }));
  }

  static async start(
    client: KafkaClient,
    topic: string,
    partitions: number,
    bufferRecords: number,
    connect: (c: KafkaConsumer) => Promise<KafkaConsumer>,
  ): Promise<TopicReader> {
    const consumer = await connect(
      client.consumer({ groupId: `tessera-reader-${randomUUID()}`, allowAutoTopicCreation: false }),
    );
    const reader = new TopicReader(consumer, topic, partitions, bufferRecords);
    // Even a consumer that restarts itself loses its seeks and pauses: replace it (the next read re-seeks).
    consumer.on('consumer.crash', (e) => {
      reader.crashed = e.payload.error;
      for (const p of reader.parts) p.wake?.();
    });
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        // A batch fetched before a seek that has not been applied yet is stale: its offsets may be anywhere.
        eachBatch: async ({ batch, isStale }) => (isStale() ? undefined : reader.onBatch(batch)),
      });
    } catch (e) {
      await reader.stop();
      throw e;
    }
    consumer.pause([{ topic, partitions: reader.parts.map((_, i) => i) }]);
    return reader;
  }

  private onBatch(batch: {
    partition: number;
    highWatermark: string;
    messages: { offset: string; value: Buffer | null }[];
  }): void {
    const st = this.parts[batch.partition];
    if (!st?.active || st.error) return; // not positioned by a reader yet: it will seek
    st.highWatermark = Math.max(st.highWatermark, Number(batch.highWatermark));
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (offset < st.next) continue; // already buffered, or fetched before the last seek
      if (offset > st.next) {
        st.error = new Error(
          `offsets ${st.next}..${offset - 1} of topic '${this.topic}' partition ${batch.partition} are missing (a compacted or transactional topic, or removed by retention before they were applied); use a plain topic with enough retention, and rebuild the affected tiles with tessera upload`,
        );
        break;
      }
      // A record without a value or JSON (not written by Tessera) is counted and skipped by the worker.
      st.buffer.push({ offset, event: decodeLogEvent(m.value === null ? null : m.value.toString()) });
      st.next++;
    }
    if (st.buffer.length >= this.bufferRecords && !st.paused) {
      this.consumer.pause([{ topic: this.topic, partitions: [batch.partition] }]);
      st.paused = true;
    }
    st.wake?.();
  }

  /** Reads of one partition run one at a time (they share its buffer and wake-up). */
  read(
    partition: number,
    from: number,
    max: number,
    waitMs: number,
    highWatermark: () => Promise<number>,
  ): Promise<LogRecord[]> {
    const st = this.parts[partition];
    if (!st) throw new Error(`partition ${partition} does not exist (the log has ${this.parts.length})`);
    const run = st.queue.then(() => this.readNow(partition, st, from, max, waitMs, highWatermark));
    st.queue = run.catch(() => {});
    return run;
  }

  private async readNow(
    partition: number,
    st: PartitionState,
    from: number,
    max: number,
    waitMs: number,
    highWatermark: () => Promise<number>,
  ): Promise<LogRecord[]> {
    const position = st.buffer.length > 0 ? st.buffer[0].offset : st.next;
    const seek = !st.active || position !== from;
    if (seek) {
      this.consumer.seek({ topic: this.topic, partition, offset: String(from) });
      Object.assign(st, { active: true, buffer: [], next: from, error: null });
      this.resume(partition, st);
    }
    // Return min(max, records known to exist) like the other logs, so workers get full batches.
    // The end offset is asked of the brokers only after a seek; later the consumer's batches report it (an
    // idle partition would otherwise cost a request per poll).
    let end = st.highWatermark;
    if (seek) {
      end = Math.max(end, await highWatermark());
      if (from > end) {
        st.active = false; // every retry checks again
        throw new Error(
          `offset ${from} is past the end of partition ${partition} (${end} records): the topic was recreated after this offset was committed. Reset the worker's state (the online store) or restore the topic.`,
        );
      }
    }
    const want = Math.min(max, end - from);
    const enough = () => st.buffer.length >= Math.max(want, 1) || st.error !== null || this.crashed !== null;
    await this.waitFor(st, enough, want > st.buffer.length ? DELIVERY_TIMEOUT_MS : waitMs);
    if (st.buffer.length === 0 && want > 0 && !st.error && !this.crashed)
      throw Object.assign(
        new Error(
          `the consumer delivered nothing within ${DELIVERY_TIMEOUT_MS} ms though ${want} record(s) exist`,
        ),
        { readerDead: true },
      );
    if (this.crashed)
      throw Object.assign(new Error(`consumer crashed: ${this.crashed.message}`), { readerDead: true });
    if (st.buffer.length === 0 && st.error) {
      st.active = false; // a retry re-seeks
      throw st.error;
    }
    const out = st.buffer.splice(0, max);
    this.resume(partition, st);
    return out;
  }

  private async waitFor(st: PartitionState, done: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done() && Date.now() < deadline)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        st.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    st.wake = null;
  }

  private resume(partition: number, st: PartitionState): void {
    if (st.paused && st.buffer.length < this.bufferRecords) {
      this.consumer.resume([{ topic: this.topic, partitions: [partition] }]);
      st.paused = false;
    }
  }

  async stop(): Promise<void> {
    this.crashed ??= new Error('the log was closed');
    for (const p of this.parts) p.wake?.(); // reads waiting for records end now
    await this.consumer.disconnect().catch(() => {});
  }
}
