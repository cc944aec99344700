/**
 * A serve node whose log loses what its store's offsets count (here: the Redis Streams keys flushed while it
 * runs) stops the worker for good, as a fenced one (worker invariant 11): it reports why and turns
 * unready, instead of waiting and then silently skipping the new log's first events.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { register as registerStream } from '../../src/cli/commands/stream.ts';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { startRedis } from '../support/servers.ts';
import { modelA, repo } from './fixtures.ts';

const FIXTURE_REPO = new URL('./fixture-repo', import.meta.url).pathname;
const fixtureRepo = await loadRepo(FIXTURE_REPO, { checkFiles: false });
const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('a serve node whose log was flushed under it', () => {
  it.skipIf(!redis)('stops the worker, reports it and turns unready within a few seconds', async () => {
    const dir = tempDir('tessera-log-behind-');
    dirs.push(dir);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const raw = new Redis(redis!.url);
    const node = await startEmbedded({
      repo,
      store: 'redis',
      log: 'redis',
      redisUrl: redis!.url,
      redisPrefix: 'behind:',
      dataDir: dir,
      port: 0,
    });
    try {
      const client = createClient({ url: node.url });
      const t = Date.now();
      await client.ingest(
        'tx',
        Array.from({ length: 20 }, (_, i) => ({
          card_id: 'c1',
          merchant_id: 'm1',
          amount: 1,
          ts: t - 60_000 + i,
        })),
      );
      const count = async () =>
        (await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm1' }]))[0]!.features
          .card_stats_count_1h;
      const until = Date.now() + 10_000;
      while ((await count()) !== 20 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(await count()).toBe(20);
      expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
      // The log's keys go (FLUSHDB of a Redis used for the log only, a key expiry, a manual DEL).
      const keys = await raw.keys('behind:log:*');
      expect(keys.length).toBeGreaterThan(0);
      await raw.del(...keys);
      const flushed = Date.now();
      let res = await fetch(`${node.url}/readyz`);
      while (res.status === 200 && Date.now() - flushed < 10_000) {
        await new Promise((r) => setTimeout(r, 50));
        res = await fetch(`${node.url}/readyz`);
      }
      expect(res.status).toBe(503);
      // Two checks at least a second apart say so (one partial or glitched answer cannot stop it); ~2 s when
      // idle, the bound leaves room for a loaded CI machine (it once took over 4 s at load average 10).
      expect(Date.now() - flushed).toBeLessThan(8000);
      const { reason } = (await res.json()) as { reason: string };
      expect(reason).toMatch(
        /stream worker tx\/0 stopped: the store's committed offset 20 is past the end of redis log topic 'tx' partition 0 \(0 records\)/,
      );
      expect(errors.mock.calls.flat().join('\n')).toMatch(
        /tessera serve: stream worker tx\/0 stopped: .*past the end/,
      );
      // Events sent now are not applied from offset 20 of the new log (its first 20 would be skipped).
      await client.ingest('tx', [{ card_id: 'c1', merchant_id: 'm1', amount: 1, ts: t }]);
      await new Promise((r) => setTimeout(r, 300));
      expect(await count()).toBe(20);
    } finally {
      errors.mockRestore();
      raw.disconnect();
      await node.close();
    }
  });
});

describe('a serve node restarted on a log that ends before its store (worker invariant 11)', () => {
  for (const [name, threads] of [
    ['workers on the serving thread', false],
    ['workers in a thread', true],
  ] as const) {
    it(`starts, serves fetches and reports the stopped worker on /readyz (${name})`, async () => {
      const dataDir = join(tempDir('tessera-log-behind-restart-'), 'state');
      dirs.push(dataDir);
      const opts = { repo: fixtureRepo, dataDir, port: 0, workerThreads: threads };
      const first = await startEmbedded(opts);
      const t = Date.now();
      const events = Array.from({ length: 12 }, (_, i) => ({ user_id: 'u1', amount: 1, ts: t - 5000 + i }));
      try {
        await createClient({ url: first.url }).ingest('payments', events);
        await first.drain();
      } finally {
        await first.close();
      }
      // The file log's directory goes (replaced, or lost with a disk); the store keeps offset 12.
      rmSync(join(dataDir, 'log'), { recursive: true, force: true });
      const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
      let node: Awaited<ReturnType<typeof startEmbedded>> | null = null;
      try {
        node = await startEmbedded(opts);
        const features = async () =>
          (
            (await (await fetch(`${node!.url}/v1/features/spend_model?user_id=u1`)).json()) as {
              features: Record<string, unknown>;
            }
          ).features;
        expect((await features()).user_spend_count_lifetime).toBe(12);
        let res = await fetch(`${node.url}/readyz`);
        const since = Date.now();
        while (res.status === 200 && Date.now() - since < 3000) {
          await new Promise((r) => setTimeout(r, 20));
          res = await fetch(`${node.url}/readyz`);
        }
        expect(res.status).toBe(503);
        const { reason } = (await res.json()) as { reason: string };
        expect(reason).toMatch(
          /stream worker payments\/0 cannot open: the store's committed offset 12 is past the end of file log topic 'payments' partition 0 \(0 records\)\. .*lost its un-synced tail/,
        );
        expect(errors.mock.calls.flat().join('\n')).toMatch(
          /tessera serve: stream worker payments\/0 cannot open: .*past the end/,
        );
        // New events are not applied from offset 12 of the new log (its first 12 would be skipped).
        await createClient({ url: node.url }).ingest('payments', events.slice(0, 13));
        await new Promise((r) => setTimeout(r, 300));
        expect((await features()).user_spend_count_lifetime).toBe(12);
        expect(node.metrics).toBeDefined();
      } finally {
        errors.mockRestore();
        await node?.close();
      }
    });
  }

  it('`tessera stream` still refuses to start, naming the reason', async () => {
    const dataDir = join(tempDir('tessera-log-behind-stream-'), 'state');
    dirs.push(dataDir);
    const first = await startEmbedded({ repo: fixtureRepo, dataDir, port: 0, workerThreads: false });
    try {
      await createClient({ url: first.url }).ingest('payments', [
        { user_id: 'u1', amount: 1, ts: Date.now() },
      ]);
      await first.drain();
    } finally {
      await first.close();
    }
    rmSync(join(dataDir, 'log'), { recursive: true, force: true });
    const program = new Command('tessera').exitOverride();
    registerStream(program);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await expect(
        program.parseAsync(['stream', '--repo', FIXTURE_REPO, '--data-dir', dataDir, '--follow'], {
          from: 'user',
        }),
      ).rejects.toThrow(
        /stream worker payments\/0 cannot open: the store's committed offset 1 is past the end/,
      );
    } finally {
      out.mockRestore();
    }
  });
});
