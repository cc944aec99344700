import { col, eventSource } from '../../../src/index.ts';

/**
 * Card charges: one row per authorization attempt. Written by `examples/fraud/generate.ts`.
 *
 * `is_fraud` (the label) is declared so a join can carry it as a left column; no group-by aggregates it,
 * because chargebacks arrive weeks late and would leak the future into training data. The file's ground
 * truth column `fraud_pattern` is deliberately left out of the schema, so no feature can read it.
 */
export const charges = eventSource({
  name: 'charges',
  // Relative to this feature repo folder (examples/fraud/features); the data folder is git-ignored.
  path: '../data/charges.parquet',
  format: 'parquet',
  timeColumn: 'ts',
  schema: {
    charge_id: col.string(),
    ts: col.timestamp(),
    card_id: col.string(),
    merchant_id: col.string(),
    merchant_category: col.string(),
    amount: col.float(),
    email_domain: col.string(),
    ip: col.string().nullable(),
    device_id: col.string().nullable(),
    country: col.string(),
    card_bin: col.string(),
    channel: col.string(),
    is_fraud: col.bool(),
  },
  derive: {
    // Card testers probe stolen cards with tiny amounts; null otherwise, so count() only counts probes.
    small_amount: { type: col.float().nullable(), fn: (r) => (r.amount < 5 ? r.amount : null) },
    is_online: { type: col.bool(), fn: (r) => r.channel !== 'pos' },
  },
  // Refunds are negative amounts: they are not purchases and must not inflate velocity features.
  filter: (r) => r.amount > 0,
  owner: 'payments-data',
  description: 'Card charges (authorizations), one row per attempt; refunds filtered out.',
});
