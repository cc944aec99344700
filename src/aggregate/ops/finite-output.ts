/**
 * How a float feature value leaves Tessera, the same in HTTP JSON, Parquet and CSV (README "Semantics"):
 * finite or null. JSON has no Infinity or NaN, and a null would read as an empty window, so an overflow
 * (±Infinity) becomes the largest float of its sign, ±Number.MAX_VALUE (≈ ±1.8e308): a clear, ordered
 * value that compares like the overflow did. NaN (from NaN or opposite infinite inputs, which only Parquet
 * or CSV files can hold) has no such value and becomes null.
 *
 * @example
 * outputFloat(1e308 + 1e308); // 1.7976931348623157e308
 * outputFloat(NaN); // null
 */
export function outputFloat(x: number): number | null {
  if (x - x === 0) return x;
  if (x === Infinity) return Number.MAX_VALUE;
  if (x === -Infinity) return -Number.MAX_VALUE;
  return null;
}

/** Whether an array value (first_k, top_k, approx_percentile, …) holds a non-finite number. */
function hasNonFinite(v: readonly unknown[]): boolean {
  for (const x of v) if (typeof x === 'number' && x - x !== 0) return true;
  return false;
}

/**
 * `JSON.stringify` of a feature value with `outputFloat` applied to its numbers, as they are (instead of
 * JSON's null) for an array holding a non-finite float.
 *
 * @example
 * outputJson([Infinity, 2, NaN]); // '[1.7976931348623157e+308,2,null]'
 */
export function outputJson(v: unknown): string {
  if (typeof v === 'number') {
    const x = outputFloat(v);
    return x === null ? 'null' : String(x);
  }
  if (Array.isArray(v) && hasNonFinite(v))
    return JSON.stringify(v.map((x: unknown) => (typeof x === 'number' ? outputFloat(x) : x)));
  return JSON.stringify(v);
}
