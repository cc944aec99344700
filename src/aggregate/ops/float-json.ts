import { randomUUID } from 'node:crypto';
/**
 * How a float feature value is written as JSON (HTTP responses, and the JSON text of list-valued features in
 * backfill output), where numbers have no Infinity or NaN. DESIGN §1 computes in float64, so an overflow is
 * ±Infinity (the sum of 1e308 and 1e308): it is written as `1e999` / `-1e999`, valid JSON number syntax
 * that JavaScript's `JSON.parse` and Python's `json` read back as ±Infinity, so a client sees the value the
 * backfill's Parquet/CSV holds. (Parsers limited to float64, such as Go's, reject it; only sums and
 * variances past ~1.8e308 produce one.) NaN, which only NaN inputs in Parquet/CSV produce, has no JSON form
 * and is null.
 *
 * @example
 * floatJson(1e308 + 1e308); // '1e999'
 * floatJson(NaN); // 'null'
 */
export function floatJson(x: number): string {
  if (x - x === 0) return String(x);
  return x === Infinity ? '1e999' : x === -Infinity ? '-1e999' : 'null';
}

/** Whether an array value (first_k, top_k, approx_percentile, …) holds a non-finite number. */
function hasNonFinite(v: readonly unknown[]): boolean {
  for (const x of v) if (typeof x === 'number' && x - x !== 0) return true;
  return false;
}

/**
 * `JSON.stringify` of a feature value, but numbers as `floatJson` writes them (JSON.stringify makes every
 * non-finite number null).
 *
 * @example
 * outputJson([Infinity, 2, NaN]); // '[1e999,2,null]'
 */
export function outputJson(v: unknown): string {
  if (typeof v === 'number') return floatJson(v);
  // Lists (first_k, top_k, approx_percentile, …) are checked; a histogram's counts are integers.
  return Array.isArray(v) && hasNonFinite(v) ? stringifyFloats(v) : JSON.stringify(v);
}

/** Marks a non-finite number in `stringifyFloats`' first pass: random per process, so no feature string is it. */
const MARK = `\u0000${randomUUID()}\u0000`;
const MARKED = new RegExp(`"${JSON.stringify(MARK).slice(1, -1).replace(/\\/g, '\\\\')}(-?1e999)"`, 'g');

/**
 * `JSON.stringify(value, null, indent)` with non-finite numbers anywhere in it written as `floatJson` writes
 * them (for output built from parsed objects, e.g. `tessera fetch`'s pretty-printed result).
 *
 * @example
 * stringifyFloats({ s: Infinity }); // '{"s":1e999}'
 */
export function stringifyFloats(value: unknown, indent?: number): string {
  let marked = false;
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v !== 'number' || v - v === 0 || v !== v) return v;
      marked = true;
      return `${MARK}${floatJson(v)}`;
    },
    indent,
  );
  return marked ? text.replace(MARKED, '$1') : text;
}
