import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { openRedisStore } from '../../src/online/redis-store.ts';
import { isUnavailable } from '../../src/serve/worker-start.ts';
import { startRedis } from '../support/servers.ts';

/**
 * A Redis URL whose database number the server does not have (redis://host:port/99, default 16 databases):
 * ioredis only emits the refused SELECT and runs every command on database 0, so the store used to start
 * ready and write there. Its PING and first read now fail, naming the URL, as an error waiting cannot fix.
 * So does the Redis Streams log's every operation, which used to append to database 0.
 */
const redis = await startRedis();
afterAll(() => redis?.stop());

describe.skipIf(!redis)('Redis store on a database number out of range', () => {
  it('fails its PING and its first operation, naming the URL; not as unavailable', async () => {
    const url = `${redis!.url}/99`;
    const store = openRedisStore(url);
    try {
      const ping = store.ping!();
      await expect(ping).rejects.toThrow(
        `Redis store at ${url}: Redis refused to select the database number in the URL (ERR DB index is out of range)`,
      );
      expect(isUnavailable(await ping.catch((e: unknown) => e))).toBe(false);
      await expect(store.readOffsets()).rejects.toThrow(/refused to select the database number/);
    } finally {
      await store.close();
    }
  });
  it('a database number in range works', async () => {
    const store = openRedisStore(`${redis!.url}/3`);
    try {
      await store.ping!();
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(!redis)('Redis Streams log on a database number out of range', () => {
  const event = { partitionKey: 'u1', event: { user_id: 'u1', amount: 1, ts: 1 } };
  it('refuses to append, read or report its end, naming the URL and database; writes nothing', async () => {
    const url = `${redis!.url}/99`;
    const prefix = `selectdb${process.pid}:`;
    const log = openRedisStreamLog(url, { prefix });
    const db0 = new Redis(redis!.url);
    try {
      const refused = `Redis Streams log at ${url}: Redis refused to select the database number in the URL (ERR DB index is out of range); its commands would go to database 0, not 99. Use a database number the server has`;
      const append = log.append('payments', [event]);
      await expect(append).rejects.toThrow(refused);
      expect(isUnavailable(await append.catch((e: unknown) => e))).toBe(false);
      await expect(log.appendTopics!([{ topic: 'payments', entries: [event] }])).rejects.toThrow(refused);
      await expect(log.append('payments', [event], { idempotencyKey: 'k1' })).rejects.toThrow(refused);
      await expect(log.read('payments', 0, 0, 10)).rejects.toThrow(refused);
      await expect(log.endOffsets('payments')).rejects.toThrow(refused);
      expect(await db0.keys(`${prefix}*`)).toEqual([]);
    } finally {
      db0.disconnect();
      await log.close();
    }
  });
  it('a database number in range works, apart from database 0', async () => {
    const prefix = `selectdb3-${process.pid}:`;
    const log = openRedisStreamLog(`${redis!.url}/3`, { prefix });
    const db0 = new Redis(redis!.url);
    try {
      await log.append('payments', [event]);
      expect(await log.endOffsets('payments')).toEqual([1]);
      expect((await log.read('payments', 0, 0, 10)).map((r) => r.offset)).toEqual([0]);
      expect(await db0.keys(`${prefix}*`)).toEqual([]);
    } finally {
      db0.disconnect();
      await log.close();
    }
  });
});
