import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { createRng, type Rng } from './support/prng.ts';

/** Writes one random output to `w` and to a fresh oracle writer, the same calls in the same order. */
function writeRandom(rng: Rng, w: ByteWriter, oracle: ByteWriter): void {
  const ops = rng.int(0, 40);
  const marks: number[] = [];
  for (let k = 0; k < ops; k++) {
    marks.push(w.length);
    expect(w.length).toBe(oracle.length);
    const kind = rng.int(0, 5);
    if (kind === 0) {
      const v = rng.int(0, 1 << 30);
      w.writeVarUint(v);
      oracle.writeVarUint(v);
    } else if (kind === 1) {
      const v = rng.next() * 1e6;
      w.writeF64(v);
      oracle.writeF64(v);
    } else if (kind === 2) {
      const s = 'x'.repeat(rng.int(0, 40)) + (rng.chance(0.2) ? 'é' : '');
      w.writeScalar(s);
      oracle.writeScalar(s);
    } else if (kind === 3) {
      // Big blobs push the output past the 2 KiB a view is kept for, or past the buffer's end.
      const bytes = Uint8Array.from({ length: rng.pick([3, 100, 3000]) }, () => rng.int(0, 255));
      w.writeBlob(bytes);
      oracle.writeBlob(bytes);
    } else if (marks.length >= 2 && w.length < 4000) {
      // A range of this same output copied again (positions are relative to the output's start).
      const a = marks[rng.int(0, marks.length - 2)];
      const b = w.length;
      w.writeFrom(w, a, b);
      oracle.writeFrom(oracle, a, b);
    }
  }
}

/** Byte equality (`toEqual` compares element by element through its generic deep equality: minutes here). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

describe('ByteWriter.finishPooled', () => {
  it('returns exactly what finish would, 8-byte aligned, and never changes an output it returned', () => {
    const rng = createRng(17);
    for (let round = 0; round < 20; round++) {
      const w = new ByteWriter(rng.pick([8, 64, 1024]));
      const kept: { out: Uint8Array; copy: Uint8Array }[] = [];
      for (let k = 0; k < 300; k++) {
        const oracle = new ByteWriter();
        w.reset();
        if (rng.chance(0.3)) {
          // An output that is reset and rewritten before it is finished must not leave bytes behind.
          writeRandom(rng, w, new ByteWriter());
          w.reset();
        }
        writeRandom(rng, w, oracle);
        const want = oracle.finish();
        const out = rng.chance(0.1) ? w.finish() : w.finishPooled();
        expect(same(out, want), `output ${k} of round ${round}`).toBe(true);
        expect(out.byteOffset % 8).toBe(0);
        kept.push({ out, copy: want });
      }
      kept.forEach(({ out, copy }, k) => expect(same(out, copy), `output ${k} of round ${round}`).toBe(true));
    }
  });
});
