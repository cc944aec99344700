import { afterAll, describe, expect, it } from 'vitest';
import { openRedisStore } from '../../src/online/redis-store.ts';
import { isUnavailable } from '../../src/serve/worker-start.ts';
import { startRedis } from '../support/servers.ts';

/**
 * A Redis URL whose database number the server does not have (redis://host:port/99, default 16 databases):
 * ioredis only emits the refused SELECT and runs every command on database 0, so the store used to start
 * ready and write there. Its PING and first read now fail, naming the URL, as an error waiting cannot fix.
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
