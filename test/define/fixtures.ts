import { col, eventSource } from '../../src/index.ts';

/** A small charges source shared by definition tests. */
export const charges = eventSource({
  name: 'charges',
  path: 'data/charges/*.parquet',
  timeColumn: 'ts',
  schema: {
    charge_id: col.string(),
    card_id: col.string(),
    merchant_id: col.string(),
    amount: col.float(),
    cents: col.int(),
    ip: col.string().nullable(),
    is_fraud: col.bool(),
    ts: col.timestamp(),
  },
  derive: { is_large: { type: col.bool(), fn: (r) => r.amount > 500 } },
  filter: (r) => r.amount > 0,
  owner: 'risk',
});

/** A merchant dimension keyed like charges. */
export const refunds = eventSource({
  name: 'refunds',
  path: 'data/refunds.csv',
  timeColumn: 'ts',
  schema: { merchant_id: col.string(), card_id: col.string(), amount: col.float(), ts: col.timestamp() },
});
