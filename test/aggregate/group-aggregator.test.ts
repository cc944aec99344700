import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { createGroupAggregator, ignoresTime } from '../../src/aggregate/group-aggregator.ts';
import { OP_NAMES } from '../../src/aggregate/ops/index.ts';
import { AGG_SPECS, genEvents, HOUR, makeGroupBy, win } from './support/fixture.ts';
import { expectClose } from './support/compare.ts';
import { oracleValue } from './support/oracle.ts';
import { createRng } from './support/prng.ts';

const W = [win('1h', HOUR, 300_000)];

describe('GroupAggregator', () => {
  it('runs every aggregation over rows, skipping null inputs; count without input counts every event', () => {
    const agg = createGroupAggregator(makeGroupBy(W));
    const rng = createRng(21);
    const events = genEvents(rng, 300, 0, 1e6);
    const irs = agg.init();
    for (const e of events) agg.update(irs, e.row, e.ts, e.seq);
    AGG_SPECS.forEach((s, i) => {
      if (s.op.startsWith('approx_')) return;
      expectClose(
        agg.finalize(irs, i),
        oracleValue(s.op, s.input, s.params ?? {}, events),
        `${s.op}(${s.input})`,
      );
    });
    expect(agg.finalize(irs, 0)).toBe(300);
    expect(agg.finalize(irs, 1)).toBe(events.filter((e) => e.row.amount !== null).length);
    expect(agg.finalize(irs, 1)).toBeLessThan(300);
  });

  it('merges, clones and round-trips whole rows', () => {
    const agg = createGroupAggregator(makeGroupBy(W));
    const rng = createRng(22);
    const events = genEvents(rng, 200, 0, 1e6);
    const whole = agg.init();
    const a = agg.init();
    const b = agg.init();
    for (const e of events) {
      agg.update(whole, e.row, e.ts, e.seq);
      agg.update(rng.chance(0.5) ? a : b, e.row, e.ts, e.seq);
    }
    const bBytes = agg.encode(b);
    const merged = agg.merge(agg.decode(agg.encode(a)), b);
    expect(agg.encode(b)).toEqual(bBytes); // b untouched
    const copy = agg.clone(merged);
    agg.update(merged, events[0].row, 5e6, 1e6); // mutating the original leaves the clone alone
    AGG_SPECS.forEach((s, i) => {
      expectClose(agg.finalize(copy, i), agg.finalize(whole, i), `${s.op}(${s.input})`);
    });
    expect(AGG_SPECS.map((_, i) => agg.emptyValue(i))).toEqual(
      AGG_SPECS.map((s) =>
        s.op === 'count' || s.op === 'unique_count' ? 0 : s.op === 'histogram' ? {} : null,
      ),
    );
  });

  it('encodes one-event tiles as the event, and decodes them like the IR row of that event', () => {
    const agg = createGroupAggregator(makeGroupBy(W));
    const rng = createRng(23);
    for (const e of genEvents(rng, 50, -1e6, 1e6)) {
      const irs = agg.init();
      agg.update(irs, e.row, e.ts, e.seq);
      const bytes = agg.encodeEvent({ values: agg.values(e.row), ts: e.ts, seq: e.seq });
      expect(agg.readEvent(bytes)).toEqual({ values: agg.values(e.row), ts: e.ts, seq: e.seq });
      expect(agg.readEvent(agg.encode(irs))).toBeNull();
      const decoded = agg.decode(bytes);
      AGG_SPECS.forEach((s, i) => expect(agg.finalize(decoded, i), s.op).toEqual(agg.finalize(irs, i)));
    }
  });

  it('encodes a one-event tile value by value, also when aggregations of one column share its bytes', () => {
    // Aggregations of one column have the same value, encoded once and copied; a hand-built snapshot
    // whose values differ (0 and -0 encode differently) must still be encoded value by value.
    const agg = createGroupAggregator(makeGroupBy(W));
    const rng = createRng(25);
    const expectBytes = (values: (number | string | boolean | null)[], ts: number, seq: number) => {
      const w = new ByteWriter();
      w.writeU8(2);
      w.writeVarUint(values.length);
      for (const v of values) w.writeScalar(v);
      w.writeNumber(ts);
      w.writeNumber(seq);
      expect(agg.encodeEvent({ values, ts, seq })).toEqual(w.finish());
    };
    for (const e of genEvents(rng, 100, -1e6, 1e6)) {
      const values = agg.values(e.row);
      expectBytes(values, e.ts, e.seq);
      const mixed = values.map((v, i) =>
        AGG_SPECS[i].input === 'amount' ? rng.pick([0, -0, 1.5, null]) : v,
      );
      expectBytes(mixed, e.ts, e.seq);
    }
  });

  it('ops said to ignore ts and seq give the same IR bytes whatever they are; the others do not', () => {
    const timeless = AGG_SPECS.filter((s) => ignoresTime(s.op));
    const timed = AGG_SPECS.filter((s) => !ignoresTime(s.op));
    for (const op of OP_NAMES.filter(ignoresTime))
      expect(
        timeless.some((s) => s.op === op),
        op,
      ).toBe(true);
    expect(timed.length).toBeGreaterThan(0);
    const rng = createRng(26);
    const changed = new Set<string>();
    for (let round = 0; round < 30; round++) {
      const events = genEvents(rng, rng.int(1, 40), -1e6, 1e6);
      const shuffled = events.map(() => ({
        ts: rng.int(-1e6, 1e6) + rng.pick([0, 0.5]),
        seq: rng.int(0, 1e6),
      }));
      for (const specs of [timeless, timed]) {
        const agg = createGroupAggregator(makeGroupBy(W, specs));
        const a = agg.init();
        const b = agg.init();
        events.forEach((e, i) => {
          agg.update(a, e.row, e.ts, e.seq);
          agg.update(b, e.row, shuffled[i]!.ts, shuffled[i]!.seq);
        });
        if (specs === timeless) expect(agg.encode(b)).toEqual(agg.encode(a));
        else
          specs.forEach((s, i) => {
            if (JSON.stringify(agg.finalize(a, i)) !== JSON.stringify(agg.finalize(b, i))) changed.add(s.op);
          });
      }
    }
    // The check can fail: ops that do read the times change (top_k and bottom_k only break ties by them).
    expect([...changed].sort()).toEqual(['first', 'first_k', 'last', 'last_k']);
  });

  it('mergeEncoded skips the time of a one-event tile only when no op reads it, and still checks its bytes', () => {
    const timeless = createGroupAggregator(
      makeGroupBy(
        W,
        AGG_SPECS.filter((s) => ignoresTime(s.op)),
      ),
    );
    const rng = createRng(27);
    // Times as varints of every length and as f64s (fractions, beyond 2^50), seqs small and large.
    const times = [0, 1, -1, 127, 2 ** 20, 1.7e12, -1.7e12, 2 ** 49, 2 ** 51, 1.5, -0.25, 1e300];
    for (const e of genEvents(rng, 60, -1e6, 1e6)) {
      const ts = rng.pick(times);
      const seq = rng.pick(times);
      const bytes = timeless.encodeEvent({ values: timeless.values(e.row), ts, seq });
      const want = timeless.init();
      timeless.updateValues(want, timeless.values(e.row), ts, seq);
      const got = timeless.init();
      const buffer = new Uint8Array(bytes.length + 12).fill(0x81);
      buffer.set(bytes, 3);
      timeless.mergeEncoded(buffer, [got], 1, 3, 3 + bytes.length);
      expect(timeless.encode(got)).toEqual(timeless.encode(want));
      // Cut anywhere (inside the time or seq too), or followed by a byte: corrupt, as when decoded.
      for (let end = 4; end < 3 + bytes.length; end++)
        expect(() => timeless.mergeEncoded(buffer, [timeless.init()], 1, 3, end)).toThrow(RangeError);
      expect(() => timeless.mergeEncoded(buffer, [timeless.init()], 1, 3, 4 + bytes.length)).toThrow(
        /trailing/,
      );
    }
    // A varint longer than any number's (10 bytes) is an error, as readVarUint makes it.
    const w = new ByteWriter();
    w.writeU8(2);
    w.writeVarUint(timeless.inputs.length);
    for (let i = 0; i < timeless.inputs.length; i++) w.writeScalar(null);
    for (let i = 0; i < 9; i++) w.writeU8(0x80);
    w.writeU8(0);
    w.writeNumber(0);
    expect(() => timeless.mergeEncoded(w.finish(), [timeless.init()], 1)).toThrow(/varint too long/);
  });

  it('mergeEncoded equals merge(decode) into every target, and reset equals init', () => {
    const agg = createGroupAggregator(makeGroupBy(W));
    const rng = createRng(24);
    for (let round = 0; round < 40; round++) {
      const events = genEvents(rng, rng.int(1, 30), -1e6, 1e6);
      const tile = agg.init();
      for (const e of events) agg.update(tile, e.row, e.ts, e.seq);
      const e0 = events[0]!;
      const bytes = rng.chance(0.3)
        ? agg.encodeEvent({ values: agg.values(e0.row), ts: e0.ts, seq: e0.seq })
        : agg.encode(tile);
      const copy = Uint8Array.from(bytes);
      // Targets with prior content, one of them a reset row (reset must forget what it held).
      const targets = [agg.init(), agg.init(), agg.init()];
      for (const e of genEvents(rng, rng.int(0, 10), -1e6, 1e6))
        agg.update(targets[rng.int(0, 1)]!, e.row, e.ts, e.seq);
      agg.update(targets[2]!, e0.row, 7e6, 9e6);
      agg.reset(targets[2]!);
      // Bit for bit: a one-event tile is applied with updateValues (as TileSet.query does), a row merged.
      const event = agg.readEvent(bytes);
      const count = rng.int(1, 3);
      const expected = targets.map((t, k) => {
        const want = agg.clone(t);
        if (k >= count) return want;
        if (event === null) return agg.merge(want, agg.decode(bytes));
        agg.updateValues(want, event.values, event.ts, event.seq);
        return want;
      });
      agg.mergeEncoded(bytes, targets, count);
      expect(bytes).toEqual(copy);
      targets.forEach((t, k) =>
        AGG_SPECS.forEach((s, i) =>
          expect(agg.finalize(t, i), `${s.op} target ${k}`).toEqual(agg.finalize(expected[k]!, i)),
        ),
      );
      AGG_SPECS.forEach((s, i) =>
        expect(agg.finalize(agg.reset(targets[0]!), i), s.op).toEqual(agg.emptyValue(i)),
      );
      // A reset row then behaves like a fresh one (no leftover compensation terms or counts).
      for (const t of targets) agg.merge(agg.reset(t), tile);
      targets.forEach((t) =>
        AGG_SPECS.forEach((s, i) => expect(agg.finalize(t, i), s.op).toEqual(agg.finalize(tile, i))),
      );
    }
  });

  it('encodes small tiles compactly', () => {
    const agg = createGroupAggregator(makeGroupBy(W));
    const irs = agg.init();
    agg.update(irs, { k: 'a', amount: 12.5, qty: 3, merchant: 'amazon', flag: true, at: 1000 }, 1000, 1);
    expect(agg.encode(irs).length).toBeLessThan(200);
  });

  it('rejects bad definitions and foreign tiles with errors naming the group-by and the fix', () => {
    const gb = makeGroupBy(W, [{ op: 'sum', input: 'merchant' }]);
    expect(() => createGroupAggregator(gb)).toThrowErrorMatchingInlineSnapshot(
      `[Error: group-by 'g': sum does not accept string column 'merchant'; convert it with a derived column or pick another op]`,
    );
    expect(() => createGroupAggregator(makeGroupBy(W, [{ op: 'sum', input: 'nope' }]))).toThrow(
      /input column 'nope' is not in source 'events'/,
    );
    const two = createGroupAggregator(makeGroupBy(W, AGG_SPECS.slice(0, 2)));
    const three = createGroupAggregator(makeGroupBy(W, AGG_SPECS.slice(0, 3)));
    expect(() => three.decode(two.encode(two.init()))).toThrow(/has 2 aggregations, expected 3/);
  });
});
