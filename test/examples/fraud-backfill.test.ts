import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCharges } from '../../examples/fraud/generate.ts';
import { fraudRateByDecile } from '../../examples/fraud/decile-report.ts';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { runBackfill } from '../../src/offline/backfill.ts';

/**
 * The example end to end at a small size: generate, load the repo, backfill fraud_model, and check that
 * the planted patterns show in the features. The feature repo is a temporary folder re-exporting the
 * example's join, so `../data/charges.parquet` resolves to the temporary data instead of the user's.
 */
describe('fraud example backfill', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fraud-e2e-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'data', 'fraud_model.parquet');

  async function query(sql: string): Promise<unknown[][]> {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      return (await connection.runAndReadAll(sql)).getRowsJS();
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  }

  it('backfills every charge with all features, in order', async () => {
    const charges = await generateCharges({ events: 4000, seed: 2, outDir: join(dir, 'data') });
    mkdirSync(join(dir, 'features'));
    const model = pathToFileURL(resolve('examples/fraud/features/fraud-model.ts')).href;
    writeFileSync(join(dir, 'features', 'fraud.ts'), `export { fraudModel } from '${model}';\n`);

    const repo = await loadRepo(join(dir, 'features'));
    expect(repo.groupBys).toHaveLength(9);
    const result = await runBackfill({ repo, join: 'fraud_model', left: charges.path, out, progress: false });
    expect(result).toMatchObject({ rows: 4000, features: 74, badRows: 0 });

    const rows = await query(`SELECT charge_id, is_fraud FROM read_parquet('${out}')`);
    expect(rows).toHaveLength(4000);
    // Left rows keep their order (the generator numbers charges in file order).
    expect(rows.map(([id]) => id)).toEqual(rows.map((_, i) => `ch_${String(i).padStart(10, '0')}`));
    expect(rows.filter(([, fraud]) => fraud).length).toBe(charges.fraudRows);
  });

  it('charges never see themselves, and planted patterns light up their features', async () => {
    // The very first charge of the dataset has no history at all.
    const [[firstCount, firstSum]] = await query(
      `SELECT card_velocity_count_lifetime::INTEGER, card_velocity_amount_sum_1h FROM read_parquet('${out}') WHERE charge_id = 'ch_0000000000'`,
    );
    expect(firstCount).toBe(0);
    expect(firstSum).toBe(null);
    // Card-testing charges see many distinct merchants in the last 10 minutes; legitimate ones almost never.
    const means = Object.fromEntries(
      await query(
        `SELECT coalesce(fraud_pattern, 'legit'), avg(card_velocity_merchant_id_unique_count_10m),
                avg(ip_stats_card_id_unique_count_7d)
         FROM read_parquet('${out}') GROUP BY 1`,
      ).then((rows) =>
        rows.map(([p, merchants, cards]) => [p, { merchants: Number(merchants), cards: Number(cards) }]),
      ),
    );
    expect(means.card_testing.merchants).toBeGreaterThan(3);
    expect(means.legit.merchants).toBeLessThan(0.2);
    expect(means.ip_ring.cards).toBeGreaterThan(2);
    expect(means.legit.cards).toBeLessThan(1.5);
    const report = await fraudRateByDecile(out, 'card_velocity_merchant_id_unique_count_10m');
    const top = report.rows[report.rows.length - 1];
    const rest = report.rows.slice(0, -1);
    expect(top.fraud / top.rows).toBeGreaterThan(
      rest.reduce((n, r) => n + r.fraud, 0) / rest.reduce((n, r) => n + r.rows, 0),
    );
  });
});
