import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { openStore } from '../../src/online/open-store.ts';
import { byUser, closeTo, naive, randomEvents, tempDir } from '../online/fixtures.ts';

const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('../online/fixtures.ts', import.meta.url).pathname;
const tessera = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });

const repo = tempDir('tessera-upload-eh-');
afterAll(() => repo.remove());

describe('tessera upload --exact-history', () => {
  it(
    'sets how far before --until fetches stay exact (0 vs 3h), and rejects bad durations',
    { timeout: 90_000 },
    async () => {
      writeFileSync(
        join(repo.path, 'defs.ts'),
        `export { events, byUser } from ${JSON.stringify(fixtures)};\n`,
      );
      const all = randomEvents(7, 400, 4);
      mkdirSync(join(repo.path, 'data'));
      writeFileSync(join(repo.path, 'data', 'history.jsonl'), all.map((e) => JSON.stringify(e)).join('\n'));
      const until = Math.max(...all.map((e) => e.ts as number)) + 1;
      const upload = (dataDir: string, exactHistory: string) =>
        tessera([
          'upload',
          '--repo',
          repo.path,
          '--groupby',
          'by_user',
          '--until',
          String(until),
          '--data-dir',
          dataDir,
          '--exact-history',
          exactHistory,
        ]);
      const dirs = { zero: join(repo.path, 'zero'), three: join(repo.path, 'three') };
      await Promise.all([upload(dirs.zero, '0'), upload(dirs.three, '3h')]);

      const at = until - 2 * 3_600_000;
      const users = [...new Set(all.map((e) => e.user as string))].sort();
      const fetchAt = async (dir: string) => {
        const store = openStore({ kind: 'lmdb', path: join(dir, 'store') });
        try {
          const [values] = await createFetchGroupBys(store)(
            [{ id: groupById(byUser), groupBy: byUser, keys: users }],
            at,
          );
          return values;
        } finally {
          await store.close();
        }
      };
      const three = await fetchAt(dirs.three);
      users.forEach((u, i) => {
        expect(three[i].status).toBe('ok');
        expect(closeTo(three[i].values, naive(all, 'by_user', u, at))).toBe(true);
      });
      // With 0, tiles were compacted to --until: a fetch 2h earlier is flagged, never a wrong value.
      const zero = await fetchAt(dirs.zero);
      expect(zero.every((v) => v.status === 'inexact')).toBe(true);

      await expect(upload(join(repo.path, 'bad'), '5 parsecs')).rejects.toMatchObject({
        stderr: expect.stringContaining('--exact-history'),
      });
    },
  );
});
