import type { Scalar } from '../define/types.ts';

/** Separator between key columns, and the escape that keeps a value holding either injective. */
const SEP = '\u001f';
const ESC = '\u001e';
const ESCAPED = /[\u001e\u001f]/g;

/** A multi-column key value with SEP/ESC escaped, so distinct tuples never join to one string. */
function part(v: string): string {
  return v.indexOf(SEP) < 0 && v.indexOf(ESC) < 0 ? v : v.replace(ESCAPED, (c) => ESC + c);
}

/**
 * Builds the store's entity key string from a group-by's key values, in the group-by's key column order.
 * Numbers and booleans use `String(v)`, so `card_id = 42` and `"42"` address the same entity (sources
 * normalize types before this point). Returns null when any key value is null: such events have no entity.
 * Multi-column keys join the values with U+001F, escaping U+001E/U+001F inside a value with U+001E, so the
 * key is injective on tuples (DESIGN §1 groups by tuple equality) and separator-free keys read naturally.
 *
 * @example
 * entityKey(['card_1']);            // 'card_1'
 * entityKey(['m_9', 'US']);         // 'm_9\u001fUS'
 * entityKey(['q\u001fUS', 'DE']);   // 'q\u001e\u001fUS\u001fDE' (not ['q', 'US\u001fDE'])
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
    out += i === 0 ? part(String(v)) : SEP + part(String(v));
  }
  return out;
}
