import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });

describe('tessera upload + tessera stream --replay', () => {
  it(
    'uploads history, replays the rest through validation, and serves oracle values, also when replayed again',
    { timeout: 150_000 },
    async () => {
      const repo = tempDir();
      cleanups.push(repo.remove);
      writeFileSync(
        join(repo.path, 'defs.ts'),
        `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`,
      );
      const all = randomEvents(31, 600);
      const until = [...all.map((e) => e.ts as number)].sort((a, b) => a - b)[300];
      mkdirSync(join(repo.path, 'data'));
      writeFileSync(join(repo.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
      // The replay carries ISO times and includes events before the cutoff (skipped as already uploaded).
      const replay = all.slice(250).map((e) => ({ ...e, ts: new Date(e.ts as number).toISOString() }));
      writeFileSync(join(repo.path, 'replay.jsonl'), replay.map((e) => JSON.stringify(e)).join('\n'));
      const dataDir = join(repo.path, '.tessera');

      const up = await tessera([
        'upload',
        '--repo',
        repo.path,
        '--groupby',
        'all',
        '--until',
        String(until),
        '--data-dir',
        dataDir,
      ]);
      expect(up.stdout).toMatch(/uploaded by_user \([0-9a-f]{16}\): \d+ events before/);
      expect(up.stdout).toMatch(/uploaded by_user_kind/);

      const st = await tessera([
        'stream',
        '--repo',
        repo.path,
        '--replay',
        join(repo.path, 'replay.jsonl'),
        '--data-dir',
        dataDir,
      ]);
      expect(st.stdout).toContain(`appended ${replay.length} events of 'events'`);
      expect(st.stdout).toMatch(
        /by_user: \d+ applied, 0 late beyond retention, [1-9]\d* before upload cutoff/,
      );

      const store = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
      await expectUsersMatchOracle(store, all);
      await store.close();

      // The same replay again appends nothing (it used to count every event twice).
      const again = await tessera([
        'stream',
        '--repo',
        repo.path,
        '--replay',
        join(repo.path, 'replay.jsonl'),
        '--data-dir',
        dataDir,
      ]);
      expect(again.stdout).toContain(
        `appended 0 events of 'events' from ${join(repo.path, 'replay.jsonl')} rows 1-${replay.length} in `,
      );
      expect(again.stdout).toContain(`(${replay.length} events already in the log, skipped)`);
      expect(again.stdout).toContain('processed 0 log records');
      const reopened = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
      await expectUsersMatchOracle(reopened, all);
      await reopened.close();
    },
  );
});
