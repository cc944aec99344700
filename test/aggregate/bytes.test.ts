import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import { createRng } from './support/prng.ts';

describe('ByteWriter / ByteReader', () => {
  it('round-trips varints, numbers, strings, blobs and scalars in order', () => {
    const rng = createRng(7);
    const w = new ByteWriter(1); // start tiny so growth is exercised
    const expected: [string, unknown][] = [];
    for (let i = 0; i < 2000; i++) {
      const kind = rng.pick(['uint', 'int', 'num', 'str', 'blob', 'scalar'] as const);
      let v: unknown;
      if (kind === 'uint')
        w.writeVarUint(
          (v = rng.pick([
            0,
            127,
            128,
            2 ** 28 - 1,
            2 ** 28,
            2 ** 31,
            2 ** 32,
            Number.MAX_SAFE_INTEGER,
            rng.int(0, 1e9),
          ])),
        );
      else if (kind === 'int')
        w.writeVarInt((v = rng.pick([-1, 1, -(2 ** 40), 2 ** 51, -(2 ** 27), 2 ** 27, rng.int(-1e9, 1e9)])));
      else if (kind === 'num')
        w.writeNumber(
          (v = rng.pick([
            0,
            -0,
            0.1,
            -1e300,
            2 ** 50,
            -(2 ** 50) + 1,
            2 ** 60,
            NaN,
            -Infinity,
            rng.int(-1e6, 1e6),
          ])),
        );
      else if (kind === 'str')
        w.writeString((v = rng.pick(['', 'a', 'héllo', '日本語', '😀x', 'x'.repeat(300)])));
      else if (kind === 'blob') w.writeBlob((v = new Uint8Array(rng.int(0, 40)).map(() => rng.int(0, 255))));
      else w.writeScalar((v = rng.pick([null, true, false, 0, -2.5, 'q', ''])));
      expected.push([kind, v]);
    }
    const r = new ByteReader(w.finish());
    for (const [kind, v] of expected) {
      const got =
        kind === 'uint'
          ? r.readVarUint()
          : kind === 'int'
            ? r.readVarInt()
            : kind === 'num'
              ? r.readNumber()
              : kind === 'str'
                ? r.readString()
                : kind === 'blob'
                  ? r.readBlob()
                  : r.readScalar();
      expect(Object.is(got, v) || JSON.stringify(got) === JSON.stringify(v)).toBe(true);
    }
    expect(r.done).toBe(true);
  });

  it('round-trips every number through writeScalar exactly, decimals in a few bytes', () => {
    const rng = createRng(11);
    const values: number[] = [
      12.34,
      -0.5,
      0.1,
      99.99,
      -1234.5678,
      1e-5,
      0.1 + 0.2,
      1 / 3,
      2 ** 48 + 0.5,
      1e15 + 0.5,
    ];
    for (let i = 0; i < 5000; i++) {
      const d = rng.int(0, 5);
      values.push(rng.chance(0.5) ? rng.int(-1e9, 1e9) / 10 ** d : (rng.int(-1e9, 1e9) * Math.PI) / 7);
    }
    const w = new ByteWriter(1);
    for (const v of values) w.writeScalar(v);
    const r = new ByteReader(w.finish());
    for (const v of values) expect(Object.is(r.readScalar(), v)).toBe(true);
    expect(r.done).toBe(true);
    const size = (v: number) => {
      const one = new ByteWriter();
      one.writeScalar(v);
      return one.length;
    };
    expect(size(12.34)).toBeLessThanOrEqual(3);
    expect(size(-1234.5678)).toBeLessThanOrEqual(5);
    expect(size(1 / 3)).toBe(10); // not a short decimal: tag + f64
  });

  it('writes varuints as LEB128 (naive BigInt oracle) for random values of every bit length up to 2^53', () => {
    const rng = createRng(23);
    const leb128 = (v: number): number[] => {
      const out: number[] = [];
      let b = BigInt(v);
      while (b >= 128n) {
        out.push(Number(b & 127n) | 128);
        b >>= 7n;
      }
      out.push(Number(b));
      return out;
    };
    const values = [0, 127, 128, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1];
    for (let i = 0; i < 3000; i++) {
      const bits = rng.int(1, 53);
      // Random high part times 2^k plus a random low part: exact below 2^53 and covers both 32-bit halves.
      const hi = rng.int(0, 2 ** Math.min(bits, 26) - 1);
      const shift = Math.max(0, bits - 26);
      values.push(hi * 2 ** shift + rng.int(0, 2 ** shift - 1));
    }
    for (const v of values) {
      const w = new ByteWriter(1);
      w.writeVarUint(v);
      w.writeNumber(v); // ts-sized numbers take the varint path too (zigzag, then doubled)
      const bytes = [...w.finish()];
      const own = leb128(v);
      expect(bytes.slice(0, own.length), `varuint ${v}`).toEqual(own);
      const r = new ByteReader(w.finish());
      expect(r.readVarUint()).toBe(v);
      expect(r.readNumber()).toBe(v);
      expect(r.done).toBe(true);
    }
  });

  it('is compact: small integers take one byte', () => {
    const w = new ByteWriter();
    w.writeVarUint(5);
    w.writeNumber(-3);
    w.writeNumber(0.5);
    expect(w.finish()).toHaveLength(1 + 1 + 9);
  });

  it('rejects bad input with errors that name the problem', () => {
    expect(() => new ByteWriter().writeVarUint(-1)).toThrow(/not an integer in \[0, 2\^53\)/);
    expect(() => new ByteReader(new Uint8Array([0x80])).readVarUint()).toThrow(/truncated IR bytes/);
    expect(() => new ByteReader(new Uint8Array([9])).readScalar()).toThrow(/unknown scalar tag 9/);
  });

  it('decodes short strings through its cache without mixing up strings that share a slot', () => {
    // Many more distinct strings than cache slots, each read several times in random order: every read
    // must return its own string (a hash collision of equal lengths must not return the cached one).
    const rng = createRng(11);
    const alphabet = 'ab0';
    const distinct = Array.from({ length: 20000 }, (_, i) => {
      const len = 1 + (i % 32);
      let s = '';
      for (let k = 0; k < len; k++) s += alphabet[rng.int(0, alphabet.length - 1)];
      return s;
    });
    const order = Array.from({ length: 60000 }, () => distinct[rng.int(0, distinct.length - 1)]);
    const w = new ByteWriter();
    for (const s of order) w.writeString(s);
    const r = new ByteReader(w.finish());
    for (const s of order) expect(r.readString()).toBe(s);
  });

  it('writes strings as varint UTF-8 length + UTF-8 bytes whether ASCII, short or not', () => {
    // The ASCII fast path (<= 32 units) must give TextEncoder's bytes and leave no trace when it gives up.
    const utf8 = new TextEncoder();
    const reference = (s: string, tag: number | null): number[] => {
      const bytes = [...utf8.encode(s)];
      const len: number[] = [];
      for (let v = bytes.length; ; v = Math.floor(v / 128)) {
        if (v < 128) {
          len.push(v);
          break;
        }
        len.push((v % 128) + 128);
      }
      return [...(tag === null ? [] : [tag]), ...len, ...bytes];
    };
    const rng = createRng(13);
    const pieces = ['a', 'Z', '~', '\x7f', 'é', '日', '😀', '\ud800'];
    const strings = [
      '',
      'x'.repeat(31),
      'x'.repeat(32),
      'x'.repeat(33),
      'x'.repeat(31) + 'é',
      'é' + 'x'.repeat(31),
    ];
    for (let t = 0; t < 300; t++) {
      let s = '';
      const len = rng.int(0, 40);
      for (let i = 0; i < len; i++) s += pieces[rng.int(0, t % 2 === 0 ? 3 : pieces.length - 1)];
      strings.push(s);
    }
    for (const s of strings) {
      const w = new ByteWriter(1); // tiny, so each write grows the buffer
      w.writeU8(9);
      w.writeString(s);
      w.writeScalar(s);
      w.writeU8(9);
      expect([...w.finish()], JSON.stringify(s)).toEqual([9, ...reference(s, null), ...reference(s, 2), 9]);
    }
  });

  it('reads floats right through its per-array view as a reused reader moves between arrays and offsets', () => {
    // A reader builds a DataView of an array after a few floats; switching to another array (or to a view
    // of the same buffer at another offset) must never read through the old view.
    const rng = createRng(17);
    const w = new ByteWriter();
    const values: number[] = [];
    w.writeU8(0); // floats at odd offsets
    for (let i = 0; i < 40; i++) {
      const v = rng.pick([0.1, -1e300, NaN, -Infinity, 2 ** 60, Math.PI * i]);
      values.push(v);
      w.writeF64(v);
    }
    const bytes = w.finish();
    const copy = Uint8Array.from(bytes);
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const arrays: [Uint8Array, number][] = [
      [bytes, 1],
      [copy, 1],
      [shifted.subarray(3), 1],
      [shifted, 4],
      [bytes, 1],
    ];
    const r = new ByteReader(new Uint8Array(0));
    for (let round = 0; round < 3; round++) {
      for (const [array, offset] of arrays) {
        const from = rng.int(0, 39);
        const to = rng.int(from, 40);
        r.reset(array, offset + 8 * from, offset + 8 * to);
        for (let i = from; i < to; i++) expect(Object.is(r.readF64(), values[i])).toBe(true);
        expect(r.done).toBe(true);
      }
    }
  });
});
