import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { repo } from './fixtures.ts';

/**
 * A `--no-workers` node learns the workers' progress from what they commit to the store
 * (committed-progress.ts). When those reads keep failing, lag and freshness would silently stay as of the
 * last success: the node logs the failure once per streak, counts failures, exposes the age of its view
 * of progress, and calls features stale once it has been blind for longer than --stale-after.
 */
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('serve --no-workers when reading committed progress fails', () => {
  it('logs once per failure streak, counts failures, ages its progress and turns features stale', async () => {
    const dir = tempDir('tessera-progress-fail-');
    dirs.push(dir);
    const logged: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void logged.push(String(m)));
    const staleAfterMs = 1500;
    const server = await startEmbedded({
      repo,
      dataDir: join(dir, 'state'),
      port: 0,
      workers: false,
      staleAfterMs,
    });
    const store = server.store;
    const readOffsets = store.readOffsets.bind(store);
    let failing = false;
    store.readOffsets = (names) =>
      failing ? Promise.reject(new Error('NOPERM no read access to the offset keys')) : readOffsets(names);
    const metric = async (name: string) => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const v = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
      if (v === undefined) throw new Error(`no ${name} in /metrics`);
      return Number(v);
    };
    const status = async () =>
      ((await (await fetch(`${server.url}/v1/groupbys/card_stats?card_id=c1`)).json()) as any).status
        .card_stats_count_1h as string;
    try {
      await sleep(300);
      expect(await status()).toBe('missing_key');
      expect(await metric('tessera_progress_read_failures_total')).toBe(0);
      expect(await metric('tessera_progress_age_seconds')).toBeLessThan(1);

      failing = true;
      await waitFor('a failed read', () => logged.length > 0);
      // Blind for less than --stale-after: not stale yet.
      expect(await status()).toBe('missing_key');
      await sleep(staleAfterMs + 300);
      expect(await status()).toBe('stale');
      expect(await metric('tessera_progress_read_failures_total')).toBeGreaterThanOrEqual(5);
      expect(await metric('tessera_progress_age_seconds')).toBeGreaterThan(staleAfterMs / 1000);
      // One line for the whole streak (a read every 100 ms), naming what failed, the effect and the fix.
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatch(
        /reading the stream workers' committed progress from the online store failed: NOPERM no read access.*tessera_progress_age_seconds.*'stale'.*check that the online store is reachable/,
      );

      failing = false;
      await waitFor('status back to missing_key', async () => (await status()) === 'missing_key');
      expect(await metric('tessera_progress_age_seconds')).toBeLessThan(1);
      expect(logged).toHaveLength(2);
      expect(logged[1]).toMatch(/pipeline progress read again after \d+ failed attempt\(s\)/);
    } finally {
      spy.mockRestore();
      await server.close();
    }
  }, 30_000);
});
