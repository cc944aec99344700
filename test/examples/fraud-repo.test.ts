import { describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { accountTakeoverModel } from '../../examples/fraud/features/account-takeover-model.ts';
import { buildPlan, featureNames, type GroupByDef, type OpName } from '../../src/index.ts';
import * as cards from '../../examples/fraud/features/card-features.ts';
import { charges } from '../../examples/fraud/features/charges.ts';
import { fraudModel } from '../../examples/fraud/features/fraud-model.ts';
import * as merchants from '../../examples/fraud/features/merchant-features.ts';
import * as network from '../../examples/fraud/features/network-features.ts';
import * as pairs from '../../examples/fraud/features/pair-features.ts';

const groupBys = [cards, merchants, network, pairs].flatMap((m) => Object.values(m) as GroupByDef[]);

describe('fraud example feature repo', () => {
  it('loads and validates as a feature repo folder', async () => {
    const repo = await loadRepo('examples/fraud/features', { checkFiles: false });
    expect(repo.sources.map((s) => s.name)).toEqual(['charges']);
    expect(repo.groupBys).toHaveLength(9);
    expect(repo.joins.map((j) => j.name).sort()).toEqual(['account_takeover_model', 'fraud_model']);
  });

  it('shares group-bys between the two models: one hash, one computation', () => {
    const plan = buildPlan({ sources: [charges], groupBys, joins: [fraudModel, accountTakeoverModel] });
    expect(plan.groupBys).toHaveLength(9);
    const hashes = (name: string) =>
      new Map(plan.joins.find((j) => j.name === name)!.parts.map((p) => [p.groupBy, p.hash]));
    const fraud = hashes('fraud_model');
    const ato = hashes('account_takeover_model');
    expect([...ato.keys()].sort()).toEqual([
      'card_geo',
      'card_velocity',
      'device_stats',
      'email_domain_stats',
    ]);
    for (const [name, hash] of ato) expect(hash).toBe(fraud.get(name));
  });

  it('has at least 8 group-bys over charges, keyed by different entities, all in fraud_model', () => {
    expect(groupBys.length).toBeGreaterThanOrEqual(8);
    for (const g of groupBys) {
      expect(g.kind).toBe('groupBy');
      expect(g.source).toBe(charges);
    }
    const keySets = new Set(groupBys.map((g) => g.keys.join('+')));
    for (const key of [
      'card_id',
      'merchant_id',
      'email_domain',
      'ip',
      'device_id',
      'card_bin+country',
      'card_id+merchant_id',
    ]) {
      expect(keySets).toContain(key);
    }
    expect(fraudModel.kind).toBe('join');
    expect(fraudModel.name).toBe('fraud_model');
    expect(new Set(fraudModel.parts.map((p) => p.groupBy))).toEqual(new Set(groupBys));
  });

  it('has at least 50 uniquely named features using most ops and windows from 5m to 90d plus lifetime', () => {
    const names = featureNames(fraudModel);
    expect(names.length).toBeGreaterThanOrEqual(50);
    expect(new Set(names).size).toBe(names.length);
    const aggregations = groupBys.flatMap((g) => g.aggregations);
    const ops = new Set<OpName>(aggregations.map((a) => a.op));
    expect(ops.size).toBe(17);
    const windows = new Set(aggregations.flatMap((a) => a.windows.map((w) => w.label)));
    for (const w of ['5m', '10m', '1h', '1d', '7d', '30d', '90d', 'lifetime']) expect(windows).toContain(w);
    // One window overrides its default hop, to show the feature.
    expect(aggregations.some((a) => a.windows.some((w) => w.label === '1d' && w.hopMs === 600_000))).toBe(
      true,
    );
  });

  it('carries the label as a left column and never aggregates it', () => {
    expect(fraudModel.left).toBe(charges);
    expect(charges.schema.is_fraud?.type).toBe('bool');
    expect('fraud_pattern' in charges.schema).toBe(false);
    for (const a of groupBys.flatMap((g) => g.aggregations)) expect(a.input).not.toBe('is_fraud');
  });

  it('computes derivations from features and the left row', () => {
    const derive = Object.fromEntries(fraudModel.derivations.map((d) => [d.name, d.fn]));
    const row = { amount: 300, country: 'US' };
    expect(derive.amount_vs_card_avg_30d({ card_velocity_amount_avg_30d: 100 }, row)).toBe(3);
    expect(derive.amount_vs_card_avg_30d({ card_velocity_amount_avg_30d: null }, row)).toBe(null);
    expect(derive.first_time_at_merchant({ pair_card_merchant_stats_count_lifetime: 0 }, row)).toBe(true);
    expect(derive.country_changed({ card_velocity_country_last_lifetime: 'NG' }, row)).toBe(true);
    expect(derive.country_changed({ card_velocity_country_last_lifetime: null }, row)).toBe(false);
    const newDevice = accountTakeoverModel.derivations[0].fn;
    expect(newDevice({ card_geo_device_id_last_lifetime: 'dev_a' }, { device_id: 'dev_b' })).toBe(true);
    expect(newDevice({ card_geo_device_id_last_lifetime: 'dev_a' }, { device_id: 'dev_a' })).toBe(false);
    expect(newDevice({ card_geo_device_id_last_lifetime: 'dev_a' }, { device_id: null })).toBe(false);
  });
});
