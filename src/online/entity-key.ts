import type { Scalar } from '../define/types.ts';

/** Separator between key columns: a control char that does not occur in sane key values. */
const SEP = '\u001f';

/**
 * Builds the store's entity key string from a group-by's key values, in the group-by's key column order.
 * Numbers and booleans use `String(v)`, so `card_id = 42` and `"42"` address the same entity (sources
 * normalize types before this point). Returns null when any key value is null: such events have no entity.
 *
 * @example
 * entityKey(['card_1']);            // 'card_1'
 * entityKey(['m_9', 'US']);         // 'm_9\u001fUS'
 */
export function entityKey(values: readonly (Scalar | null | undefined)[]): string | null {
  if (values.length === 1) {
    const v = values[0];
    return v === null || v === undefined ? null : String(v);
  }
  let out = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) return null;
    out += i === 0 ? String(v) : SEP + String(v);
  }
  return out;
}
