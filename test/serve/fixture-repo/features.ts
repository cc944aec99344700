import { col, count, eventSource, groupBy, join, sum } from '../../../src/index.ts';

/** A tiny feature repo for `tessera serve` / `tessera fetch` CLI tests (no data files: online only). */
export const payments = eventSource({
  name: 'payments',
  path: 'data/payments.jsonl',
  timeColumn: 'ts',
  schema: { user_id: col.string(), amount: col.float(), ts: col.timestamp() },
});

export const userSpend = groupBy({
  name: 'user_spend',
  source: payments,
  keys: ['user_id'],
  aggregations: [count({ windows: ['1h', 'lifetime'] }), sum('amount', { windows: ['1d'] })],
});

export const spendModel = join({
  name: 'spend_model',
  left: payments,
  parts: [{ groupBy: userSpend, keys: { user_id: 'user_id' } }],
});
