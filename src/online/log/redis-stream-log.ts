import type { Row } from '../../define/types.ts';
import { openRedisClient, untilReady, type RedisClient } from '../redis-client.ts';
import type { AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import { partitionOf } from './partition.ts';

/**
 * Redis Streams log. Each (topic, partition) is the stream `<prefix>log:{<topic>:<p>}` plus a counter key in
 * the same hash slot. Offsets are dense numbers: the entry with offset `n` has the explicit stream ID
 * `0-(n+1)` (IDs must exceed 0-0), assigned by a Lua script that bumps the counter and XADDs atomically, so
 * concurrent producers still get dense, monotonic offsets and `seq` = offset is a plain number. Each entry
 * has one field `e` holding the event's JSON. Reads are XRANGE from `0-(from+1)`; waiting uses XREAD BLOCK.
 * Every command touches one (topic, partition), i.e. one hash slot, so the log runs on a Redis Cluster too
 * (`redis+cluster://host:port,...`): an append sends one script per partition, concurrently.
 *
 * @example
 * const log = openRedisStreamLog('redis://127.0.0.1:6379', { partitions: 4 });
 */
export function openRedisStreamLog(
  url: string,
  opts: { partitions?: number; prefix?: string } = {},
): EventLog {
  return new RedisStreamLog(openRedisClient(url), url, opts.partitions ?? 1, opts.prefix ?? 'tessera:');
}

const APPEND = `
local n = #ARGV
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n
for i = 1, n do
  redis.call('XADD', KEYS[1], '0-' .. (first + i), 'e', ARGV[i])
end
return first`;

class RedisStreamLog implements EventLog {
  readonly kind = 'redis' as const;
  /** Separate connection for XREAD BLOCK, which would otherwise stall every other command. */
  private blocking: RedisClient | null = null;
  private blockingBusy = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly url: string,
    readonly partitions: number,
    private readonly prefix: string,
  ) {
    redis.defineCommand('tesseraAppend', { numberOfKeys: 2, lua: APPEND });
  }

  private stream(topic: string, p: number): string {
    return `${this.prefix}log:{${topic}:${p}}`;
  }
  private counter(topic: string, p: number): string {
    return `${this.prefix}log:{${topic}:${p}}:next`;
  }

  private fail(what: string, cause: unknown): Error {
    return new Error(
      `Redis Streams log at ${this.url}: ${what} failed: ${(cause as Error).message}. Check that Redis is running and reachable.`,
      { cause },
    );
  }

  async append(topic: string, entries: readonly LogEntry[]): Promise<AppendResult> {
    const byPartition: string[][] = Array.from({ length: this.partitions }, () => []);
    for (const e of entries)
      byPartition[partitionOf(e.partitionKey, this.partitions)].push(JSON.stringify(e.event));
    const touched: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (byPartition[p].length > 0) touched.push(p);
    if (touched.length === 0) return [];
    const redis = this.redis as RedisClient & {
      tesseraAppend(stream: string, counter: string, ...events: string[]): Promise<number>;
    };
    try {
      await untilReady(redis);
      // One command per partition (its own slot on a Cluster), all in flight at once.
      const firsts = await Promise.all(
        touched.map((p) =>
          redis.tesseraAppend(this.stream(topic, p), this.counter(topic, p), ...byPartition[p]),
        ),
      );
      return touched.map((p, i) => ({
        partition: p,
        first: Number(firsts[i]),
        count: byPartition[p].length,
      }));
    } catch (cause) {
      throw this.fail('append', cause);
    }
  }

  async read(topic: string, partition: number, from: number, max: number, waitMs = 0): Promise<LogRecord[]> {
    const key = this.stream(topic, partition);
    let raw: [string, string[]][];
    try {
      await untilReady(this.redis);
      raw = await this.redis.xrange(key, `0-${from + 1}`, '+', 'COUNT', max);
      if (raw.length === 0 && waitMs > 0 && !this.blockingBusy) {
        const blocking = (this.blocking ??= openRedisClient(this.url));
        this.blockingBusy = true;
        try {
          await untilReady(blocking);
          const r = await blocking.xread('COUNT', max, 'BLOCK', waitMs, 'STREAMS', key, `0-${from}`);
          raw = r ? (r[0][1] as [string, string[]][]) : [];
        } finally {
          this.blockingBusy = false;
        }
      }
    } catch (cause) {
      throw this.fail('read', cause);
    }
    const out: LogRecord[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const [id, fields] = raw[i];
      out[i] = { offset: Number(id.slice(2)) - 1, event: JSON.parse(fields[1]) as Row };
    }
    return out;
  }

  async endOffsets(topic: string): Promise<number[]> {
    try {
      await untilReady(this.redis);
      // One GET per partition, not MGET: on Redis Cluster the partitions' keys live in different slots.
      const ends = await Promise.all(
        Array.from({ length: this.partitions }, (_, p) => this.redis.get(this.counter(topic, p))),
      );
      return ends.map((v) => (v === null ? 0 : Number(v)));
    } catch (cause) {
      throw this.fail('endOffsets', cause);
    }
  }

  async close(): Promise<void> {
    this.blocking?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
