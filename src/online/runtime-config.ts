import { join } from 'node:path';
import { parseDuration } from '../aggregate/window.ts';
import type { EventLog } from './log/event-log.ts';
import { openFileLog } from './log/file-log.ts';
import { openKafkaLog } from './log/kafka-log.ts';
import { openNatsLog } from './log/nats-log.ts';
import { openRedisStreamLog } from './log/redis-stream-log.ts';
import { openStore } from './open-store.ts';
import type { OnlineStore } from './store.ts';

/** Event log kinds (`--log`): the embedded file log, Redis Streams, NATS JetStream, Kafka. */
export const LOG_KINDS = ['embedded', 'redis', 'nats', 'kafka'] as const;
export type LogKind = (typeof LOG_KINDS)[number];

/**
 * Where the online state lives; the CLI's `--store/--log/--data-dir/--redis/--nats-url/--partitions`
 * and `--kafka-brokers` options.
 */
export interface OnlineConfig {
  readonly store: 'lmdb' | 'redis';
  readonly log?: LogKind;
  /** LMDB store at `<dataDir>/store`, embedded log at `<dataDir>/log` (default `.tessera`). */
  readonly dataDir?: string;
  /**
   * Default env REDIS_URL or redis://127.0.0.1:6379; `redis+cluster://host:port[,host:port...]` (seed
   * nodes) selects Redis Cluster.
   */
  readonly redisUrl?: string;
  readonly redisPrefix?: string;
  /** NATS server(s) for `log: 'nats'`; default env NATS_URL or nats://127.0.0.1:4222. */
  readonly natsUrl?: string;
  /** Kafka brokers (host:port) for `log: 'kafka'`; default env KAFKA_BROKERS (comma-separated) or 127.0.0.1:9092. */
  readonly kafkaBrokers?: readonly string[];
  /**
   * Log partitions (one stream worker each). A Redis store's first write records it as the store's
   * partition count, which stream workers must then run a multiple of (redis-store.ts).
   */
  readonly partitions?: number;
  /**
   * Workers keep fetches exact this long before the newest event (`--exact-history`, default 1h; see
   * worker.ts invariant 6 and the README's "exactness of historical fetches").
   */
  readonly exactHistoryMs?: number;
  /**
   * The embedded log remembers at most this many idempotency keys (default env TESSERA_IDEMPOTENCY_MAX_KEYS,
   * else 100,000; file-log.ts invariant 8).
   */
  readonly idempotencyMaxKeys?: number;
}

/**
 * Parses `--exact-history`: a duration like `'1h'` or `'7d'`, or `'0'` (exact only at the watermark).
 *
 * @example
 * parseExactHistory('2h'); // 7_200_000
 */
export function parseExactHistory(text: string): number {
  if (text.trim() === '0') return 0;
  try {
    return parseDuration(text);
  } catch (e) {
    throw new Error(`--exact-history: ${(e as Error).message}, or 0`);
  }
}

/**
 * Opens the configured store (and log), with the same layout `tessera serve` uses, so `upload`, `stream`,
 * `serve` and `fetch` pointed at the same `--data-dir` or Redis share state.
 *
 * @example
 * const store = openConfiguredStore({ store: 'lmdb', dataDir: '.tessera' }); // .tessera/store
 */
export function openConfiguredStore(c: OnlineConfig): OnlineStore {
  const url = c.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (c.store === 'lmdb') return openStore({ kind: 'lmdb', path: join(c.dataDir ?? '.tessera', 'store') });
  return openStore({
    kind: 'redis',
    url,
    ...(c.redisPrefix ? { prefix: c.redisPrefix } : {}),
    ...(c.partitions !== undefined ? { partitions: c.partitions } : {}),
  });
}

/** Opens the configured event log (`<dataDir>/log`, Redis Streams, NATS JetStream or Kafka). */
export function openConfiguredLog(c: OnlineConfig): EventLog {
  const partitions = c.partitions ?? 1;
  switch (c.log ?? 'embedded') {
    case 'embedded':
      return openFileLog(join(c.dataDir ?? '.tessera', 'log'), {
        partitions,
        ...(c.idempotencyMaxKeys !== undefined ? { idempotencyMaxKeys: c.idempotencyMaxKeys } : {}),
      });
    case 'redis': {
      const url = c.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      return openRedisStreamLog(url, { partitions, ...(c.redisPrefix ? { prefix: c.redisPrefix } : {}) });
    }
    case 'nats':
      return openNatsLog(c.natsUrl ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222', { partitions });
    case 'kafka':
      return openKafkaLog(c.kafkaBrokers ?? parseBrokers(process.env.KAFKA_BROKERS ?? '127.0.0.1:9092'), {
        partitions,
      });
  }
}

/**
 * Parses `--kafka-brokers` / env KAFKA_BROKERS: comma-separated `host:port` entries.
 *
 * @example
 * parseBrokers('k1:9092, k2:9092'); // ['k1:9092', 'k2:9092']
 */
export function parseBrokers(text: string): string[] {
  return text
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}
