/**
 * Audit finding (new-user walkthrough): after `npm start` (store in examples/fraud/data/online), the README's
 * `tessera fetch --repo DIR --groupby ... --key ...` silently created an empty `.tessera/store` in the
 * current folder and answered `missing_key` for every feature. Read-only commands must fail with the fix.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { register as registerFetch } from '../../src/cli/commands/fetch.ts';
import { register as registerUsage } from '../../src/cli/commands/usage.ts';
import { serverError } from '../../src/cli/read-store.ts';

const REPO = new URL('../serve/fixture-repo', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(register: (p: Command) => void, args: string[]): Promise<unknown> {
  const program = new Command('tessera').exitOverride();
  register(program);
  return program.parseAsync(args, { from: 'user' });
}

describe('read-only commands on a missing LMDB store', () => {
  it('tessera fetch names the missing store and the fix, and creates nothing', async () => {
    const dataDir = join(dir, 'nope');
    await expect(
      run(registerFetch, [
        'fetch',
        '--repo',
        REPO,
        '--data-dir',
        dataDir,
        '--groupby',
        'user_spend',
        '--key',
        'user_id=u1',
      ]),
    ).rejects.toThrow(/no LMDB store at .*nope.store.*--data-dir.*--url/s);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('tessera usage does the same', async () => {
    const dataDir = join(dir, 'nope2');
    await expect(run(registerUsage, ['usage', '--repo', REPO, '--data-dir', dataDir])).rejects.toThrow(
      /no LMDB store at .*nope2.store/,
    );
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('--url errors', () => {
  it('a 401 says how to pass the token on the command line', () => {
    const err = serverError('http://h:1', 401, { message: 'missing or wrong bearer token' });
    expect(err.message).toBe(
      'http://h:1 answered 401: missing or wrong bearer token (pass --token TOKEN or set TESSERA_TOKEN)',
    );
    expect(serverError('http://h:1', 404, { message: 'unknown join' }).message).toBe(
      'http://h:1 answered 404: unknown join',
    );
  });
});
