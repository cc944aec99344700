import { describe, expect, it } from 'vitest';
import { createServeApp } from '../../src/serve/app.ts';
import { emptyService } from './fixtures.ts';

describe('tessera_groupby_freshness_seconds', () => {
  it('is the age of the newest applied event, and 0 (never negative) for one ahead of the clock', async () => {
    let watermark = 95_000;
    const app = createServeApp({
      service: emptyService(),
      progress: () => [{ source: 'tx', lag: 0, watermark }],
      now: () => 100_000,
    });
    const freshness = async () =>
      /tessera_groupby_freshness_seconds\{group_by="card_stats"\} (\S+)/.exec(
        (await app.inject('/metrics')).body,
      )?.[1];
    expect(await freshness()).toBe('5');
    watermark = 147_000; // an event stamped 47 s ahead (workers accept up to maxFutureMs)
    expect(await freshness()).toBe('0');
    await app.close();
  });
});
