import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import {
  ddAdd,
  ddClone,
  ddDecode,
  ddEncode,
  ddInit,
  ddMerge,
  ddQuantiles,
  type DdIr,
} from '../../src/aggregate/sketch/ddsketch.ts';
import { mapSketch, type MapIr } from './support/ddsketch-map.ts';
import { createRng, type Rng } from './support/prng.ts';

const bytesOf = (write: (out: ByteWriter) => void): number[] => {
  const out = new ByteWriter(64);
  write(out);
  return Array.from(out.finish());
};

const QS = [0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1];

/** Values that hit the layout's paths: new buckets below, between and above, repeats, zeros, both signs. */
function value(rng: Rng, style: number): number {
  const sign = style === 0 || rng.chance(0.7) ? 1 : -1;
  if (rng.chance(0.05)) return 0;
  if (style === 1) return sign * rng.int(1, 20); // few buckets, many repeats
  return sign * Math.exp(rng.next() * 40 - 20); // magnitudes 2e-9 .. 5e8: scattered buckets
}

describe('DDSketch sorted-array buckets against the Map layout (e79c4be)', () => {
  it('encode byte-identically and give the same quantiles through random adds, merges, clones and round trips', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rng = createRng(seed);
      const style = seed % 3;
      const pool: [DdIr, MapIr][] = [];
      for (let k = 0; k < 4; k++) pool.push([ddInit(), mapSketch.init()]);
      for (let step = 0; step < 300; step++) {
        const a = rng.int(0, pool.length - 1);
        const op = rng.int(0, 9);
        if (op <= 5) {
          const x = value(rng, style);
          pool[a] = [ddAdd(pool[a][0], x), mapSketch.add(pool[a][1], x)];
        } else if (op <= 7) {
          const b = rng.int(0, pool.length - 1);
          if (b !== a) {
            pool[a] = [ddMerge(pool[a][0], pool[b][0]), mapSketch.merge(pool[a][1], pool[b][1])];
          }
        } else if (op === 8) {
          pool.push([ddClone(pool[a][0]), mapSketch.clone(pool[a][1])]);
        } else {
          const bytes = new Uint8Array(bytesOf((out) => ddEncode(pool[a][0], out)));
          pool[a] = [ddDecode(new ByteReader(bytes)), mapSketch.decode(new ByteReader(bytes))];
        }
        // The changed sketch every step (and every sketch at the end: a merge must leave its input alone).
        const check = step === 299 ? pool.keys() : [a];
        for (const i of check) {
          const [arr, map] = pool[i];
          const where = `seed ${seed} step ${step} sketch ${i}`;
          expect(
            bytesOf((out) => ddEncode(arr, out)),
            where,
          ).toEqual(bytesOf((out) => mapSketch.encode(map, out)));
          expect(ddQuantiles(arr, QS), where).toEqual(mapSketch.quantiles(map, QS));
        }
      }
    }
  });

  it('merge a few buckets into many (looked up one by one) as the Map layout does', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rng = createRng(seed);
      const arr = ddInit();
      const map = mapSketch.init();
      // Buckets spaced out so sources hit found buckets and new ones below, between and above them.
      for (let k = rng.int(20, 400); k > 0; k--) {
        const x = (rng.chance(0.8) ? 1 : -1) * 1.03 ** (3 * rng.int(-200, 200));
        ddAdd(arr, x);
        mapSketch.add(map, x);
      }
      for (let t = 0; t < 40; t++) {
        const src = ddInit();
        const srcMap = mapSketch.init();
        for (let k = rng.int(1, 6); k > 0; k--) {
          const x = (rng.chance(0.8) ? 1 : -1) * 1.03 ** rng.int(-650, 650);
          ddAdd(src, x);
          mapSketch.add(srcMap, x);
        }
        ddMerge(arr, src);
        mapSketch.merge(map, srcMap);
        const where = `seed ${seed} merge ${t}`;
        expect(
          bytesOf((out) => ddEncode(arr, out)),
          where,
        ).toEqual(bytesOf((out) => mapSketch.encode(map, out)));
      }
      expect(ddQuantiles(arr, QS)).toEqual(mapSketch.quantiles(map, QS));
    }
  });

  it('decode a corrupt repeated index above 2^53 (a nonzero diff that rounds away) as the Map layout does', () => {
    const bytes = bytesOf((out) => {
      out.writeVarUint(8); // count
      out.writeVarUint(0); // zeros
      out.writeNumber(1); // min
      out.writeNumber(2); // max
      out.writeVarUint(3); // positive buckets
      out.writeVarInt(2 ** 52 - 2);
      out.writeVarUint(1);
      out.writeVarUint(2 ** 52 + 2); // index 2^53
      out.writeVarUint(2);
      out.writeVarUint(1); // 2^53 + 1 rounds to 2^53: the same index again
      out.writeVarUint(5);
      out.writeVarUint(0); // negative buckets
    });
    const arr = ddDecode(new ByteReader(new Uint8Array(bytes)));
    const map = mapSketch.decode(new ByteReader(new Uint8Array(bytes)));
    expect([...map.positive]).toEqual([
      [2 ** 52 - 2, 1],
      [2 ** 53, 5],
    ]);
    expect(arr.positive).toEqual([...map.positive].flat());
    expect(ddQuantiles(arr, QS)).toEqual(mapSketch.quantiles(map, QS));
  });

  it('merging never changes the merged-in sketch or shares its buckets', () => {
    const rng = createRng(7);
    for (let t = 0; t < 50; t++) {
      const a = ddInit();
      const b = ddInit();
      for (let k = rng.int(0, 30); k > 0; k--) ddAdd(a, value(rng, t % 3));
      for (let k = rng.int(0, 30); k > 0; k--) ddAdd(b, value(rng, t % 3));
      const before = bytesOf((out) => ddEncode(b, out));
      ddMerge(a, b);
      ddAdd(a, value(rng, 0));
      ddAdd(a, -value(rng, 0));
      expect(bytesOf((out) => ddEncode(b, out))).toEqual(before);
    }
  });
});
