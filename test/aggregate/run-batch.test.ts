import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { RunBatch, writeRunEvent, writeRunHeader } from '../../src/aggregate/event-run.ts';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { AGG_SPECS, DAY, HOUR, makeGroupBy, win } from './support/fixture.ts';
import { createRng } from './support/prng.ts';

describe('RunBatch (inputs encoded once per batch for several group-bys)', () => {
  const windows = [win('1h', HOUR, 5 * 60_000), win('1d', DAY, HOUR)];
  // Overlapping but different column sets, in different first-use orders.
  const a = createGroupAggregator(makeGroupBy(windows));
  const b = createGroupAggregator(
    makeGroupBy(windows, [
      { op: 'sum', input: 'qty' },
      { op: 'count', input: null },
      { op: 'last', input: 'flag' },
      { op: 'unique_count', input: 'merchant' },
    ]),
  );
  const rng = createRng(7);
  const rows: Row[] = Array.from({ length: 300 }, () => ({
    k: 'x',
    amount: rng.chance(0.1) ? null : rng.pick([12.5, -0.25, 1e-7, 3, 1e300, 0.1 + 0.2]),
    qty: rng.chance(0.1) ? null : rng.int(-1000, 1000),
    merchant: rng.chance(0.1) ? null : rng.pick(['m1', 'ünï', 'a'.repeat(40), '']),
    flag: rng.chance(0.1) ? null : rng.chance(0.5),
    at: rng.int(0, 1e12),
  }));
  const ts = rows.map((_, i) => 1_700_000_000_000 + i * 1000);

  it('writes the bytes writeRunEvent writes and reads the values agg.values reads', () => {
    const batch = new RunBatch([a, b]);
    for (let round = 0; round < 2; round++) {
      // Reused across batches; events added out of order.
      batch.reset(rows.length);
      for (let r = rows.length - 1; r >= 0; r--) batch.add(r, rows[r]!, ts[r]!, r + round);
      for (const agg of [a, b]) {
        const want = new ByteWriter();
        const got = new ByteWriter(4);
        writeRunHeader(want, agg, rows.length);
        writeRunHeader(got, agg, rows.length);
        const scratch: unknown[] = [];
        for (let r = 0; r < rows.length; r++) {
          writeRunEvent(want, agg, rows[r]!, ts[r]!, r + round);
          batch.writeEvent(got, agg, r);
          expect(batch.inputs(agg, r, scratch as never)).toEqual(agg.values(rows[r]!));
        }
        expect(got.finish()).toEqual(want.finish());
      }
    }
  });

  it('rolls up to the same tiles as addRow', () => {
    const batch = new RunBatch([a]);
    batch.reset(rows.length);
    rows.forEach((row, r) => batch.add(r, row, ts[r]!, r));
    const byRow = new TileSet(a, windows);
    const byInputs = new TileSet(a, windows);
    const scratch: never[] = [];
    rows.forEach((row, r) => {
      byRow.add(row, ts[r]!, r);
      byInputs.addInputs(batch.inputs(a, r, scratch), ts[r]!, r, -Infinity);
    });
    for (const ref of byRow.refs())
      expect(byInputs.encodeTile(ref.level, ref.start)).toEqual(byRow.encodeTile(ref.level, ref.start));
    expect(byInputs.size).toBe(byRow.size);
    expect(AGG_SPECS.length).toBe(a.inputs.length);
  });
});
