import type { Channel } from './world.ts';

/** Which planted pattern produced a fraudulent charge; null for legitimate charges. */
export type FraudPattern = 'card_testing' | 'velocity_burst' | 'ip_ring' | 'other';

/**
 * One synthetic card charge, as written to `charges.parquet` (`ts` becomes a TIMESTAMP column).
 *
 * `fraud_pattern` is ground truth for checking the demo; it must never feed a feature (it would leak the
 * label), which is why the feature repo only aggregates the other columns.
 */
export interface Charge {
  ts: number;
  charge_id: string;
  card_id: string;
  merchant_id: string;
  merchant_category: string;
  /** Dollars; negative for refunds (the source's row filter drops them). */
  amount: number;
  email_domain: string;
  /** Null for card-present (POS) charges. */
  ip: string | null;
  /** Null for POS and for some web checkouts without a fingerprint. */
  device_id: string | null;
  /** Country the charge originates from (POS: where the terminal is; online: IP geolocation). */
  country: string;
  card_bin: string;
  channel: Channel;
  is_fraud: boolean;
  fraud_pattern: FraudPattern | null;
}

/** Column order of the written file. */
export const CHARGE_COLUMNS = [
  'charge_id',
  'ts',
  'card_id',
  'merchant_id',
  'merchant_category',
  'amount',
  'email_domain',
  'ip',
  'device_id',
  'country',
  'card_bin',
  'channel',
  'is_fraud',
  'fraud_pattern',
] as const satisfies readonly (keyof Charge)[];
