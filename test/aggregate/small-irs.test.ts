import { describe, expect, it } from 'vitest';
import type { Scalar } from '../../src/define/types.ts';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import { histogramOp } from '../../src/aggregate/ops/histogram.ts';
import { uniqueCountOp } from '../../src/aggregate/ops/unique-count.ts';
import {
  ddAdd,
  ddBucketCount,
  ddClone,
  ddEncode,
  ddInit,
  ddMerge,
} from '../../src/aggregate/sketch/ddsketch.ts';
import { hashOut, hashScalar64 } from '../../src/aggregate/sketch/hash64.ts';
import {
  HLL_M,
  HLL_P,
  hllAdd,
  hllEncode,
  hllInit,
  hllMerge,
} from '../../src/aggregate/sketch/hyperloglog.ts';
import { createRng } from './support/prng.ts';

/**
 * The compact in-memory IRs of small sketches and sets (sorted register arrays, short value arrays, a
 * shared empty store) must encode exactly as the plain structures they stand for, on both sides of the
 * size where they switch representation.
 */
const bytesOf = (write: (out: ByteWriter) => void) => {
  const out = new ByteWriter(64);
  write(out);
  return Array.from(out.finish());
};

describe('small IR representations encode like their plain structures', () => {
  it('unique_count: a Set in insertion order (SameValueZero, -0 as 0), split and merged anywhere', () => {
    const rng = createRng(3).next;
    const pool: Scalar[] = [0, -0, NaN, 1, 2.5, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', true];
    for (let trial = 0; trial < 200; trial++) {
      const values = Array.from(
        { length: Math.floor(rng() * 24) },
        () => pool[Math.floor(rng() * pool.length)],
      );
      const split = Math.floor(rng() * (values.length + 1));
      let a = uniqueCountOp.init();
      let b = uniqueCountOp.init();
      values.forEach((v, i) =>
        i < split ? (a = uniqueCountOp.update(a, v, i, i)) : (b = uniqueCountOp.update(b, v, i, i)),
      );
      const merged = uniqueCountOp.merge(uniqueCountOp.clone(a), b);
      const set = new Set(values);
      const expected = bytesOf((out) => {
        out.writeVarUint(set.size);
        for (const v of set) out.writeScalar(v);
      });
      expect(bytesOf((out) => uniqueCountOp.encode(merged, out))).toEqual(expected);
      expect(uniqueCountOp.finalize(merged)).toBe(set.size);
      const decoded = uniqueCountOp.decode(new ByteReader(new Uint8Array(expected)));
      expect(bytesOf((out) => uniqueCountOp.encode(decoded, out))).toEqual(expected);
    }
  });

  it('unique_count: a big Set re-encoded as it grows (its kept encoding) equals encoding it afresh', () => {
    const rng = createRng(4);
    const pool: Scalar[] = [0, -0, NaN, 12.34, 'é', '日本', true];
    for (let i = 0; i < 400; i++) pool.push(rng.chance(0.5) ? `card_${i}` : i * 1.5);
    const plain = (set: Set<Scalar>) =>
      bytesOf((out) => {
        out.writeVarUint(set.size);
        for (const v of set) out.writeScalar(v);
      });
    for (let trial = 0; trial < 20; trial++) {
      let ir = uniqueCountOp.init();
      const seen = new Set<Scalar>();
      let copy: { ir: ReturnType<typeof uniqueCountOp.init>; seen: Set<Scalar> } | null = null;
      for (let step = 0; step < 30; step++) {
        // Grow by updates or by merging another IR, then encode (the kept bytes cover what came before).
        const add = Array.from({ length: rng.int(0, 40) }, () => pool[rng.int(0, pool.length - 1)]);
        if (rng.chance(0.5)) for (const v of add) ir = uniqueCountOp.update(ir, v, 0, 0);
        else {
          let other = uniqueCountOp.init();
          for (const v of add) other = uniqueCountOp.update(other, v, 0, 0);
          ir = uniqueCountOp.merge(ir, other);
        }
        for (const v of add) seen.add(v);
        expect(bytesOf((out) => uniqueCountOp.encode(ir, out))).toEqual(plain(seen));
        if (copy === null && seen.size > 70) copy = { ir: uniqueCountOp.clone(ir), seen: new Set(seen) };
      }
      if (copy !== null) {
        // A clone made after encodes grows on its own, its encoding independent of the original's.
        copy.ir = uniqueCountOp.update(copy.ir, 'only-in-clone', 0, 0);
        copy.seen.add('only-in-clone');
        expect(bytesOf((out) => uniqueCountOp.encode(copy.ir, out))).toEqual(plain(copy.seen));
      }
    }
  });

  it('unique_count: an encode that throws part-way leaves no kept encoding ahead of its bytes', () => {
    let ir = uniqueCountOp.init();
    const seen: Scalar[] = [];
    const add = (n: number) => {
      for (let i = 0; i < n; i++) {
        const v = `v${seen.length}`;
        seen.push(v);
        ir = uniqueCountOp.update(ir, v, 0, 0);
      }
    };
    const plain = () =>
      bytesOf((out) => {
        out.writeVarUint(seen.length);
        for (const v of seen) out.writeScalar(v);
      });
    add(100);
    for (let k = 0; k < 2; k++) expect(bytesOf((out) => uniqueCountOp.encode(ir, out))).toEqual(plain());
    add(10);
    // The kept encoding (built at the second encode) fails on its next value, e.g. a buffer that cannot grow.
    const kept = (ir as unknown as { encoded: { writeScalar: (v: Scalar) => void } }).encoded;
    expect(kept).not.toBeNull();
    const writeScalar = kept.writeScalar;
    let calls = 0;
    kept.writeScalar = function (this: unknown, v: Scalar) {
      if (calls++ === 3) throw new RangeError('no room');
      return writeScalar.call(this, v);
    };
    expect(() => bytesOf((out) => uniqueCountOp.encode(ir, out))).toThrow('no room');
    kept.writeScalar = writeScalar;
    add(5);
    expect(bytesOf((out) => uniqueCountOp.encode(ir, out))).toEqual(plain());
    expect(bytesOf((out) => uniqueCountOp.encode(ir, out))).toEqual(plain());
  });

  it('histogram: a Map of counts in insertion order, split and merged anywhere', () => {
    const rng = createRng(5).next;
    for (let trial = 0; trial < 200; trial++) {
      const values = Array.from({ length: Math.floor(rng() * 30) }, () => `c${Math.floor(rng() * 14)}`);
      const split = Math.floor(rng() * (values.length + 1));
      let a = histogramOp.init();
      let b = histogramOp.init();
      values.forEach((v, i) =>
        i < split ? (a = histogramOp.update(a, v, i, i)) : (b = histogramOp.update(b, v, i, i)),
      );
      const merged = histogramOp.merge(histogramOp.clone(a), b);
      const map = new Map<string, number>();
      for (const v of values) map.set(v, (map.get(v) ?? 0) + 1);
      const expected = bytesOf((out) => {
        out.writeVarUint(map.size);
        for (const [k, n] of map) {
          out.writeString(k);
          out.writeVarUint(n);
        }
      });
      expect(bytesOf((out) => histogramOp.encode(merged, out))).toEqual(expected);
      expect(histogramOp.finalize(merged)).toEqual(
        Object.fromEntries([...map].sort(([x], [y]) => (x < y ? -1 : 1))),
      );
      const decoded = histogramOp.decode(new ByteReader(new Uint8Array(expected)));
      expect(bytesOf((out) => histogramOp.encode(decoded, out))).toEqual(expected);
    }
  });

  it('approx_unique_count: sparse registers encode as (index delta, rank) pairs, also past the dense switch', () => {
    for (const n of [0, 1, 7, 300, 511, 512, 513, 600, 4000]) {
      const registers = new Uint8Array(HLL_M);
      let ir = hllInit();
      const half = hllInit();
      for (let i = 0; i < n; i++) {
        const v = `v${i}`;
        hashScalar64(v);
        const index = hashOut.hi >>> (32 - HLL_P);
        const rest = hashOut.hi & ((1 << (32 - HLL_P)) - 1);
        const rank =
          rest !== 0
            ? Math.clz32(rest) - HLL_P + 1
            : hashOut.lo !== 0
              ? 32 - HLL_P + Math.clz32(hashOut.lo) + 1
              : 51;
        registers[index] = Math.max(registers[index], rank);
        hllAdd(i % 2 === 0 ? ir : half, v);
      }
      ir = hllMerge(ir, half);
      const expected = bytesOf((out) => {
        const nonZero = [...registers.keys()].filter((i) => registers[i] !== 0);
        out.writeU8(0);
        out.writeVarUint(nonZero.length);
        let prev = 0;
        for (const i of nonZero) {
          out.writeVarUint(i - prev);
          prev = i;
          out.writeU8(registers[i]);
        }
      });
      expect(
        bytesOf((out) => hllEncode(ir, out)),
        `n = ${n}`,
      ).toEqual(expected);
    }
  });

  it('approx_percentile: the shared empty negative store is never mutated', () => {
    // Encoded before anything could touch the shared store.
    const untouched = bytesOf((out) => ddEncode(ddAdd(ddInit(), 3), out));
    const positive = ddAdd(ddInit(), 3);
    const mixed = ddMerge(ddClone(positive), ddAdd(ddInit(), -2));
    ddAdd(positive, -5);
    const fresh = ddAdd(ddInit(), 3);
    expect(ddBucketCount(fresh.negative)).toBe(0);
    expect(ddBucketCount(mixed.negative)).toBe(1);
    expect(ddBucketCount(positive.negative)).toBe(1);
    expect(bytesOf((out) => ddEncode(fresh, out))).toEqual(untouched);
  });
});
