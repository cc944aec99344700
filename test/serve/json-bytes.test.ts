import { describe, expect, it, vi } from 'vitest';
import { JoinRows } from '../../src/serve/assemble.ts';
import { joinRowsJson, jsonBytes } from '../../src/serve/feature-json.ts';
import { planFetch } from '../../src/serve/fetch-plan.ts';
import { createRng } from '../aggregate/support/prng.ts';
import { fetchedValues, modelA } from './fixtures.ts';

/**
 * modelA's rows over `n` request rows, every value picked from `values`, statuses (ok, missing_key,
 * inexact, and stale parts) mixed, so rows end in different status maps.
 */
function joinRows(n: number, values: readonly unknown[], seed: number): JoinRows {
  const rng = createRng(seed);
  const rows = Array.from({ length: n }, (_, i) => ({
    card_id: `c${i}`,
    merchant_id: `m${i}`,
    amount: 1,
    ts: 0,
  }));
  const plan = planFetch([modelA], rows, (g) => g.name);
  const fetched = fetchedValues(
    plan,
    () => rng.pick(values),
    () => rng.pick([0, 0, 1, 2]),
  );
  return new JoinRows(plan.joins[0]!, fetched, rows, [false, seed % 2 === 0], () => {
    throw new Error('no null keys here');
  });
}

describe('jsonBytes', () => {
  it('writes the UTF-8 bytes of the JSON text, non-ASCII included, small and past its scratch buffer', () => {
    // Numbers written digit by digit (|n| < 2^31, -0) and through String (other integers, fractions,
    // exponents), non-finite ones, and values written as JSON text.
    const values = [
      ...[1, 0, -0, 7, 10, 99, 100, -1, -10, 123456789, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1],
      ...[2 ** 53, -(2 ** 53) - 2, 1e21, -1e21, 1e-7, -2.5, 0.1 + 0.2, 5e-324, -1.7976931348623157e308],
      ...[NaN, Infinity, -Infinity, null, undefined, 'x"y', '日本 Éclair \u2028 😀', [1, 'é'], { k: 'ü' }],
    ];
    // 1 row (fits the scratch), 3000 rows (grows it, several MB), then 2 again (reuses it).
    for (const [n, seed] of [
      [1, 1],
      [3000, 2],
      [2, 3],
    ] as const) {
      const rows = joinRows(n, values, seed);
      const body = jsonBytes((out) => out.put('{"name":"é","rows":').rows(rows).put('}'));
      const text = `{"name":"é","rows":${joinRowsJson(rows)}}`;
      expect(body.equals(Buffer.from(text, 'utf8'))).toBe(true);
      expect(JSON.parse(body.toString('utf8'))).toEqual(JSON.parse(text));
    }
  });

  it('makes room for text whose UTF-8 is longer than its UTF-16 length', async () => {
    // A fresh module: its scratch buffer (64 KiB) holds these 40k code units but not their 80 KB of UTF-8.
    vi.resetModules();
    const fresh = await import('../../src/serve/feature-json.ts');
    const wide = JSON.stringify('é'.repeat(40_000));
    expect(fresh.jsonBytes((out) => out.put(wide)).equals(Buffer.from(wide, 'utf8'))).toBe(true);
  });

  it('hands out a buffer of its own: a later response does not overwrite an earlier one', () => {
    const first = jsonBytes((out) => out.put('{"a":1}'));
    jsonBytes((out) => out.put('{"b":22222}'));
    expect(first.toString()).toBe('{"a":1}');
  });
});
