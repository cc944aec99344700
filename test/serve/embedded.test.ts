import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { tempDir } from '../offline/support.ts';
import { modelA, repo } from './fixtures.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('embedded runtime', () => {
  it('reports lag, freshness, applied events and store reads in /metrics and progress()', async () => {
    const dir = tempDir('tessera-embedded-');
    dirs.push(dir);
    const server = await startEmbedded({ repo, dataDir: join(dir, 'state'), port: 0 });
    try {
      const client = createClient({ url: server.url });
      const t = Date.now();
      await client.ingest('tx', [
        { card_id: 'c1', merchant_id: 'm1', amount: 3, ts: t - 2000 },
        { card_id: 'c1', merchant_id: 'm2', amount: 4, ts: t - 1000 },
      ]);
      await server.drain();
      const [row] = await client.features(modelA, [{ card_id: 'c1', merchant_id: 'm2' }]);
      expect(row!.features).toMatchObject({
        card_stats_count_1h: 2,
        card_stats_amount_sum_1d: 7,
        m_merchant_stats_count_1h: 1,
      });
      expect(new Set(Object.values(row!.status))).toEqual(new Set(['ok']));

      expect(await server.progress()).toEqual([{ source: 'tx', lag: 0, watermark: t - 1000 }]);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain('tessera_source_lag_events{source="tx"} 0');
      expect(metrics).toMatch(/tessera_groupby_freshness_seconds\{group_by="card_stats"\} \d/);
      expect(metrics).toContain('tessera_groupby_events_applied{group_by="card_stats"} 2');
      expect(metrics).toContain('tessera_groupby_events_late_beyond_retention{group_by="card_stats"} 0');
      expect(metrics).toContain('tessera_store_reads_total 1');
      expect(metrics).toContain('tessera_store_keys_read_total 2');
      expect(metrics).toMatch(/tessera_fetch_seconds_count\{join="model_a"\} 1/);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
