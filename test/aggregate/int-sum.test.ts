import { describe, expect, it, vi } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import type { SumIr } from '../../src/aggregate/ops/compensated-sum.ts';
import { opSpecs } from '../../src/aggregate/ops/index.ts';
import { intSumOp, sumOp } from '../../src/aggregate/ops/sum.ts';
import { createRng, type Rng } from './support/prng.ts';

const MAX = Number.MAX_SAFE_INTEGER;
const op = intSumOp;

function onePass(values: readonly number[]): SumIr {
  let ir = op.init();
  values.forEach((v, i) => (ir = op.update(ir, v, i, i)));
  return ir;
}

function roundTrip(ir: SumIr): SumIr {
  const w = new ByteWriter(8);
  op.encode(ir, w);
  return op.decode(new ByteReader(w.finish()));
}

/** The naive oracle: the exact sum (BigInt), or null when no JS number holds it exactly (or an input is unsafe). */
function oracle(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  if (values.some((v) => !Number.isSafeInteger(v))) return null;
  const s = values.reduce((a, v) => a + BigInt(v), 0n);
  return s >= BigInt(-MAX) && s <= BigInt(MAX) ? Number(s) : null;
}

function value(rng: Rng): number {
  switch (rng.int(0, 5)) {
    case 0:
      return rng.int(-1000, 1000);
    case 1:
      return MAX - rng.int(0, 1000);
    case 2:
      return -MAX + rng.int(0, 1000);
    case 3:
      return rng.int(-(2 ** 30), 2 ** 30) * 2 ** 22 + rng.int(0, 2 ** 22 - 1); // large, odd low bits
    case 4:
      return rng.chance(0.05) ? (MAX + 1) * rng.int(2, 9) : rng.int(0, 9); // rare unsafe input
    default:
      return 2 ** 52 + rng.int(0, 3);
  }
}

describe('sum of an int column is exact or null, never rounded', () => {
  it('equals the BigInt oracle in one pass and for random splits merged in random order (property)', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const rng = createRng(0x5a5a);
    let nulls = 0;
    let exactPastRange = 0;
    for (let round = 0; round < 2000; round++) {
      const values = Array.from({ length: rng.chance(0.05) ? 0 : rng.int(1, 12) }, () => value(rng));
      const expected = oracle(values);
      expect(op.finalize(onePass(values))).toBe(expected);
      // Random parts, some through bytes, merged in random order.
      const parts: number[][] = Array.from({ length: rng.int(1, 4) }, () => []);
      for (const v of rng.shuffle([...values])) parts[rng.int(0, parts.length - 1)].push(v);
      let ir = op.init();
      for (const p of rng.shuffle(parts)) {
        const partIr = rng.chance(0.5) ? roundTrip(onePass(p)) : onePass(p);
        ir = op.merge(ir, partIr);
      }
      expect(op.finalize(ir)).toBe(expected);
      if (expected === null && values.length > 0) nulls++;
      let running = 0n;
      const leftRange = values.some((v) => {
        running += BigInt(v);
        return running > BigInt(MAX) || running < BigInt(-MAX);
      });
      if (expected !== null && leftRange) exactPastRange++;
    }
    // The generator must exercise both outcomes, not just the easy one.
    expect(nulls).toBeGreaterThan(100);
    expect(exactPastRange).toBeGreaterThan(50);
    warn.mockRestore();
  });

  it('partial sums beyond 2^53 that come back give the exact value; a total beyond gives null and one warning', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    expect(op.finalize(onePass([MAX, MAX, 3, -MAX, -MAX]))).toBe(3);
    expect(op.finalize(onePass([MAX, 1]))).toBeNull();
    expect(op.finalize(onePass([-MAX, -1]))).toBeNull();
    expect(op.finalize(onePass([MAX, 1, -1]))).toBe(MAX);
    expect(op.finalize(onePass([2 ** 60, -(2 ** 60)]))).toBeNull(); // unsafe inputs poison the sum
    expect(warn.mock.calls.length).toBeLessThanOrEqual(1);
    warn.mockRestore();
  });

  it('only int columns use the exact op; float sums keep the compensated sum', () => {
    expect(opSpecs.sum.factory({}, 'int')).toBe(intSumOp);
    expect(opSpecs.sum.factory({}, 'float')).toBe(sumOp);
    let ir = sumOp.init();
    for (const v of [MAX, 1, 1]) ir = sumOp.update(ir, v, 0, 0);
    expect(sumOp.finalize(ir)).toBe(MAX + 2); // float semantics: no null
  });
});
