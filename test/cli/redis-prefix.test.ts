import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { randomEvents, tempDir } from '../online/fixtures.ts';
import { expectUsersMatchOracle } from '../online/oracle-check.ts';
import { startRedis } from '../support/servers.ts';

/**
 * `--redis-prefix`: two deployments on one Redis (a Cluster has only database 0, so a prefix is the only way
 * to keep them apart) must not see each other's tiles, offsets or log. Before the option existed every CLI
 * process used 'tessera:', so a second upload + stream on the same Redis mixed into the first.
 */
const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('../online/fixtures.ts', import.meta.url).pathname;
const redis = await startRedis();
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await redis?.stop();
});

const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 90_000 });

describe.skipIf(!redis)('tessera upload / stream / fetch --redis-prefix', () => {
  it('keeps two deployments on one Redis apart by key prefix', { timeout: 120_000 }, async () => {
    const repo = tempDir();
    cleanups.push(repo.remove);
    writeFileSync(
      join(repo.path, 'defs.ts'),
      `export { events, byUser } from ${JSON.stringify(fixtures)};\n`,
    );
    const all = randomEvents(5, 300, 6);
    const until = [...all.map((e) => e.ts as number)].sort((a, b) => a - b)[150]!;
    mkdirSync(join(repo.path, 'data'));
    writeFileSync(join(repo.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
    const replay = all.filter((e) => (e.ts as number) >= until);
    writeFileSync(join(repo.path, 'replay.jsonl'), replay.map((e) => JSON.stringify(e)).join('\n'));
    const common = [
      '--repo',
      repo.path,
      '--store',
      'redis',
      '--redis',
      redis!.url,
      '--redis-prefix',
      'dep_a:',
    ];

    await tessera(['upload', ...common, '--groupby', 'all', '--until', String(until)]);
    const st = await tessera([
      'stream',
      ...common,
      '--log',
      'redis',
      '--replay',
      join(repo.path, 'replay.jsonl'),
    ]);
    expect(st.stdout).toContain(`appended ${replay.length} events of 'events'`);

    const client = new Redis(redis!.url);
    cleanups.push(() => client.quit());
    const keys = await client.keys('*');
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !k.startsWith('dep_a:'))).toEqual([]);

    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'dep_a:' });
    await expectUsersMatchOracle(store, all);
    await store.close();

    const user = all[0]!.user as string;
    const fetched = await tessera([
      'fetch',
      ...common.filter((a) => a !== '--repo' && a !== repo.path),
      '--repo',
      repo.path,
      '--groupby',
      'by_user',
      '--key',
      `user=${user}`,
      '--at',
      String(Math.max(...all.map((e) => e.ts as number)) + 1),
    ]);
    const status = Object.values((JSON.parse(fetched.stdout) as { status: Record<string, string> }).status);
    expect(status.every((s) => s === 'ok')).toBe(true);
  });
});
