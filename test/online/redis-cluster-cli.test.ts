import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { startRedisCluster } from '../support/servers.ts';
import { randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

// The CLI's --redis redis+cluster:// surface end to end: upload and stream write a 3-master Cluster store
// with 4 partitions; a reader that was not told the partition count adopts the recorded one.
const cluster = await startRedisCluster();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await cluster?.stop();
  cleanups.forEach((c) => c());
});

const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });

describe.skipIf(!cluster)('tessera upload + stream on a Redis Cluster store', () => {
  it('uploads, streams on 4 partitions and serves oracle values', { timeout: 90_000 }, async () => {
    const repo = tempDir();
    cleanups.push(repo.remove);
    writeFileSync(
      join(repo.path, 'defs.ts'),
      `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`,
    );
    const all = randomEvents(37, 600, 30);
    const until = [...all.map((e) => e.ts as number)].sort((a, b) => a - b)[300];
    mkdirSync(join(repo.path, 'data'));
    writeFileSync(join(repo.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
    writeFileSync(
      join(repo.path, 'replay.jsonl'),
      all
        .slice(250)
        .map((e) => JSON.stringify(e))
        .join('\n'),
    );
    const redis = ['--store', 'redis', '--redis', cluster!.url, '--partitions', '4'];
    const dataDir = ['--data-dir', join(repo.path, '.tessera')];
    const up = await tessera([
      'upload',
      '--repo',
      repo.path,
      '--groupby',
      'all',
      '--until',
      String(until),
      ...redis,
    ]);
    expect(up.stdout).toMatch(/uploaded by_user \([0-9a-f]{16}\): \d+ events before/);
    const st = await tessera([
      'stream',
      '--repo',
      repo.path,
      '--replay',
      join(repo.path, 'replay.jsonl'),
      ...redis,
      ...dataDir,
    ]);
    expect(st.stdout).toMatch(/by_user: \d+ applied, 0 late beyond retention, [1-9]\d* before upload cutoff/);

    const store = openStore({ kind: 'redis', url: cluster!.url });
    await expectUsersMatchOracle(store, all);
    await store.close();
  });
});
