import { describe, expect, it } from 'vitest';
import type { AggOp } from '../../src/aggregate/agg-op.ts';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import { avgOp } from '../../src/aggregate/ops/avg.ts';
import { floatJson, outputJson, stringifyFloats } from '../../src/aggregate/ops/float-json.ts';
import { stddevOp } from '../../src/aggregate/ops/stddev.ts';
import { sumOp } from '../../src/aggregate/ops/sum.ts';
import { varianceOp } from '../../src/aggregate/ops/variance.ts';

const MAX = Number.MAX_VALUE;

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/**
 * Every way the online and offline paths can reach a result for `values`: one pass, and for every split into
 * two tiles, both merge orders on the IRs, on encode/decode round trips and through `mergeDecoded`.
 */
function allResults<Ir, Out>(op: AggOp<number, Ir, Out>, values: readonly number[]): Out[] {
  const fold = (xs: readonly number[]) => xs.reduce((ir, x, i) => op.update(ir, x, 0, i), op.init());
  const roundTrip = (ir: Ir) => {
    const w = new ByteWriter(8);
    op.encode(ir, w);
    return w.finish();
  };
  const out = [op.finalize(fold(values))];
  for (let cut = 0; cut <= values.length; cut++) {
    const [a, b] = [values.slice(0, cut), values.slice(cut)];
    out.push(op.finalize(op.merge(fold(a), fold(b))), op.finalize(op.merge(fold(b), fold(a))));
    const [ba, bb] = [roundTrip(fold(a)), roundTrip(fold(b))];
    out.push(op.finalize(op.merge(op.decode(new ByteReader(ba)), op.decode(new ByteReader(bb)))));
    out.push(op.finalize(op.mergeDecoded!(op.decode(new ByteReader(bb)), new ByteReader(ba))));
    out.push(op.finalize(op.decode(new ByteReader(roundTrip(op.merge(fold(a), fold(b)))))));
  }
  return out;
}

function expectAll<Ir>(op: AggOp<number, Ir, number | null>, values: readonly number[], want: number): void {
  for (const p of permutations(values))
    for (const got of allResults(op, p)) expect(got, `${op.name} of [${p.join(', ')}]`).toBe(want);
}

describe('float sum and avg beyond the float range', () => {
  it('a sum that overflows is ±Infinity (never NaN from finite values), and so is its avg (sum / count)', () => {
    expectAll(sumOp, [1e308, 1e308], Infinity);
    expectAll(sumOp, [-1e308, -1e308], -Infinity);
    // DESIGN §1: avg is sum / count in float64.
    expectAll(avgOp, [1e308, 1e308], Infinity);
    expectAll(avgOp, [-MAX, -MAX], -Infinity);
    expectAll(avgOp, [-1e308, -1e308, -1e308, -1e308], -Infinity);
  });

  it('values that overflow in one order and not in another give the same sum in every order and split', () => {
    expectAll(sumOp, [MAX, MAX, -MAX], MAX);
    expectAll(sumOp, [1e308, 1e308, -1e308, 3], 1e308 + 3);
    expectAll(sumOp, [MAX, MAX, -MAX, -MAX], 0);
    expectAll(avgOp, [MAX, MAX, -MAX], MAX / 3);
  });

  it('infinite values (Parquet/CSV can hold them) sum as plain floats do', () => {
    expectAll(sumOp, [Infinity, 1, 2], Infinity);
    expectAll(sumOp, [-Infinity, 1e308, 1e308], -Infinity);
    expectAll(avgOp, [Infinity, 1], Infinity);
    for (const p of permutations([Infinity, -Infinity, 1]))
      for (const got of allResults(sumOp, p)) expect(got).toBeNaN();
  });
});

describe('variance and stddev beyond the float range', () => {
  it('are Infinity when m2 overflows, in every order and split, even when x - mean overflows', () => {
    // Before: one pass over [-1e308, 1e308] gave 0 (mean Infinity, m2 -Infinity), merged tiles Infinity,
    // and a third value NaN.
    for (const values of [
      [-1e308, 1e308],
      [1e308, -1e308, 5],
      [MAX, -MAX, MAX, 1],
      [1e300, -1e300],
    ]) {
      expectAll(varianceOp, values, Infinity);
      expectAll(stddevOp, values, Infinity);
    }
  });

  it('stay Infinity, never NaN, when a merge step (delta * n) overflows (R3)', () => {
    // [-5e307] merged with [1e308, 1e308] made the mean Infinity, and merging [0] twice more NaN.
    const tiles = [[-5e307], [1e308, 1e308], [0], [0]];
    for (const op of [varianceOp, stddevOp]) {
      const fold = (xs: number[]) => xs.reduce((ir, x, i) => op.update(ir, x, 0, i), op.init());
      const merged = tiles.map(fold).reduce((a, b) => op.merge(a, b));
      expect(op.finalize(merged), op.name).toBe(Infinity);
      expectAll(op, tiles.flat(), Infinity);
    }
  });

  it('keep finite results where m2 fits', () => {
    expectAll(stddevOp, [1e150, -1e150], 1e150);
    expectAll(varianceOp, [3, 5], 1);
  });
});

describe('float values in JSON (float-json.ts)', () => {
  it('writes ±Infinity as ±1e999 (read back as ±Infinity) and NaN as null', () => {
    expect([0, -0, 1.5, -MAX, 5e-324].map(floatJson)).toEqual(['0', '0', '1.5', String(-MAX), '5e-324']);
    expect(floatJson(Infinity)).toBe('1e999');
    expect(floatJson(-Infinity)).toBe('-1e999');
    expect(floatJson(NaN)).toBe('null');
    expect(JSON.parse(floatJson(Infinity))).toBe(Infinity);
  });

  it('writes numbers in values and arrays so, everything else as JSON.stringify', () => {
    expect(outputJson(Infinity)).toBe('1e999');
    expect(outputJson([Infinity, 2, NaN, -Infinity, 'a'])).toBe('[1e999,2,null,-1e999,"a"]');
    expect(JSON.parse(outputJson([Infinity, -Infinity]))).toEqual([Infinity, -Infinity]);
    for (const v of [[1, 2.5], ['a', 'b'], { x: 1 }, 'é"', true, 3])
      expect(outputJson(v)).toBe(JSON.stringify(v));
  });

  it('stringifies whole objects so (tessera fetch), strings untouched', () => {
    const v = { features: { s: Infinity, k: [-Infinity, NaN, 1] }, note: '\u0000x\u00001e999' };
    expect(stringifyFloats(v)).toBe(
      '{"features":{"s":1e999,"k":[-1e999,null,1]},"note":"\\u0000x\\u00001e999"}',
    );
    expect(JSON.parse(stringifyFloats(v, 2))).toEqual({
      ...v,
      features: { s: Infinity, k: [-Infinity, null, 1] },
    });
  });
});
