import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCharges, planCharges, type Charge } from '../../examples/fraud/generate.ts';
import { writeTrainingRows } from '../../examples/fraud/training-rows.ts';
import { fraudRateByDecile } from '../../examples/fraud/decile-report.ts';
import { fraudModel } from '../../examples/fraud/features/fraud-model.ts';
import { runBackfill } from '../../src/offline/backfill.ts';

/**
 * The example end to end at a small size: generate, backfill fraud_model, and check it against a naive
 * oracle and the planted patterns. The backfill gets a temporary repo folder, so the source's relative
 * path `../data/charges.parquet` resolves to the temporary data instead of the user's.
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
    const repo = { dir: join(dir, 'features'), joins: [fraudModel] };
    const result = await runBackfill({ repo, join: 'fraud_model', left: charges.path, out, progress: false });
    expect(result).toMatchObject({ rows: 4000, features: 73, badRows: 0 });

    const rows = await query(`SELECT charge_id, is_fraud FROM read_parquet('${out}')`);
    expect(rows).toHaveLength(4000);
    // Left rows keep their order (the generator numbers charges in file order).
    expect(rows.map(([id]) => id)).toEqual(rows.map((_, i) => `ch_${String(i).padStart(10, '0')}`));
    expect(rows.filter(([, fraud]) => fraud).length).toBe(charges.fraudRows);
  });

  it('matches a naive DESIGN §1 oracle on card and IP windows', async () => {
    const events = [...planCharges({ events: 4000, seed: 2 }).days()].flat().filter((c) => c.amount > 0);
    const byKey = (key: 'card_id' | 'ip') => {
      const map = new Map<string, Charge[]>();
      for (const e of events) if (e[key] !== null) map.set(e[key]!, [...(map.get(e[key]!) ?? []), e]);
      return map;
    };
    const cards = byKey('card_id');
    const ips = byKey('ip');
    const MIN = 60_000;
    const HOUR = 60 * MIN;
    const DAY = 24 * HOUR;
    // [feature, key column, size, hop] with the DESIGN default hops (1m/5m/1h/1d) and the 10m hop override.
    const windows: [string, 'card_id' | 'ip', number | null, number][] = [
      ['card_velocity_count_5m', 'card_id', 5 * MIN, 1000],
      ['card_velocity_count_1h', 'card_id', HOUR, 5 * MIN],
      ['card_velocity_count_7d', 'card_id', 7 * DAY, HOUR],
      ['card_velocity_count_30d', 'card_id', 30 * DAY, DAY],
      ['card_velocity_count_lifetime', 'card_id', null, DAY],
      ['ip_stats_count_10m', 'ip', 10 * MIN, 1000],
      ['ip_stats_count_1d', 'ip', DAY, HOUR],
    ];
    const columns = windows.map(([f]) => `${f}::INTEGER`).join(', ');
    const rows = await query(
      `SELECT card_id, ip, epoch_ms(ts), card_velocity_amount_avg_1d, ${columns} FROM read_parquet('${out}')`,
    );
    const inWindow = (list: Charge[] | undefined, t: number, size: number | null, hop: number) =>
      (list ?? []).filter((e) => e.ts < t && (size === null || e.ts >= Math.floor((t - size) / hop) * hop));
    let checked = 0;
    for (const [card, ip, ts, avg1d, ...counts] of rows) {
      const t = Number(ts);
      windows.forEach(([feature, key, size, hop], i) => {
        const list = key === 'card_id' ? cards.get(card as string) : ip === null ? [] : ips.get(ip as string);
        expect(Number(counts[i]), `${feature} at ${t}`).toBe(inWindow(list, t, size, hop).length);
        checked++;
      });
      const day = inWindow(cards.get(card as string), t, DAY, 10 * MIN);
      const want = day.length === 0 ? null : day.reduce((n, e) => n + e.amount, 0) / day.length;
      if (want === null) expect(avg1d).toBe(null);
      else expect(Math.abs((avg1d as number) - want)).toBeLessThanOrEqual(1e-9 * Math.abs(want));
    }
    expect(checked).toBe(4000 * windows.length);
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

  it('picks the last 30 days as training rows, in file order', async () => {
    const path = join(dir, 'data', 'training_rows.parquet');
    const n = await writeTrainingRows(join(dir, 'data', 'charges.parquet'), path, 30);
    const rows = await query(`SELECT charge_id, epoch_ms(ts) FROM read_parquet('${path}')`);
    expect(rows).toHaveLength(n);
    const all = [...planCharges({ events: 4000, seed: 2 }).days()].flat();
    const cutoff = all[all.length - 1].ts - 30 * 86_400_000;
    expect(rows.map(([id]) => id)).toEqual(all.filter((c) => c.ts >= cutoff).map((c) => c.charge_id));
  });
});
