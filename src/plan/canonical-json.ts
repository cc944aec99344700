/** Plain JSON data as it appears in a plan. */
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };

function canonicalize(value: unknown, path: string): Json {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new Error(`canonical JSON: ${path} is ${value}; plans hold finite numbers only`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => canonicalize(v, `${path}[${i}]`));
  if (typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonicalize(v, `${path}.${key}`);
    }
    return out;
  }
  throw new Error(
    `canonical JSON: ${path} is a ${typeof value}; convert functions to their source text first`,
  );
}

/**
 * Serializes plain data with object keys sorted and `undefined` fields dropped, so equal data always gives
 * the same bytes (the basis of semantic hashes). Array order is kept: callers sort where order is not meaningful.
 *
 * @example
 * canonicalJson({ b: 1, a: [2, 1] }) // '{"a":[2,1],"b":1}'
 */
export function canonicalJson(value: unknown, indent?: number): string {
  return JSON.stringify(canonicalize(value, '$'), null, indent);
}
