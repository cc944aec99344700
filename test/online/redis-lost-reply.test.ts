import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { commitIdName, countersName, createStreamWorker } from '../../src/online/worker.ts';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { startCuttingProxy } from '../support/cutting-proxy.ts';
import { serverGroup } from '../support/server-group.ts';
import { startRedis } from '../support/servers.ts';
import { byUser, events, groupBys, randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';
import { beforeCommit } from './store-hooks.ts';

/**
 * The Redis store's connection fails after Redis ran a command but before its reply arrived (a TCP proxy
 * cuts the link there). The store's client does not resend the command once reconnected: a resent commit
 * would find the offset it wrote already stored and fail `fenced:`, stopping the partition's only writer
 * for good (worker invariant 8). Instead the commit fails within the command timeout and the worker adopts
 * it (`adoptLostCommit`): every event applied once. A fetch whose reply is lost answers 503, not 500.
 */
const servers = serverGroup();
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await servers.stopAll();
});
const redis = await servers.start(startRedis());

/** Reply timeout of the stores under test: a lost reply fails its command after it, healthy ones must not. */
const TIMEOUT_MS = 2000;
let prefix = 0;
const EVENTS = 300;
const OFFSET = 'stream/events/0';

/** Drains `all` (ingested into a fresh file log) into `store` with a stream worker run until it is done. */
async function drain(store: OnlineStore, all: ReturnType<typeof randomEvents>): Promise<Error[]> {
  const logDir = tempDir();
  cleanups.push(logDir.remove);
  const log = openFileLog(logDir.path);
  const [topic] = streamTopics(events, groupBys, 1);
  await ingestEvents(log, events, groupBys, all);
  const errors: Error[] = [];
  const stop = new AbortController();
  try {
    const w = await createStreamWorker({
      log,
      store,
      topic,
      partition: 0,
      batchSize: 50,
      onError: (e) => void errors.push(e),
    });
    const running = w.run(stop.signal);
    const failed = running.then(() => new Error('run returned before it was stopped'));
    const deadline = Date.now() + 15_000;
    while (w.stats().nextOffset < EVENTS && Date.now() < deadline) {
      // A worker that stopped for good (fenced) rejects here, failing the test with its error.
      const done = await Promise.race([failed, new Promise((r) => setTimeout(r, 20, null))]);
      if (done !== null) throw done;
    }
    stop.abort();
    await running;
    expect(w.stats().nextOffset).toBe(EVENTS);
    return errors;
  } finally {
    stop.abort();
    await log.close();
  }
}

/**
 * The worker's stored offsets, watermark and counters, without the CPU times (which differ run to run) and
 * the last commit's id (its writer id is random; its number counts failed commits too).
 */
async function storedState(store: OnlineStore): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = await store.readOffsets();
  const commit = commitIdName(streamTopics(events, groupBys, 1)[0].name, 0);
  expect(out[commit]).toMatch(/^[0-9a-f]{16}\.\d+$/);
  delete out[commit];
  const name = countersName(streamTopics(events, groupBys, 1)[0].name, 0);
  const counters = JSON.parse(out[name] as string) as Record<string, { cpuMs: number }>;
  for (const c of Object.values(counters)) c.cpuMs = 0;
  out[name] = counters;
  return out;
}

/**
 * `inner` (drained with faults) holds what a drain of `all` into `clean` without faults does: the same
 * offset, watermark and counters, and the same features, which match the naive oracle.
 */
async function expectSameAsCleanDrain(
  inner: OnlineStore,
  clean: OnlineStore,
  all: ReturnType<typeof randomEvents>,
): Promise<void> {
  expect(await drain(clean, all)).toEqual([]);
  expect((await inner.readOffsets([OFFSET]))[OFFSET]).toBe(String(EVENTS));
  expect(await storedState(inner)).toEqual(await storedState(clean));
  await expectUsersMatchOracle(inner, all);
  const users = [...new Set(all.map((e) => e.user as string))];
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const fetch = (s: OnlineStore) =>
    createFetchGroupBys(s)([{ id: groupById(byUser), groupBy: byUser, keys: users }], t);
  expect(await fetch(inner)).toEqual(await fetch(clean));
}

describe.skipIf(!redis)('the Redis store when a link fails before a reply arrives', () => {
  for (const chunk of [undefined, 7]) {
    it(`a commit whose reply was lost fails and is adopted, not resent and fenced (${chunk === undefined ? 'one script' : 'staged in chunks'})`, async () => {
      const proxy = await startCuttingProxy(redis!.port);
      cleanups.push(() => proxy.close());
      const opts = {
        kind: 'redis' as const,
        ...(chunk === undefined ? {} : { commitChunkEntities: chunk }),
      };
      const inner = openStore({
        ...opts,
        commandTimeoutMs: TIMEOUT_MS,
        url: `redis://127.0.0.1:${proxy.port}`,
        prefix: `lr${prefix++}:`,
      });
      const clean = openStore({ ...opts, url: redis!.url, prefix: `lr${prefix++}:` });
      // The 2nd and 4th commits: Redis runs the commit script (staged: the one recording the commit), and
      // the link is cut before its reply gets back.
      const store = beforeCommit(inner, (n) => {
        if (n === 2 || n === 4) proxy.cutNextReply('eval'); // EVALSHA, or EVAL when the script is not loaded
      });
      const all = randomEvents(57, EVENTS);
      try {
        const errors = await drain(store, all);
        expect(proxy.cuts).toBe(2);
        // The two cut commits; on a loaded machine a healthy command may time out too (the worker redoes it).
        const timedOut = `Command timed out (no reply within ${TIMEOUT_MS} ms`;
        const messages = errors.map((e) => e.message);
        expect(
          messages.filter((m) => m.includes(`commit failed: ${timedOut}`)).length,
        ).toBeGreaterThanOrEqual(2);
        for (const m of messages) expect(m).toContain(timedOut);
        await expectSameAsCleanDrain(inner, clean, all);
      } finally {
        await Promise.all([inner.close(), clean.close()]);
      }
    }, 40_000);
  }

  // Commands issued while the client reconnects wait in ioredis' offline queue: sent once it is connected
  // again, even after their timeout failed them, unless `maxRetriesPerRequest` (3) failed reconnects flush
  // the queue first. Either way the worker neither counts a batch twice nor is fenced (redis-store.ts,
  // where the client is made): its readOffsets before redoing queues behind the late commit.
  // Sent late: the commit's timeout must be shorter than the ~300 ms the client takes to reconnect, so
  // healthy commands may time out too on a loaded machine; only the outcome is asserted exactly.
  for (const [refused, timeoutMs, outcome] of [
    [2, 150, 'failed by its timeout, then sent late once reconnected, is adopted'],
    [3, TIMEOUT_MS, 'flushed after 3 failed reconnects, is redone'],
  ] as const) {
    it(`a commit issued while the link is down, ${outcome}`, async () => {
      const proxy = await startCuttingProxy(redis!.port);
      cleanups.push(() => proxy.close());
      const url = `redis://127.0.0.1:${proxy.port}`;
      const inner = openStore({ kind: 'redis', url, prefix: `lr${prefix++}:`, commandTimeoutMs: timeoutMs });
      const clean = openStore({ kind: 'redis', url: redis!.url, prefix: `lr${prefix++}:` });
      let commits = 0;
      // Before the 2nd commit the link fails and the next reconnects are refused (ioredis waits 50, 100,
      // 150 ms before its attempts): 2, and the commit waits in the offline queue longer than its timeout;
      // 3, and ioredis fails what it queued (maxRetriesPerRequest), before the timeout.
      const store = beforeCommit(inner, async (n) => {
        commits = n;
        if (n !== 2) return;
        proxy.refuseNext(refused);
        proxy.dropLinks();
        await new Promise((r) => setTimeout(r, 20)); // the client has seen its link close
      });
      const all = randomEvents(58, EVENTS);
      try {
        const errors = (await drain(store, all)).map((e) => e.message);
        expect(errors).toContainEqual(
          refused === 2
            ? expect.stringContaining(`commit failed: Command timed out (no reply within ${timeoutMs} ms`)
            : expect.stringMatching(
                /commit failed: no connection: refused or lost, and 3 reconnect attempts failed/,
              ),
        );
        for (const e of errors) expect(e).toMatch(/Command timed out|3 reconnect attempts failed/);
        // Adopted: 6 commits of 50 events; redone: the 2nd batch's commit again.
        expect(commits).toBe(refused === 2 ? EVENTS / 50 : EVENTS / 50 + 1);
        await expectSameAsCleanDrain(inner, clean, all);
      } finally {
        await Promise.all([inner.close(), clean.close()]);
      }
    }, 40_000);
  }

  it('a fetch whose reply was lost answers 503 with the store message (not 500), then 200', async () => {
    const proxy = await startCuttingProxy(redis!.port);
    cleanups.push(() => proxy.close());
    const repo = await loadRepo(new URL('../serve/fixture-repo', import.meta.url).pathname, {
      checkFiles: false,
    });
    const dir = tempDir();
    cleanups.push(dir.remove);
    const url = `redis://127.0.0.1:${proxy.port}`;
    const saved = process.env.TESSERA_REDIS_TIMEOUT_MS;
    process.env.TESSERA_REDIS_TIMEOUT_MS = String(TIMEOUT_MS);
    const server = await startEmbedded({
      repo,
      dataDir: join(dir.path, 'state'),
      port: 0,
      store: 'redis',
      redisUrl: url,
      redisPrefix: `lr${prefix++}:`,
      workerThreads: false,
    }).finally(() => {
      if (saved === undefined) delete process.env.TESSERA_REDIS_TIMEOUT_MS;
      else process.env.TESSERA_REDIS_TIMEOUT_MS = saved;
    });
    const fetchU1 = async () => {
      const res = await fetch(`${server.url}/v1/features/spend_model?user_id=u1`, {
        signal: AbortSignal.timeout(10_000),
      });
      return { code: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      // The store holds u1 (a store never written is not read at all).
      await createClient({ url: server.url }).ingest('payments', [
        { user_id: 'u1', amount: 3, ts: Date.now() - 1000 },
      ]);
      await server.drain();
      expect((await fetchU1()).code).toBe(200);
      // The read connection's MGET loses its reply and is sent again through ioredis, which loses its too.
      proxy.cutNextReply('mget', 2);
      const lost = await fetchU1();
      expect(proxy.cuts).toBe(2);
      expect(lost.code).toBe(503);
      expect(lost.body.error).toBe('unavailable');
      expect(lost.body.message).toMatch(
        new RegExp(
          `^Redis store at ${url}: \\w+ of \\d+ keys failed: Command timed out \\(no reply within ${TIMEOUT_MS} ms per \\d+ keys`,
        ),
      );
      expect((await fetchU1()).code).toBe(200);
    } finally {
      await server.close();
    }
  }, 30_000);
});
