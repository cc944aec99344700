import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { randomEvents, tempDir } from '../online/fixtures.ts';
import { expectUsersMatchOracle } from '../online/oracle-check.ts';

/**
 * `tessera stream --replay` of an event whose key is too long for LMDB: it used to be appended, then fail
 * the worker's every commit (nothing after it was ever applied). Now it fails the replay naming the row,
 * or with --on-bad-row skip is skipped and counted while the rest applies.
 */
const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('../online/fixtures.ts', import.meta.url).pathname;
const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });

describe('tessera stream --replay with a key too long for LMDB', () => {
  it(
    'fails naming the file row, or skips and counts it with --on-bad-row skip',
    { timeout: 90_000 },
    async () => {
      const repo = tempDir();
      cleanups.push(repo.remove);
      writeFileSync(
        join(repo.path, 'defs.ts'),
        `export { events, byUser } from ${JSON.stringify(fixtures)};\n`,
      );
      const all = randomEvents(9, 200, 5);
      const long = { ...all[0]!, user: 'u'.repeat(3000) };
      const lines = [...all.slice(0, 120), long, ...all.slice(120)].map((e) => JSON.stringify(e));
      writeFileSync(join(repo.path, 'replay.jsonl'), lines.join('\n'));
      const dataDir = join(repo.path, '.tessera');
      const args = [
        'stream',
        '--repo',
        repo.path,
        '--data-dir',
        dataDir,
        '--replay',
        join(repo.path, 'replay.jsonl'),
      ];

      const failed = await tessera(args).catch((e: { stderr: string }) => e);
      expect((failed as { stderr: string }).stderr).toMatch(
        /row 121, column 'user': the key of group-by 'by_user' is 3000 bytes, more than the LMDB store's \d+ for it/,
      );

      const st = await tessera([...args, '--on-bad-row', 'skip']);
      expect(st.stdout).toContain(`appended ${all.length} events of 'events'`);
      expect(st.stdout).toMatch(/\(\d+ invalid events skipped\)/);
      const store = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
      await expectUsersMatchOracle(store, all);
      await store.close();
    },
  );
});
