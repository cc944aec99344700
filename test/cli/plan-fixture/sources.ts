import { col, eventSource } from '../../../src/index.ts';

export const charges = eventSource({
  name: 'charges',
  path: 'data/charges/*.csv',
  timeColumn: 'ts',
  schema: { card_id: col.string(), merchant_id: col.string(), amount: col.float(), ts: col.timestamp() },
  derive: { is_large: { type: col.bool(), fn: (r) => r.amount > 500 } },
  filter: (r) => r.amount > 0,
});
