import { describe, expect, it } from 'vitest';
import type { Scalar } from '../../src/define/types.ts';
import type { AggOp } from '../../src/aggregate/agg-op.ts';
import { ByteReader, ByteWriter } from '../../src/aggregate/bytes.ts';
import { OP_NAMES, opSpecs } from '../../src/aggregate/ops/index.ts';
import { AGG_SPECS, genEvents, SCHEMA } from './support/fixture.ts';
import { expectClose } from './support/compare.ts';
import { oracleValue, type OracleEvent } from './support/oracle.ts';
import { createRng } from './support/prng.ts';

type Op = AggOp<Scalar, unknown, unknown>;

function opFor(spec: (typeof AGG_SPECS)[number]): Op {
  const type = spec.input === null ? null : SCHEMA[spec.input as keyof typeof SCHEMA].type;
  return opSpecs[spec.op].factory(spec.params ?? {}, type) as Op;
}

function onePass(op: Op, input: string | null, events: readonly OracleEvent[]): unknown {
  let ir = op.init();
  for (const e of events) {
    const v = input === null ? true : e.row[input];
    if (v !== null) ir = op.update(ir, v, e.ts, e.seq);
  }
  return ir;
}

function roundTrip(op: Op, ir: unknown): unknown {
  const w = new ByteWriter(8);
  op.encode(ir, w);
  const r = new ByteReader(w.finish());
  const out = op.decode(r);
  expect(r.done).toBe(true);
  return out;
}

const isSketch = (name: string) => name.startsWith('approx_');

describe('every op', () => {
  it('covers the whole registry', () => {
    expect(new Set(AGG_SPECS.map((s) => s.op))).toEqual(new Set(OP_NAMES));
    expect(OP_NAMES).toHaveLength(17);
  });

  for (const spec of AGG_SPECS) {
    const label = `${spec.op}(${spec.input ?? 'events'})`;

    it(`${label}: one pass equals the naive oracle; random splits merged in random order equal one pass; encode/decode is identity`, () => {
      const rng = createRng(0xa11ce + spec.op.length * 31 + (spec.input?.length ?? 0));
      const op = opFor(spec);
      for (let round = 0; round < 60; round++) {
        const n = rng.chance(0.1) ? 0 : rng.int(1, 80);
        const events = genEvents(rng, n, 0, rng.pick([5, 1000, 10_000_000]));
        const order = rng.shuffle([...events]);
        const whole = onePass(op, spec.input, order);
        const expected = op.finalize(whole);
        if (!isSketch(spec.op))
          expectClose(expected, oracleValue(spec.op, spec.input, spec.params ?? {}, events), label);

        // Split into random parts, aggregate each, round-trip some through bytes, merge in random order.
        const parts: OracleEvent[][] = Array.from({ length: rng.int(1, 6) }, () => []);
        for (const e of order) rng.pick(parts).push(e);
        const irs = rng
          .shuffle(parts.map((p) => onePass(op, spec.input, p)))
          .map((ir) => (rng.chance(0.5) ? roundTrip(op, ir) : ir));
        let merged = op.init();
        for (const ir of irs) {
          const before = JSON.stringify(op.finalize(ir));
          merged = op.merge(merged, ir);
          expect(JSON.stringify(op.finalize(ir)), 'merge must not mutate its second argument').toBe(before);
        }
        const mergedValue = op.finalize(merged);
        if (isSketch(spec.op)) expect(mergedValue).toEqual(expected);
        else expectClose(mergedValue, expected, `${label} merged`);
        expectClose(op.finalize(roundTrip(op, whole)), expected, `${label} round trip`);
        expectClose(op.finalize(op.clone(whole)), expected, `${label} clone`);
      }
    });
  }

  it('returns the DESIGN §1 empty values: 0 for counts, {} for histogram, null otherwise', () => {
    for (const name of OP_NAMES) {
      const spec = opSpecs[name];
      const op = spec.factory({ k: 2, percentiles: [0.5] }, name === 'count' ? null : 'int');
      const expected = name === 'count' || name === 'unique_count' ? 0 : name === 'histogram' ? {} : null;
      expect(op.finalize(op.init()), name).toEqual(expected);
      expect(spec.emptyValue(), name).toEqual(expected);
      expect(op.finalize(roundTrip(op as Op, op.init())), name).toEqual(expected);
    }
  });

  it('breaks ts ties by source order (later seq counts as later)', () => {
    const ts = 1000;
    const updates: [Scalar, number][] = [
      ['b', 7],
      ['a', 3],
      ['c', 9],
    ];
    const run = (name: 'first' | 'last' | 'first_k' | 'last_k') => {
      const op = opSpecs[name].factory({ k: 2 }, 'string') as Op;
      let ir = op.init();
      for (const [v, seq] of updates) ir = op.update(ir, v, ts, seq);
      return op.finalize(ir);
    };
    expect(run('first')).toBe('a');
    expect(run('last')).toBe('c');
    expect(run('first_k')).toEqual(['a', 'b']);
    expect(run('last_k')).toEqual(['c', 'b']);
  });

  it('sorts histogram keys and top_k/bottom_k results', () => {
    const hist = opSpecs.histogram.factory({}, 'string') as Op;
    let ir = hist.init();
    for (const v of ['b', 'a', 'c', 'a']) ir = hist.update(ir, v, 0, 0);
    expect(Object.keys(hist.finalize(ir) as object)).toEqual(['a', 'b', 'c']);
    const top = opSpecs.top_k.factory({ k: 3 }, 'int') as Op;
    let t = top.init();
    for (const v of [5, 1, 9, 9, 3]) t = top.update(t, v, 0, 0);
    expect(top.finalize(t)).toEqual([9, 9, 5]);
  });

  it('rejects bad parameters with a message that shows the fix', () => {
    expect(() => opSpecs.top_k.factory({}, 'int')).toThrowErrorMatchingInlineSnapshot(
      `[Error: top_k: parameter k must be a positive integer (got undefined); e.g. top_k('amount', { k: 5 })]`,
    );
    expect(() =>
      opSpecs.approx_percentile.factory({ percentiles: [1.5] }, 'float'),
    ).toThrowErrorMatchingInlineSnapshot(
      `[Error: approx_percentile: parameter percentiles must be a non-empty list of numbers in [0, 1] (got [1.5]); e.g. { percentiles: [0.5, 0.95] }]`,
    );
  });

  it('declares input types and output types', () => {
    expect(opSpecs.sum.accepts('string')).toBe(false);
    expect(opSpecs.min.accepts('string')).toBe(true);
    expect(opSpecs.min.accepts('bool')).toBe(false);
    expect(opSpecs.histogram.accepts('bool')).toBe(true);
    expect(opSpecs.sum.outputType('int')).toBe('int');
    expect(opSpecs.avg.outputType('int')).toBe('float');
    expect(opSpecs.max.outputType('timestamp')).toBe('timestamp');
    expect(opSpecs.approx_percentile.outputType('float')).toBe('json');
    expect(opSpecs.count.outputType(null)).toBe('int');
  });
});
