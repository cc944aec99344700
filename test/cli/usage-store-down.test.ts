/**
 * Reviewer finding: `tessera usage --store redis` with Redis down printed ioredis' "Reached the max retries
 * per request limit (which is 3). Refer to "maxRetriesPerRequest" option..". It must name the store URL
 * and the fix instead.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register as registerUsage } from '../../src/cli/commands/usage.ts';
import { freePort } from '../support/servers.ts';

const REPO = new URL('../serve/fixture-repo', import.meta.url).pathname;

describe('tessera usage --store redis with nothing listening', () => {
  it('names the store URL and the fix, not the Redis client option', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const program = new Command('tessera').exitOverride();
    registerUsage(program);
    const run = program.parseAsync(['usage', '--repo', REPO, '--store', 'redis', '--redis', url], {
      from: 'user',
    });
    await expect(run).rejects.toThrow(
      new RegExp(
        `^the Redis store at ${url.replace(/\./g, '\\.')} does not answer \\(.+\\)\\. Start Redis, or point --redis`,
      ),
    );
    await expect(run).rejects.not.toThrow(/maxRetriesPerRequest|max retries/);
  }, 30_000);
});
