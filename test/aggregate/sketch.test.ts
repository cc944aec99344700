import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import {
  DD_ALPHA,
  ddAdd,
  ddDecode,
  ddEncode,
  ddInit,
  ddMerge,
  ddQuantiles,
} from '../../src/aggregate/sketch/ddsketch.ts';
import { hashOut, hashScalar64, hashString64 } from '../../src/aggregate/sketch/hash64.ts';
import {
  hllAdd,
  hllDecode,
  hllEncode,
  hllEstimate,
  hllInit,
  hllMerge,
  type HllIr,
} from '../../src/aggregate/sketch/hyperloglog.ts';
import { exactQuantile } from './support/oracle.ts';
import { createRng } from './support/prng.ts';

describe('hash64', () => {
  it('matches published MurmurHash3_x86_32 vectors (seed 0) in its high half', () => {
    const vectors: [string, number][] = [
      ['', 0],
      ['hello', 0x248bfa47],
      ['The quick brown fox jumps over the lazy dog', 0x2e4ff723],
    ];
    for (const [s, h] of vectors) {
      hashString64(s);
      expect(hashOut.hi, s).toBe(h);
    }
  });

  it('hashes the UTF-8 of the canonical form, so equal values hash alike and types differ', () => {
    const h = (v: string | number | boolean) => (hashScalar64(v), `${hashOut.hi}:${hashOut.lo}`);
    expect(h(5)).toBe(h(5.0));
    expect(h(0)).toBe(h(-0));
    expect(h(5)).not.toBe(h('5'));
    hashString64('s日本😀');
    const viaString = `${hashOut.hi}:${hashOut.lo}`;
    expect(h('日本😀')).toBe(viaString);
  });

  it('hashes ASCII strings (block-at-a-time path) like the general UTF-8 path', () => {
    const h = (v: string) => (hashScalar64(v), `${hashOut.hi}:${hashOut.lo}`);
    const rng = createRng(5);
    const pieces = ['a', 'Z', '0', '~', ' ', '\x7f', 'é', '日', '😀'];
    // Every length 0..12 covers each tail size after the tag byte; some strings turn non-ASCII late.
    for (let len = 0; len <= 12; len++) {
      for (let t = 0; t < 20; t++) {
        let s = '';
        for (let i = 0; i < len; i++) s += pieces[rng.int(0, t < 10 ? 5 : pieces.length - 1)];
        hashString64(`s${s}`);
        expect(h(s), JSON.stringify(s)).toBe(`${hashOut.hi}:${hashOut.lo}`);
      }
    }
  });
});

function encodeDecode<T>(ir: T, enc: (ir: T, w: ByteWriter) => void, dec: (r: ByteReader) => T): T {
  const w = new ByteWriter();
  enc(ir, w);
  return dec(new ByteReader(w.finish()));
}

describe('HyperLogLog (p = 14)', () => {
  it('estimates distinct counts within 2% up to 1000 (linear counting) and 4% (about 5 standard errors) up to 200k', () => {
    const rng = createRng(42);
    for (const n of [1, 10, 100, 1000, 10_000, 50_000, 200_000]) {
      let ir = hllInit();
      const base = rng.int(0, 1e9);
      for (let i = 0; i < n; i++) ir = hllAdd(ir, `user-${base + i}`);
      for (let i = 0; i < n; i += 3) ir = hllAdd(ir, `user-${base + i}`); // duplicates change nothing
      const est = hllEstimate(ir);
      expect(Math.abs(est - n) / n, `n=${n} est=${est}`).toBeLessThanOrEqual(n <= 1000 ? 0.02 : 0.04);
    }
  });

  it('gives the identical estimate for any split, merge order and encoding (sparse or dense)', () => {
    const rng = createRng(9);
    for (const n of [0, 5, 700, 20_000]) {
      const values = Array.from({ length: n }, () => rng.int(0, 1e7));
      let whole = hllInit();
      for (const v of values) whole = hllAdd(whole, v);
      const parts: HllIr[] = Array.from({ length: 5 }, hllInit);
      for (const v of values) {
        const i = rng.int(0, 4);
        parts[i] = hllAdd(parts[i], v);
      }
      let merged = hllInit();
      for (const p of rng.shuffle(parts)) merged = hllMerge(merged, encodeDecode(p, hllEncode, hllDecode));
      expect(hllEstimate(merged)).toBe(hllEstimate(whole));
      expect(hllEstimate(encodeDecode(whole, hllEncode, hllDecode))).toBe(hllEstimate(whole));
    }
  });

  it('keeps small sketches small on the wire', () => {
    let ir = hllInit();
    for (let i = 0; i < 10; i++) ir = hllAdd(ir, i);
    const w = new ByteWriter();
    hllEncode(ir, w);
    expect(w.length).toBeLessThan(40);
  });
});

describe('DDSketch (relative accuracy 1%)', () => {
  it('returns the lower-nearest-rank quantile within relative 1%, in the order requested', () => {
    const rng = createRng(3);
    const qs = [0.99, 0, 0.5, 0.25, 1, 0.9];
    for (let round = 0; round < 30; round++) {
      const n = rng.int(1, 3000);
      const scale = rng.pick([1e-3, 1, 1e6]);
      const values = Array.from({ length: n }, () =>
        rng.chance(0.05) ? 0 : (rng.chance(0.3) ? -1 : 1) * rng.next() ** 3 * scale,
      );
      let ir = ddInit();
      for (const v of values) ir = ddAdd(ir, v);
      const got = ddQuantiles(ir, qs) as number[];
      qs.forEach((q, i) => {
        const exact = exactQuantile(values, q);
        expect(Math.abs(got[i] - exact), `q=${q} exact=${exact} got=${got[i]}`).toBeLessThanOrEqual(
          DD_ALPHA * Math.abs(exact) * (1 + 1e-9),
        );
      });
      // Order independence and encoding round trip are exact.
      const parts = [ddInit(), ddInit(), ddInit()];
      for (const v of values) ddAdd(rng.pick(parts), v);
      let merged = ddInit();
      for (const p of rng.shuffle(parts)) merged = ddMerge(merged, encodeDecode(p, ddEncode, ddDecode));
      expect(ddQuantiles(merged, qs)).toEqual(got);
    }
    expect(ddQuantiles(ddInit(), [0.5])).toBeNull();
  });

  it('rejects non-finite values with a fix', () => {
    expect(() => ddAdd(ddInit(), Infinity)).toThrow(/not a finite number; filter it out/);
  });
});
