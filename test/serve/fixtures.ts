import { col, count, eventSource, groupBy, join, last, sum } from '../../src/index.ts';
import { emptyGroupValues, type FetchedValues } from '../../src/online/fetch-group-bys.ts';
import { createFeatureService, type FeatureService } from '../../src/serve/feature-service.ts';
import type { FetchPlan } from '../../src/serve/fetch-plan.ts';

/** A small repo for serving tests: two joins sharing `card_stats`. */
export const tx = eventSource({
  name: 'tx',
  path: 'data/tx.jsonl',
  timeColumn: 'ts',
  schema: {
    card_id: col.string(),
    merchant_id: col.string(),
    amount: col.float(),
    ts: col.timestamp(),
  },
});

export const cardStats = groupBy({
  name: 'card_stats',
  source: tx,
  keys: ['card_id'],
  aggregations: [count({ windows: ['1h', '1d'] }), sum('amount', { windows: ['1d'] })],
});

export const merchantStats = groupBy({
  name: 'merchant_stats',
  source: tx,
  keys: ['merchant_id'],
  aggregations: [count({ windows: ['1h'] }), last('card_id', { windows: ['1d'] })],
});

export const modelA = join({
  name: 'model_a',
  left: tx,
  parts: [
    { groupBy: cardStats, keys: { card_id: 'card_id' } },
    { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
  ],
});

export const modelB = join({
  name: 'model_b',
  left: tx,
  parts: [{ groupBy: cardStats, keys: { card_id: 'card_id' } }],
  derive: {
    amount_share: {
      type: col.float(),
      fn: (f, row) =>
        f.card_stats_amount_sum_1d === null ? null : row.amount / (f.card_stats_amount_sum_1d + row.amount),
    },
  },
});

export const repo = { sources: [tx], groupBys: [cardStats, merchantStats], joins: [modelA, modelB] };

/** A feature service over `repo` whose store holds nothing (every key missing): for HTTP-layer tests. */
export function emptyService(now?: () => number): FeatureService {
  return createFeatureService({
    repo,
    groupById: (g) => g.name,
    fetchGroups: async (groups) => groups.map((g) => g.keys.map(() => emptyGroupValues(g.groupBy))),
    emptyValues: emptyGroupValues,
    ...(now ? { now } : {}),
  });
}

/** Fetched values for every entity of `plan`: each value from `value()`, each entity's status code from `status()`. */
export function fetchedValues(plan: FetchPlan, value: () => unknown, status: () => number): FetchedValues {
  const entity: Int32Array[] = [];
  const codes: number[] = [];
  const base: number[] = [];
  const values: unknown[] = [];
  for (const g of plan.groups) {
    entity.push(Int32Array.from(g.keys, (_, k) => codes.length + k));
    const width = g.groupBy.aggregations.reduce((w, a) => w + a.windows.length, 0);
    for (let k = 0; k < g.keys.length; k++) {
      codes.push(status());
      base.push(values.length);
      for (let i = 0; i < width; i++) values.push(value());
    }
  }
  return { entity, status: Uint8Array.from(codes), base, values };
}
