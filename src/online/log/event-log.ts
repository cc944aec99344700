import type { Row } from '../../define/types.ts';

/**
 * A partitioned, durable, append-only event log: embedded file log, Redis Streams, NATS JetStream or Kafka.
 *
 * 1. A log holds topics (see topics.ts: one per source, or per source × key columns when partitioned), each
 *    split into `partitions` partitions; an entry goes to `partitionOf(partitionKey, partitions)`.
 * 2. Offsets are dense per (topic, partition): 0, 1, 2, … in append order. Stream workers use the offset as
 *    the event's `seq` (source order, which breaks ties in `ts`) and commit it with their tiles.
 * 3. Entries appended by ingest (ingest.ts) are validated and normalized rows (the time column is epoch ms).
 *    Other producers writing to the broker directly may write anything: adapters decode records with
 *    `decodeLogEvent` (log-event-check.ts), which never throws, and the stream worker checks every event,
 *    counting and skipping those that are not valid events of the source (worker.ts invariant 10), so one bad
 *    record cannot stop its partition.
 * 4. `append` resolves only once the entries are durable (fsync'ed / acknowledged by Redis, JetStream or
 *    the Kafka in-sync replicas). An append that fails after it was sent (no reply within the log's
 *    timeout, connection lost) may still be applied: the Redis Streams and NATS adapters reject it with
 *    `AppendOutcomeUnknownError` (log-unavailable.ts; 503 on ingest), and one that fails before anything
 *    was sent with `LogUnavailableError` or a plain error (nothing appended). Appends are at-least-once:
 *    no adapter resends one by itself, but a caller resending an unknown outcome may duplicate it, unless
 *    both sends carry the same `idempotencyKey` (`AppendOptions`), which makes the resend safe.
 * 5. Any offset can be read again: workers keep their offsets in the online store (with their tiles), never
 *    in the log, so a restarted worker reads from its last committed offset.
 */
export interface EventLog {
  readonly kind: 'file' | 'redis' | 'nats' | 'kafka';
  readonly partitions: number;
  /**
   * Whether `AppendOptions.idempotencyKey` is honoured (file, Redis Streams, NATS). Ingest refuses a key
   * for a log without it (Kafka, wrappers) rather than appending at-least-once.
   */
  readonly idempotentAppends?: boolean;
  /**
   * Appends entries; resolves with the offset ranges written, at least one per partition touched (several
   * when another producer's appends interleaved with this one's). With `opts.idempotencyKey`, see
   * `AppendOptions`.
   */
  append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult>;
  /**
   * Appends to several topics at once, all-or-nothing even across a crash, where the log can (the file log;
   * see file-log.ts invariant 5). Logs without it get one `append` per topic (ingest.ts): a failure part-way
   * may leave a batch in some topics only, like any at-least-once producer.
   */
  appendTopics?(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts?: AppendOptions,
  ): Promise<AppendResult[]>;
  /**
   * For logs without `appendTopics`, called by ingest before the first of the per-topic appends of a keyed
   * batch: rejects if a topic cannot take it (`IdempotencyConflictError`: the key holds another batch;
   * `IdempotencyCapacityError`: the log's setup cannot dedupe it), so that a lasting refusal never leaves
   * the batch in some topics only. Where the log can, it claims the key for each topic's part. Appends
   * nothing; repeating it is harmless.
   */
  checkKeyedAppend?(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts: AppendOptions,
  ): Promise<void>;
  /**
   * Which of `keys` the log holds a record of, within its dedupe window, for a keyed batch to `topics` (the
   * batch's topics in order, as ingest sends them): a read, claiming and appending nothing. Every log with
   * `idempotentAppends` has it. A record says a batch was sent under the key, not that every event of it
   * is stored (a resend with the key completes it).
   */
  heldIdempotencyKeys?(topics: readonly string[], keys: readonly string[]): Promise<boolean[]>;
  /**
   * Compares `partitions` with the count the log records for its deployment, recording it when there is none
   * yet (the log's first user, or a log from before the record existed): rejects with
   * `PartitionCountMismatchError` (partition-record.ts) when they differ, `LogUnavailableError` when the log
   * does not answer. Shared logs (Redis Streams, NATS, Kafka) have it, and every process appending to or reading
   * one calls it at start (`tessera serve`, `tessera stream`), since a process with another count would
   * route events to partitions no worker reads. The file log checks its count when it opens instead.
   */
  checkPartitionCount?(): Promise<void>;
  /**
   * Finishes an append a crash interrupted (the file log's journal). The appending process calls it at
   * start-up, before serving ingest; others need not.
   */
  recover?(): Promise<void>;
  /**
   * Reads up to `max` records of one partition starting at offset `from` (inclusive). When none are
   * available yet and `waitMs > 0`, waits up to that long for new ones (returns [] on timeout).
   */
  read(topic: string, partition: number, from: number, max: number, waitMs?: number): Promise<LogRecord[]>;
  /** The next offset to be written in each partition (= number of records), for lag reporting. */
  endOffsets(topic: string): Promise<number[]>;
  close(): Promise<void>;
}

export interface LogEntry {
  /** Value hashed to choose the partition (the entity key of the topic's key columns). */
  readonly partitionKey: string;
  readonly event: Row;
}

export interface LogRecord {
  readonly offset: number;
  readonly event: Row;
}

/**
 * Per partition: first offset written and count, for the partitions an append touched. `replayed`: the
 * range was appended earlier under the same idempotency key (these are its original offsets), not now.
 */
export type AppendResult = { partition: number; first: number; count: number; replayed?: true }[];

/**
 * Per-append options. `idempotencyKey` (idempotency.ts): the entries of each (topic, partition) are appended
 * at most once per key within the log's dedupe window, atomically with the append in the log itself; a
 * retry with the same key and entries appends only the (topic, partition)s a failed attempt left out and
 * reports the others' original offsets as `replayed`; one with other entries rejects with
 * `IdempotencyConflictError` (422) where the log can tell. Only for logs with `idempotentAppends`.
 */
export interface AppendOptions {
  readonly idempotencyKey?: string;
}
