import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import { opSpecs } from '../../src/aggregate/ops/index.ts';
import { stddevOp } from '../../src/aggregate/ops/stddev.ts';
import { varianceOp } from '../../src/aggregate/ops/variance.ts';
import type { WelfordIr } from '../../src/aggregate/ops/welford.ts';
import { createRng } from './support/prng.ts';

const encode = (ir: WelfordIr): Uint8Array => {
  const w = new ByteWriter(8);
  varianceOp.encode(ir, w);
  return w.finish();
};

describe('variance and stddev share one Welford implementation', () => {
  it('keep the stored format: varuint n, then mean and m2 as float64 when n > 0', () => {
    const ir = varianceOp.update(varianceOp.update(varianceOp.init(), 1, 0, 0), 4, 0, 1);
    const expected = new ByteWriter(8);
    expected.writeVarUint(2);
    expected.writeNumber(2.5);
    expected.writeNumber(4.5);
    expect(encode(ir)).toEqual(expected.finish());
    const empty = new ByteWriter(8);
    empty.writeVarUint(0);
    expect(encode(varianceOp.init())).toEqual(empty.finish());
  });

  it('tiles written by one decode in the other; stddev is the square root of variance (random data)', () => {
    const rng = createRng(0x3e1f);
    for (let round = 0; round < 200; round++) {
      const values = Array.from({ length: rng.int(0, 40) }, () => (rng.next() - 0.5) * 10 ** rng.int(0, 9));
      let v = varianceOp.init();
      let s = stddevOp.init();
      values.forEach((x, i) => {
        v = varianceOp.update(v, x, i, i);
        s = stddevOp.update(s, x, i, i);
      });
      const bytes = encode(v);
      const w = new ByteWriter(8);
      stddevOp.encode(s, w);
      expect(w.finish()).toEqual(bytes);
      const asStddev = stddevOp.decode(new ByteReader(bytes));
      const variance = varianceOp.finalize(v);
      if (values.length === 0) {
        expect(variance).toBeNull();
        expect(stddevOp.finalize(asStddev)).toBeNull();
        continue;
      }
      // Naive two-pass population variance as the oracle.
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const naive = values.reduce((a, x) => a + (x - mean) ** 2, 0) / values.length;
      expect(Math.abs(variance! - naive)).toBeLessThanOrEqual(1e-9 * Math.max(1, naive));
      expect(stddevOp.finalize(asStddev)).toBe(Math.sqrt(variance!));
    }
  });

  it('specs differ only in name and finalize', () => {
    for (const spec of [opSpecs.variance, opSpecs.stddev]) {
      expect(spec.accepts('int') && spec.accepts('float') && !spec.accepts('string')).toBe(true);
      expect(spec.outputType('int')).toBe('float');
      expect(spec.emptyValue()).toBeNull();
    }
    expect(opSpecs.variance.factory({}, 'float')).toBe(varianceOp);
    expect(opSpecs.stddev.factory({}, 'float')).toBe(stddevOp);
  });
});
