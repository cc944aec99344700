import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadRepo, type LoadedRepo } from '../../src/cli/load-repo.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import { offsetName } from '../../src/online/worker.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded, type EmbeddedOptions, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { randomEvents } from '../online/fixtures.ts';
import { expectUsersMatchOracle } from '../online/oracle-check.ts';
import { startNats, startRedis } from '../support/servers.ts';
import { repo as codeRepo } from './fixtures.ts';

const FIXTURE_REPO = new URL('./fixture-repo', import.meta.url).pathname;
const SRC_INDEX = new URL('../../src/index.ts', import.meta.url).pathname;
const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const ONLINE_FIXTURES = new URL('../online/fixtures.ts', import.meta.url).pathname;

const redis = await startRedis();
const nats = await startNats();
const repo = await loadRepo(FIXTURE_REPO, { checkFiles: false });
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  await nats?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir('tessera-threads-');
  dirs.push(d);
  return d;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const readyStatus = async (s: EmbeddedServer) => (await fetch(`${s.url}/readyz`)).status;

async function spend(s: EmbeddedServer, user: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${s.url}/v1/features/spend_model?user_id=${user}`);
  return ((await res.json()) as { features: Record<string, unknown> }).features;
}

describe('stream workers in worker threads', () => {
  const layouts: [string, boolean, Partial<EmbeddedOptions>][] = [
    ['LMDB store, file log', true, {}],
    [
      'Redis store, Redis Streams log',
      redis !== null,
      { store: 'redis', log: 'redis', redisUrl: redis?.url, redisPrefix: 'threads-redis:' },
    ],
    ['LMDB store, NATS log', nats !== null, { log: 'nats', natsUrl: nats?.url }],
  ];
  for (const [name, available, layout] of layouts) {
    it.skipIf(!available)(`apply events, report lag, counters and readiness (${name})`, async () => {
      const server = await startEmbedded({ repo, dataDir: join(dir(), 'state'), port: 0, ...layout });
      try {
        expect(server.workerThreads).toBe(1);
        const client = createClient({ url: server.url });
        const t = Date.now();
        await client.ingest('payments', [
          { user_id: 'u1', amount: 3, ts: t - 2000 },
          { user_id: 'u1', amount: 4, ts: t - 1000 },
          { user_id: 'u2', amount: 5, ts: t - 1000 },
        ]);
        await server.drain();
        expect(await spend(server, 'u1')).toEqual({
          user_spend_count_1h: 2,
          user_spend_count_lifetime: 2,
          user_spend_amount_sum_1d: 7,
        });
        expect(await server.progress()).toEqual([{ source: 'payments', lag: 0, watermark: t - 1000 }]);
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        expect(metrics).toContain('tessera_source_lag_events{source="payments"} 0');
        expect(metrics).toContain('tessera_groupby_events_applied{group_by="user_spend"} 3');
        expect(metrics).toMatch(/tessera_groupby_stream_cpu_seconds\{group_by="user_spend"\} [0-9.e-]+\n/);
        expect(await readyStatus(server)).toBe(200);

        // Ingest → visible without drain(): the thread is woken by the append, not by a drain call.
        await client.ingest('payments', [{ user_id: 'u3', amount: 1, ts: Date.now() }]);
        await waitFor(
          'u3 to be visible',
          async () => (await spend(server, 'u3')).user_spend_count_lifetime === 1,
        );
      } finally {
        await server.close();
      }
    });
  }

  it('matches the oracle with 2 partitions in 2 threads (HTTP ingest, re-keyed topics)', async () => {
    const repoDir = join(dir(), 'repo');
    mkdirSync(repoDir);
    writeFileSync(
      join(repoDir, 'defs.ts'),
      `export { events, byUser, byUserKind } from ${JSON.stringify(ONLINE_FIXTURES)};\n`,
    );
    const online = await loadRepo(repoDir, { checkFiles: false });
    const server = await startEmbedded({
      repo: online,
      dataDir: join(dir(), 'state'),
      port: 0,
      partitions: 2,
      workerThreads: 2,
    });
    try {
      expect(server.workerThreads).toBe(2);
      const all = randomEvents(7, 3000);
      const client = createClient({ url: server.url });
      for (let i = 0; i < all.length; i += 500) await client.ingest('events', all.slice(i, i + 500));
      await server.drain();
      await expectUsersMatchOracle(server.store, all);
      expect((await server.progress())[0]!.lag).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('serves consistent values while a thread drains a backlog, and stops mid-drain without losing or repeating events', async () => {
    const state = join(dir(), 'state');
    const log = openFileLog(join(state, 'log'));
    const t = Date.now() - 3_600_000;
    const users = 50;
    const total = 40_000;
    const events = Array.from({ length: total }, (_, i) => ({
      user_id: `u${i % users}`,
      amount: 1,
      ts: t + i,
    }));
    for (let i = 0; i < total; i += 5000)
      await ingestEvents(log, repo.sources[0]!, repo.groupBys, events.slice(i, i + 5000), { origin: 'test' });
    await log.close();

    // Small batches, so the stop lands between commits of an unfinished drain.
    let server = await startEmbedded({ repo, dataDir: state, port: 0, batchSize: 2000 });
    let seen = 0;
    let lastCount = 0;
    try {
      while ((await server.progress())[0]!.lag > total / 2) {
        const count = (await spend(server, 'u0')).user_spend_count_lifetime as number | null;
        // Each fetch sees a committed prefix of the log: the count never goes back.
        expect(count ?? 0).toBeGreaterThanOrEqual(lastCount);
        lastCount = count ?? 0;
        seen++;
      }
    } finally {
      await server.close();
    }
    expect(seen).toBeGreaterThan(0);
    // The stop came mid-drain: the thread committed its current batch and no more.
    const store = openStore({ kind: 'lmdb', path: join(state, 'store') });
    const stopped = Number((await store.readOffsets([offsetName('payments', 0)]))[offsetName('payments', 0)]);
    await store.close();
    expect(stopped).toBeGreaterThan(0);
    expect(stopped).toBeLessThan(total);
    server = await startEmbedded({ repo, dataDir: state, port: 0 });
    try {
      await server.drain();
      for (const user of ['u0', 'u7', 'u49'])
        expect((await spend(server, user)).user_spend_count_lifetime).toBe(total / users);
    } finally {
      await server.close();
    }
  });

  it.skipIf(!redis)('a fenced thread worker turns its server unready and is reported', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const shared = {
      repo,
      store: 'redis',
      log: 'redis',
      redisUrl: redis!.url,
      redisPrefix: 'threads-fence:',
      port: 0,
    } as const;
    const a = await startEmbedded({ ...shared, dataDir: join(dir(), 'a') });
    const b = await startEmbedded({ ...shared, dataDir: join(dir(), 'b') });
    try {
      const client = createClient({ url: a.url });
      const t = Date.now();
      for (let i = 0; i < 20; i++) {
        await client.ingest('payments', [{ user_id: 'f1', amount: 1, ts: t - 60_000 + i }]);
        await sleep(5);
      }
      await waitFor('one server to turn unready', async () =>
        (await Promise.all([a, b].map(readyStatus))).includes(503),
      );
      const states = await Promise.all([a, b].map(readyStatus));
      expect([...states].sort()).toEqual([200, 503]);
      expect(errors.mock.calls.flat().join('\n')).toMatch(
        /tessera serve: stream worker payments\/0 stopped: .*fenced:/,
      );
      const live = states[0] === 200 ? a : b;
      await live.drain();
      expect((await spend(live, 'f1')).user_spend_count_lifetime).toBe(20);
    } finally {
      errors.mockRestore();
      await a.close();
      await b.close();
    }
  });

  it('a thread that dies is reported loudly and turns the server unready; serving goes on', async () => {
    // User code that crashes its thread outside any batch (an exception thrown from a timer).
    const repoDir = join(dir(), 'repo');
    mkdirSync(repoDir);
    writeFileSync(join(repoDir, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(repoDir, 'features.ts'),
      `import { col, count, eventSource, groupBy } from '${SRC_INDEX}';
export const clicks = eventSource({
  name: 'clicks',
  path: 'data/clicks.jsonl',
  timeColumn: 'ts',
  schema: { user_id: col.string(), ts: col.timestamp() },
  filter: (row) => {
    if (row.user_id === 'crash') setTimeout(() => { throw new Error('boom from user code'); });
    return true;
  },
});
export const clickCount = groupBy({ name: 'click_count', source: clicks, keys: ['user_id'], aggregations: [count({ windows: ['lifetime'] })] });
`,
    );
    const crashing: LoadedRepo = await loadRepo(repoDir, { checkFiles: false });
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const server = await startEmbedded({ repo: crashing, dataDir: join(dir(), 'state'), port: 0 });
    try {
      const client = createClient({ url: server.url });
      await client.ingest('clicks', [{ user_id: 'ok', ts: Date.now() }]);
      await server.drain();
      expect(await readyStatus(server)).toBe(200);
      await client.ingest('clicks', [{ user_id: 'crash', ts: Date.now() }]);
      await waitFor('the server to turn unready', async () => (await readyStatus(server)) === 503);
      expect(errors.mock.calls.flat().join('\n')).toMatch(
        /tessera serve: stream worker thread 0 \(clicks\/0\) crashed: boom from user code\. Its workers have stopped; restart the process\./,
      );
      const res = await fetch(`${server.url}/v1/groupbys/click_count?user_id=ok`);
      expect(((await res.json()) as { features: Record<string, unknown> }).features).toEqual({
        click_count_count_lifetime: 1,
      });
    } finally {
      errors.mockRestore();
      await server.close();
    }
  });

  it('tessera stream --worker-threads runs the partitions in threads and drains a replay', async () => {
    const work = dir();
    const t = Date.now() - 60_000;
    const users = 20;
    const events = Array.from({ length: 4000 }, (_, i) => ({
      user_id: `u${i % users}`,
      amount: 2,
      ts: t + i,
    }));
    writeFileSync(join(work, 'replay.jsonl'), events.map((e) => JSON.stringify(e)).join('\n'));
    const dataDir = join(work, 'state');
    const common = ['--repo', FIXTURE_REPO, '--data-dir', dataDir, '--partitions', '2'];
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [BIN, 'stream', ...common, '--replay', join(work, 'replay.jsonl'), '--worker-threads', '2'],
      { timeout: 60_000 },
    );
    expect(stdout).toContain(`processed ${events.length} log records`);
    expect(stdout).toMatch(/payments\.user_id\/0: offset [1-9]\d*/);
    expect(stdout).toMatch(/payments\.user_id\/1: offset [1-9]\d*/);
    const server = await startEmbedded({ repo, dataDir, port: 0, partitions: 2, workers: false });
    try {
      for (const user of ['u0', 'u13'])
        expect(await spend(server, user)).toMatchObject({
          user_spend_count_lifetime: events.length / users,
          user_spend_amount_sum_1d: (2 * events.length) / users,
        });
    } finally {
      await server.close();
    }
  });

  it('refuses threads for a repo without a folder, and runs its workers on the serving thread by default', async () => {
    await expect(
      startEmbedded({ repo: codeRepo, dataDir: join(dir(), 'state'), port: 0, workerThreads: true }),
    ).rejects.toThrow(/worker threads load the definitions from the repo folder.*workerThreads: false/);
    const server = await startEmbedded({ repo: codeRepo, dataDir: join(dir(), 'inline'), port: 0 });
    try {
      expect(server.workerThreads).toBe(0);
    } finally {
      await server.close();
    }
  });
});
