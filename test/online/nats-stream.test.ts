import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { openNatsLog } from '../../src/online/log/nats-log.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { StoreConfig } from '../../src/online/store.ts';
import { startStreamWorkers } from '../../src/online/stream-runner.ts';
import { streamTopics } from '../../src/online/topics.ts';
import { createStreamWorker } from '../../src/online/worker.ts';
import { startNats } from '../support/servers.ts';
import { runWorkerChild } from './crash-child.ts';
import { ingestAll, snapshot } from './nats-kafka-support.ts';
import { byUser, events, groupBys, naive, randomEvents, rng, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

const nats = await startNats();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await nats?.stop();
  for (const c of cleanups) c();
});

const lmdb = (): StoreConfig => {
  const d = tempDir();
  cleanups.push(d.remove);
  return { kind: 'lmdb', path: d.path };
};

describe.skipIf(!nats)('stream workers on a NATS JetStream log', () => {
  for (const partitions of [1, 3]) {
    it(`fetch the same values as the file-log path (${partitions} partition(s))`, async () => {
      const all = randomEvents(21 + partitions, 900);
      const viaNats = openStore(lmdb());
      const viaFile = openStore(lmdb());
      const natsLog = openNatsLog(nats!.url, { partitions, prefix: `e2e${partitions}` });
      const dir = tempDir();
      cleanups.push(dir.remove);
      const fileLog = openFileLog(dir.path, { partitions });
      await Promise.all([ingestAll(natsLog, all, 70), ingestAll(fileLog, all, 70)]);
      expect(
        (await Promise.all(streamTopics(events, groupBys, partitions).map((t) => natsLog.endOffsets(t.name))))
          .flat()
          .reduce((a, b) => a + b, 0),
      ).toBe(all.length * (partitions === 1 ? 1 : 2)); // two key lists: each event goes to two topics

      for (const [log, store] of [
        [natsLog, viaNats],
        [fileLog, viaFile],
      ] as const) {
        const runner = await startStreamWorkers({
          sources: [events],
          groupBys,
          log,
          store,
          worker: { batchSize: 101 },
        });
        await runner.drain();
      }
      const got = await snapshot(viaNats, all);
      expect(got).toEqual(await snapshot(viaFile, all));
      if (partitions === 1) {
        // and the shared path itself matches the naive oracle (counts of every window, for one user)
        const user = all[0].user as string;
        const t = Math.max(...all.map((e) => e.ts as number)) + 1;
        const [[v]] = await createFetchGroupBys(viaNats)(
          [{ id: groupById(byUser), groupBy: byUser, keys: [user] }],
          t,
        );
        expect((v.values as unknown[][])[0]).toEqual(naive(all, 'by_user', user, t)[0]);
      }
      await Promise.all([natsLog.close(), fileLog.close(), viaNats.close(), viaFile.close()]);
    });
  }

  it('a worker killed with SIGKILL restarts from its committed offset: values equal a clean run', async () => {
    const all = randomEvents(31, 700);
    const log = openNatsLog(nats!.url, { prefix: 'crash' });
    await ingestAll(log, all, 100);
    const crashed = lmdb();
    const r = rng(9);
    let kills = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      const killAt = kills < 2 ? 1 + Math.floor(r() * 10) : null;
      const outcome = await runWorkerChild(
        { kind: 'nats', url: nats!.url, prefix: 'crash' },
        crashed,
        killAt,
      );
      if (outcome === 'killed') kills++;
      else break;
    }
    expect(kills).toBe(2);

    const clean = openStore(lmdb());
    const [topic] = streamTopics(events, groupBys, 1);
    const w = await createStreamWorker({ log, store: clean, topic, partition: 0, batchSize: 500 });
    await w.drain();
    const store = openStore(crashed);
    const reopened = await createStreamWorker({ log, store, topic, partition: 0 });
    expect(reopened.stats().nextOffset).toBe(all.length);
    const counts = (g: Record<string, { cpuMs: number }>) =>
      Object.fromEntries(Object.entries(g).map(([name, { cpuMs, ...rest }]) => [name, rest]));
    expect(counts(reopened.stats().groupBys)).toEqual(counts(w.stats().groupBys));
    expect(await snapshot(store, all)).toEqual(await snapshot(clean, all));
    await Promise.all([log.close(), store.close(), clean.close()]);
  });

  it('tessera stream --log nats --nats-url replays through NATS into the store (oracle values)', async () => {
    const repo = tempDir();
    cleanups.push(repo.remove);
    writeFileSync(
      join(repo.path, 'defs.ts'),
      `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`,
    );
    const all = randomEvents(51, 400);
    writeFileSync(join(repo.path, 'replay.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
    const dataDir = join(repo.path, '.tessera');
    const args = [
      'stream',
      '--repo',
      repo.path,
      '--replay',
      join(repo.path, 'replay.jsonl'),
      '--data-dir',
      dataDir,
    ];
    const st = await tessera([...args, '--log', 'nats', '--nats-url', nats!.url]);
    expect(st.stdout).toContain(`appended ${all.length} events of 'events'`);
    expect(st.stdout).toContain(`events/0: offset ${all.length}`);
    const store = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
    await expectUsersMatchOracle(store, all);
    await store.close();
    // The log lives in NATS, not in the data dir.
    expect(existsSync(join(dataDir, 'log'))).toBe(false);
    const down = await tessera([...args, '--log', 'nats', '--nats-url', 'nats://127.0.0.1:1']).catch(
      (e) => e,
    );
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot connect to nats:\/\/127\.0\.0\.1:1: .*--nats-url/);
  });

  it('names the URL and the flag when the server is unreachable', async () => {
    const log = openNatsLog('nats://127.0.0.1:1');
    await expect(log.endOffsets('events')).rejects.toThrow(
      /cannot connect to nats:\/\/127\.0\.0\.1:1: .*--nats-url/,
    );
    await log.close();
  });
});

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
const tessera = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });
