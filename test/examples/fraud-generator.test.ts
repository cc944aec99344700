import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCharges, planCharges, type Charge } from '../../examples/fraud/generate.ts';

const DAY = 86_400_000;
function groupBy<T>(items: readonly T[], key: (item: T) => string | null): Map<string | null, T[]> {
  const out = new Map<string | null, T[]>();
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item]);
  return out;
}

const all = (events: number, seed: number): Charge[] => [...planCharges({ events, seed }).days()].flat();

async function readParquet(path: string): Promise<unknown[][]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const result = await connection.runAndReadAll(
      `SELECT charge_id, epoch_ms(ts), card_id, merchant_id, amount, ip, device_id, is_fraud, fraud_pattern
       FROM read_parquet('${path}')`,
    );
    return result.getRowsJS();
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

describe('fraud example generator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fraud-gen-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is deterministic: same seed gives the same charges, another seed different ones', () => {
    const a = all(3000, 7);
    expect(all(3000, 7)).toEqual(a);
    const b = all(3000, 8);
    expect(b.map((c) => c.card_id)).not.toEqual(a.map((c) => c.card_id));
  });

  it('produces exactly the requested count, sorted by time inside the period, with unique ids', () => {
    const plan = planCharges({ events: 5000, seed: 3 });
    const charges = [...plan.days()].flat();
    expect(charges).toHaveLength(5000);
    expect(new Set(charges.map((c) => c.charge_id)).size).toBe(5000);
    for (let i = 1; i < charges.length; i++) expect(charges[i].ts).toBeGreaterThanOrEqual(charges[i - 1].ts);
    expect(charges[0].ts).toBeGreaterThanOrEqual(plan.fromMs);
    expect(charges[charges.length - 1].ts).toBeLessThan(plan.toMs);
    expect(plan.toMs - plan.fromMs).toBe(120 * DAY);
    // days() can be replayed and gives the same data.
    expect([...plan.days()].flat()).toEqual(charges);
  });

  it('plants every fraud pattern with its signature', () => {
    const charges = all(20_000, 11);
    const byPattern = new Map<string, Charge[]>();
    for (const c of charges) {
      expect(c.is_fraud).toBe(c.fraud_pattern !== null);
      if (c.fraud_pattern) byPattern.set(c.fraud_pattern, [...(byPattern.get(c.fraud_pattern) ?? []), c]);
    }
    expect([...byPattern.keys()].sort()).toEqual(['card_testing', 'ip_ring', 'other', 'velocity_burst']);
    // Card testing: many distinct merchants per card, mostly tiny amounts, within minutes.
    const testing = byPattern.get('card_testing')!;
    const small = testing.filter((c) => c.amount < 5);
    expect(small.length / testing.length).toBeGreaterThan(0.7);
    // One attack = one card from one attacker IP (the same card may be attacked twice).
    const perAttack = groupBy(small, (c) => `${c.card_id} ${c.ip}`);
    for (const probes of perAttack.values()) {
      expect(new Set(probes.map((c) => c.merchant_id)).size).toBeGreaterThanOrEqual(5);
      expect(probes[probes.length - 1].ts - probes[0].ts).toBeLessThan(30 * 60_000);
    }
    // IP ring: one IP shared by many cards.
    const ring = byPattern.get('ip_ring')!;
    const cardsPerIp = groupBy(ring, (c) => c.ip);
    const biggest = Math.max(...[...cardsPerIp.values()].map((cs) => new Set(cs.map((c) => c.card_id)).size));
    expect(biggest).toBeGreaterThanOrEqual(5);
    // The overall fraud rate stays realistic (well under 2%).
    const fraudRate = charges.filter((c) => c.is_fraud).length / charges.length;
    expect(fraudRate).toBeGreaterThan(0.001);
    expect(fraudRate).toBeLessThan(0.02);
  });

  it('writes identical Parquet files for the same seed, atomically', async () => {
    const first = await generateCharges({ events: 2000, seed: 5, outDir: dir, fileName: 'a.parquet' });
    const second = await generateCharges({ events: 2000, seed: 5, outDir: dir, fileName: 'b.parquet' });
    expect(first.rows).toBe(2000);
    expect(second.fraudRows).toBe(first.fraudRows);
    const rowsA = await readParquet(first.path);
    expect(rowsA).toHaveLength(2000);
    expect(await readParquet(second.path)).toEqual(rowsA);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects sizes too small to hold the planted patterns', () => {
    expect(() => planCharges({ events: 10, seed: 1 })).toThrowErrorMatchingInlineSnapshot(
      `[Error: planCharges: events must be an integer >= 500 (got 10); pass a larger --events.]`,
    );
  });
});
