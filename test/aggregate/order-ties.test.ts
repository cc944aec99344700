import { describe, expect, it } from 'vitest';
import type { Scalar } from '../../src/define/types.ts';
import type { AggOp } from '../../src/aggregate/agg-op.ts';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { bottomKOp } from '../../src/aggregate/ops/bottom-k.ts';
import { compareScalar } from '../../src/aggregate/ops/compare.ts';
import { firstKOp } from '../../src/aggregate/ops/first-k.ts';
import { lastKOp } from '../../src/aggregate/ops/last-k.ts';
import { maxOp } from '../../src/aggregate/ops/max.ts';
import { minOp } from '../../src/aggregate/ops/min.ts';
import { topKOp } from '../../src/aggregate/ops/top-k.ts';
import { createRng, type Rng } from './support/prng.ts';

/**
 * Ties and NaN in the ordered ops (min, max, top_k, bottom_k, first_k, last_k): results do not depend on
 * event order, and merging IRs built from consecutive chunks of a sequence gives exactly the IR (bytes) of
 * updating with the whole sequence one by one (what tiles' batch delta relies on, tiles.ts invariant 13).
 */
type Op = AggOp<Scalar, unknown, unknown>;
interface Ev {
  value: Scalar;
  ts: number;
  seq: number;
}

function bytes(op: Op, ir: unknown): string {
  const w = new ByteWriter(16);
  op.encode(ir, w);
  return Buffer.from(w.finish()).toString('hex');
}

function sequential(op: Op, events: readonly Ev[]): unknown {
  let ir = op.init();
  for (const e of events) ir = op.update(ir, e.value, e.ts, e.seq);
  return ir;
}

/** Splits `events` into random consecutive chunks; each is either updated into the IR or merged in. */
function chunked(op: Op, events: readonly Ev[], rng: Rng): unknown {
  let ir = op.init();
  for (let at = 0; at < events.length; ) {
    const chunk = events.slice(at, (at += rng.int(1, 6)));
    ir = rng.chance(0.5)
      ? op.merge(ir, sequential(op, chunk))
      : chunk.reduce((a, e) => op.update(a, e.value, e.ts, e.seq), ir);
  }
  return ir;
}

/** Numbers with many ties, both zeros, NaN and the infinities. */
const NUMBERS = [NaN, NaN, 0, -0, 0, 1, 1, -1, 2.5, Infinity, -Infinity, 5, 5];

const ops = (k: number): Record<string, Op> => ({
  min: minOp as Op,
  max: maxOp as Op,
  top_k: topKOp(k) as Op,
  bottom_k: bottomKOp(k) as Op,
  first_k: firstKOp(k) as Op,
  last_k: lastKOp(k) as Op,
});

function genEvents(rng: Rng, values: readonly Scalar[]): Ev[] {
  // Few distinct (ts, seq): equal (ts, seq) pairs happen (a duplicated source row), as do equal values.
  return Array.from({ length: rng.int(0, 24) }, () => ({
    value: rng.pick(values),
    ts: rng.int(0, 3),
    seq: rng.int(0, 3),
  }));
}

describe('ordered ops: ties and NaN', () => {
  it('compareScalar is a total order: NaN above every number (Infinity too) and equal to NaN; -0 equals 0', () => {
    expect(compareScalar(NaN, NaN)).toBe(0);
    expect(compareScalar(NaN, Infinity)).toBeGreaterThan(0);
    expect(compareScalar(-Infinity, NaN)).toBeLessThan(0);
    expect(compareScalar(1, NaN)).toBeLessThan(0);
    expect(compareScalar(-0, 0)).toBe(0);
    expect(compareScalar('a', 'b')).toBeLessThan(0);
    expect(compareScalar(true, false)).toBeGreaterThan(0);
    // Sorting with it is consistent: antisymmetric and transitive over every pair and triple.
    const vals = [...NUMBERS, 3, -7];
    for (const a of vals) {
      for (const b of vals) {
        expect(Math.sign(compareScalar(a, b)) + Math.sign(compareScalar(b, a)), `${a} vs ${b}`).toBe(0);
        for (const c of vals) {
          if (compareScalar(a, b) <= 0 && compareScalar(b, c) <= 0) {
            expect(compareScalar(a, c), `${a} <= ${b} <= ${c}`).toBeLessThanOrEqual(0);
          }
        }
      }
    }
  });

  it('min/max/top_k/bottom_k of numbers with NaN: NaN is the largest, whatever the order', () => {
    const k = 2;
    const o = ops(k);
    const seq = (op: Op, values: number[]) =>
      op.finalize(
        sequential(
          op,
          values.map((value, i) => ({ value, ts: i, seq: i })),
        ),
      );
    // The reviewer's case: one 1 s tile of 5, 5, NaN, 1.
    expect(seq(o.min, [5, 5, NaN, 1])).toBe(1);
    expect(seq(o.min, [NaN, 5])).toBe(5);
    expect(seq(o.max, [1, NaN, 2])).toBeNaN();
    expect(seq(o.top_k, [1, NaN, Infinity, 2])).toEqual([NaN, Infinity]);
    expect(seq(o.bottom_k, [NaN, 3, NaN, 2])).toEqual([2, 3]);
    expect(seq(o.bottom_k, [NaN, 3, NaN])).toEqual([3, NaN]);
  });

  it('results do not depend on event order or on how IRs were split and merged (NaN, one zero sign)', () => {
    const rng = createRng(4242);
    // Values that compare equal here are identical, so every order must give the same IR bytes.
    const values = NUMBERS.filter((v) => !Object.is(v, -0));
    for (let run = 0; run < 3000; run++) {
      const k = rng.int(1, 4);
      const events = genEvents(rng, values);
      for (const name of ['min', 'max', 'top_k', 'bottom_k']) {
        const op = ops(k)[name];
        const want = bytes(op, sequential(op, events));
        const shuffled = rng.shuffle(events.slice());
        expect(bytes(op, sequential(op, shuffled)), `${name} k=${k} shuffled`).toBe(want);
        expect(bytes(op, chunked(op, shuffled, rng)), `${name} k=${k} shuffled, chunked`).toBe(want);
        expect(op.finalize(chunked(op, shuffled, rng)), `${name} k=${k}`).toEqual(
          op.finalize(sequential(op, events)),
        );
      }
    }
  });

  it('merging the IRs of consecutive chunks equals one-by-one updates, bytes included (ties, ±0, NaN, equal (ts, seq))', () => {
    const rng = createRng(777);
    for (let run = 0; run < 6000; run++) {
      const k = rng.int(1, 5);
      // Strings tag each event so that which of two tied entries was kept shows in the bytes.
      const numeric = rng.chance(0.5);
      const events = genEvents(rng, numeric ? NUMBERS : ['a', 'b', 'c', 'd', 'e', 'f']);
      for (const [name, op] of Object.entries(ops(k))) {
        const want = bytes(op, sequential(op, events));
        // One split point (a tile's events before a delta opens, then the delta) and random chunks.
        const at = rng.int(0, events.length);
        const split = op.merge(sequential(op, events.slice(0, at)), sequential(op, events.slice(at)));
        const where = `${name} k=${k} ${JSON.stringify(events.map((e) => [String(e.value), e.ts, e.seq]))}`;
        expect(bytes(op, split), `${where} split at ${at}`).toBe(want);
        expect(bytes(op, chunked(op, events, rng)), `${where} chunked`).toBe(want);
      }
    }
  });

  it('top_k(1) over 0, 0, -0 and last_k(1) over equal (ts, seq): merge keeps what one-by-one keeps', () => {
    const top = topKOp(1) as Op;
    const evs = [0, 0, -0].map((value) => ({ value, ts: 0, seq: 0 }));
    const one = top.finalize(sequential(top, evs));
    expect(one).toEqual([-0]); // the later of tied values wins at the bound, as in a merge
    expect(top.finalize(top.merge(sequential(top, evs.slice(0, 2)), sequential(top, evs.slice(2))))).toEqual(
      one,
    );
    const last = lastKOp(1) as Op;
    const dup = ['x', 'y'].map((value) => ({ value, ts: 5, seq: 9 }));
    expect(last.finalize(sequential(last, dup))).toEqual(['y']);
    expect(
      last.finalize(last.merge(sequential(last, dup.slice(0, 1)), sequential(last, dup.slice(1)))),
    ).toEqual(['y']);
  });
});
