import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openRedisStreamLog } from '../../src/online/log/redis-stream-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { redactUrl } from '../../src/online/redact-url.ts';
import { parseClusterUrl } from '../../src/online/redis-client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { watchStoreHealth } from '../../src/serve/store-health.ts';
import { tempDir } from '../offline/support.ts';
import { freePort } from '../support/servers.ts';

/**
 * Error messages name the store or log by its URL, and they reach 503 bodies, /readyz (no token needed)
 * and logs: the URL's password (or NATS token) must not. A store and logs whose URLs carry one, made to
 * fail (nothing listens on their port), give errors and a /readyz reason without it.
 */
const SECRET = 's3cret-Pw';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The message of what `op` throws or rejects with. */
async function messageOf(op: () => unknown): Promise<string> {
  try {
    await op();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a failure');
}

describe('redactUrl', () => {
  it('hides passwords and tokens, keeping user names, hosts and options', () => {
    const cases: [string, string][] = [
      ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
      ['redis://:pw@127.0.0.1:6379/2', 'redis://:***@127.0.0.1:6379/2'],
      ['rediss://reader:pw@h:6380', 'rediss://reader:***@h:6380'],
      ['redis://reader@h:6379', 'redis://***@h:6379'],
      ['redis://:p@ss:w@rd@h:1/0', 'redis://:***@h:1/0'],
      ['redis://h:1?password=pw&family=6', 'redis://h:1?password=***&family=6'],
      ['redis://h:1?family=6&authToken=x', 'redis://h:1?family=6&authToken=***'],
      [
        'redis+cluster://reader:pw@10.0.0.1:7000,10.0.0.2:7000',
        'redis+cluster://reader:***@10.0.0.1:7000,10.0.0.2:7000',
      ],
      [
        'nats://tok@n1:4222,nats://n2:4222,nats://u:p@n3:4222',
        'nats://***@n1:4222,nats://n2:4222,nats://u:***@n3:4222',
      ],
    ];
    for (const [url, redacted] of cases) expect(redactUrl(url)).toBe(redacted);
  });
});

describe('messages naming a URL with a password', () => {
  it('Redis store: operations, PING, health (/readyz reason) and option errors', async () => {
    const port = await freePort(); // nothing listens there
    const url = `redis://:${SECRET}@127.0.0.1:${port}`;
    const store = openStore({ kind: 'redis', url, prefix: 'redact:', commandTimeoutMs: 300 });
    const health = watchStoreHealth(store, { intervalMs: 50, timeoutMs: 300 });
    try {
      const messages = [
        await messageOf(() => store.readTiles([{ groupBy: 'g', key: 'k' }])),
        await messageOf(() => store.readCounters()),
        await messageOf(() => store.ping!(300)),
      ];
      for (let i = 0; health.unready() === null && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
      messages.push(health.unready()!);
      messages.push(
        await messageOf(() => openStore({ kind: 'redis', url, commandTimeoutMs: -1 as number }).close()),
      );
      for (const m of messages) {
        expect(m).toContain(`redis://:***@127.0.0.1:${port}`);
        expect(m).not.toContain(SECRET);
      }
    } finally {
      health.stop();
      await store.close();
    }
  });

  it('Redis Cluster store and URL errors', async () => {
    const port = await freePort();
    const url = `redis+cluster://reader:${SECRET}@127.0.0.1:${port}`;
    const messages = [
      await messageOf(() => parseClusterUrl(`${url}/3`)),
      await messageOf(() => parseClusterUrl(`redis+cluster://reader:${SECRET}@127.0.0.1:x`)),
    ];
    const store = openStore({ kind: 'redis', url, prefix: 'redact:', partitions: 1, commandTimeoutMs: 300 });
    try {
      messages.push(await messageOf(() => store.ping!(300)));
    } finally {
      await store.close();
    }
    for (const m of messages) {
      expect(m).toMatch(/redis\+cluster:\/\/reader:\*\*\*@127\.0\.0\.1:/);
      expect(m).not.toContain(SECRET);
    }
  });

  it('Redis Streams log and NATS log (password and token)', async () => {
    const port = await freePort();
    const entry = { key: 'k', value: new Uint8Array(1), timestamp: 1 };
    const redisLog = openRedisStreamLog(`redis://:${SECRET}@127.0.0.1:${port}`, { commandTimeoutMs: 300 });
    const natsLogs = [`nats://u:${SECRET}@127.0.0.1:${port}`, `nats://${SECRET}@127.0.0.1:${port}`].map(
      (url) => openNatsLog(url, { timeoutMs: 300 }),
    );
    try {
      const redisMessage = await messageOf(() => redisLog.append('t', [entry as never]));
      expect(redisMessage).toContain(`Redis Streams log at redis://:***@127.0.0.1:${port}`);
      expect(redisMessage).not.toContain(SECRET);
      for (const [i, log] of natsLogs.entries()) {
        const m = await messageOf(() => log.append('t', [entry as never]));
        expect(m).toContain(i === 0 ? `nats://u:***@127.0.0.1:${port}` : `nats://***@127.0.0.1:${port}`);
        expect(m).not.toContain(SECRET);
      }
      const option = await messageOf(() =>
        openNatsLog(`nats://u:${SECRET}@127.0.0.1:${port}`, { timeoutMs: -1 as number }),
      );
      expect(option).toContain('nats://u:***@');
      expect(option).not.toContain(SECRET);
    } finally {
      await redisLog.close();
      for (const log of natsLogs) await log.close();
    }
  });

  it('/readyz of a serve node on a Redis store down', async () => {
    const port = await freePort();
    const dir = tempDir('tessera-redact-');
    dirs.push(dir);
    const repo = await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
      checkFiles: false,
    });
    const server = await startEmbedded({
      repo,
      dataDir: join(dir, 'state'),
      port: 0,
      store: 'redis',
      redisUrl: `redis://reader:${SECRET}@127.0.0.1:${port}`,
      workers: false,
    });
    try {
      let body = '';
      for (let i = 0; i < 100; i++) {
        const res = await fetch(`${server.url}/readyz`);
        body = await res.text();
        if (res.status === 503 && body.includes('Redis store')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(body).toContain(`redis://reader:***@127.0.0.1:${port}`);
      expect(body).not.toContain(SECRET);
    } finally {
      await server.close();
    }
  }, 20_000);
});
