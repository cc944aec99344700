import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { openRedisClient, redisErrorText } from '../../src/online/redis-client.ts';
import { openRedisStore } from '../../src/online/redis-store.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { isUnavailable } from '../../src/serve/worker-start.ts';
import { tempDir } from '../offline/support.ts';
import { freePort, startRedis, startRedisCluster } from '../support/servers.ts';

/**
 * A Redis Cluster URL that cannot work (a wrong or missing password, a host name that does not resolve):
 * ioredis only says "Failed to refresh slots cache" and retries, so the store, the log and `tessera serve`
 * (which retried starting its workers forever) used to say "Cluster not ready" and no more. They now name
 * the nodes' last error, and serve fails at start on a password, which waiting cannot fix.
 */
const cluster = await startRedisCluster(3, { password: 'right' });
const repo = await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
  checkFiles: false,
});
const dirs: string[] = [];
afterAll(async () => {
  await cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The cluster's URL with `auth` (`:password@`, or '' for none). */
const withAuth = (auth: string) => cluster!.url.replace('redis+cluster://', `redis+cluster://${auth}`);

describe.skipIf(!cluster)('Redis Cluster with a wrong or missing password', () => {
  it("the store's PING names WRONGPASS and the node that said it", async () => {
    const store = openRedisStore(withAuth(':wrong@'));
    try {
      const ping = store.ping!();
      await expect(ping).rejects.toThrow(
        /PING failed: Redis Cluster not ready within \d+ ms \(client \w+\): WRONGPASS invalid username-password pair[^.]* \(last error, from 127\.0\.0\.1:\d+\)\./,
      );
    } finally {
      await store.close();
    }
  });
  it('without a password: NOAUTH', async () => {
    const store = openRedisStore(withAuth(''));
    try {
      await expect(store.ping!()).rejects.toThrow(/NOAUTH Authentication required \(last error, from /);
    } finally {
      await store.close();
    }
  });
  it('a TLS URL for nodes without TLS: the handshake failure, and what it may mean', async () => {
    const store = openRedisStore(withAuth(':right@').replace('redis+cluster:', 'rediss+cluster:'));
    try {
      // The handshake fails once the 1 s wait for the slot map runs out: room for a loaded machine.
      await expect(store.ping!(4000)).rejects.toThrow(
        /not ready within \d+ ms \(client \w+\): .*\(last error, from 127\.0\.0\.1:\d+; a node without TLS does not answer a TLS handshake: use redis\+cluster:\/\/ for plain connections\)/,
      );
    } finally {
      await store.close();
    }
  });
  it('the right password works', async () => {
    const store = openRedisStore(withAuth(':right@'));
    try {
      await store.ping!();
    } finally {
      await store.close();
    }
  });
  it("the log's append names WRONGPASS; nothing appended", async () => {
    const log = openRedisStreamLog(withAuth(':wrong@'), { commandTimeoutMs: 1000 });
    try {
      await expect(
        log.append('payments', [{ partitionKey: 'u1', event: { user_id: 'u1', amount: 1, ts: 1 } }]),
      ).rejects.toThrow(/failed: Redis Cluster not ready .*WRONGPASS.*; nothing was appended/);
    } finally {
      await log.close();
    }
  });
  it("redisErrorText of ioredis' ClusterAllFailedError gives its last node error", async () => {
    const client = openRedisClient(withAuth(':wrong@'));
    try {
      const failed = await new Promise<Error>((resolve) => client.on('error', resolve));
      expect(failed.name).toBe('ClusterAllFailedError');
      expect(failed.message).toBe('Failed to refresh slots cache.');
      expect(redisErrorText(failed)).toMatch(
        /^Redis Cluster not reachable: WRONGPASS invalid username-password/,
      );
    } finally {
      client.disconnect();
    }
  });
  it('tessera serve fails to start, naming the cause and the fix (waiting would not help)', async () => {
    const d = tempDir('tessera-cluster-wrongpass-');
    dirs.push(d);
    const t0 = Date.now();
    await expect(
      startEmbedded({
        repo,
        dataDir: join(d, 'state'),
        port: 0,
        store: 'redis',
        redisUrl: withAuth(':wrong@'),
        workerThreads: false,
      }),
    ).rejects.toThrow(
      /WRONGPASS.*\(last error, from 127\.0\.0\.1:\d+\)\. Redis answered with an error, so waiting will not help: fix the user and password in --redis/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 30_000);
});

describe.skipIf(!cluster)('a Redis Cluster URL naming a single Redis', () => {
  it('tessera serve fails to start, saying to use redis://', async () => {
    const single = (await startRedis())!;
    const d = tempDir('tessera-cluster-single-');
    dirs.push(d);
    try {
      await expect(
        startEmbedded({
          repo,
          dataDir: join(d, 'state'),
          port: 0,
          store: 'redis',
          redisUrl: single.url.replace('redis:', 'redis+cluster:'),
          workerThreads: false,
        }),
      ).rejects.toThrow(
        /ERR This instance has cluster support disabled \(last error, from 127\.0\.0\.1:\d+\)\. Redis answered with an error, so waiting will not help: this server is a single Redis, not a Cluster node: use --redis redis:\/\/host:port/,
      );
    } finally {
      await single.stop();
    }
  }, 30_000);
});

describe('Redis Cluster seed nodes that refuse connections', () => {
  it('the store\'s PING names ECONNREFUSED, not ioredis\' "Connection is closed"', async () => {
    const port = await freePort();
    const store = openRedisStore(`redis+cluster://127.0.0.1:${port}`);
    try {
      await expect(store.ping!()).rejects.toThrow(
        `: connect ECONNREFUSED 127.0.0.1:${port} (last error, from 127.0.0.1:${port})`,
      );
    } finally {
      await store.close();
    }
  });
});

describe('Redis Cluster seed node names that do not resolve', () => {
  const url = 'redis+cluster://tessera-no-such-host.invalid:7000';
  it("the store's PING names the DNS error, and stays a failure to wait out", async () => {
    const store = openRedisStore(url);
    try {
      const ping = store.ping!();
      await expect(ping).rejects.toThrow(
        /Redis Cluster not ready within \d+ ms \(client \w+\): getaddrinfo (ENOTFOUND|EAI_AGAIN) tessera-no-such-host\.invalid \(last error, resolving or reaching the seed nodes\)/,
      );
      // DNS may come back: serve keeps retrying (isUnavailable), showing the cause.
      expect(isUnavailable(await ping.catch((e: unknown) => e))).toBe(true);
    } finally {
      await store.close();
    }
  });
});
