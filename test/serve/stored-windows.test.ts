import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { EVENT_RUN_LEVEL, writeRunEvent, writeRunHeader } from '../../src/aggregate/event-run.ts';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { windowGroups } from '../../src/aggregate/window.ts';
import type { WindowDef } from '../../src/define/types.ts';
import type { StoredTile } from '../../src/online/store.ts';
import { StoredWindowReader } from '../../src/online/stored-windows.ts';
import { packTiles, TileColumns } from '../../src/online/tile-pack.ts';
import { expectClose } from '../aggregate/support/compare.ts';
import { DAY, genEvents, HOUR, makeGroupBy, MIN, win } from '../aggregate/support/fixture.ts';
import { oracleValue, oracleWindow, type OracleEvent } from '../aggregate/support/oracle.ts';
import { createRng } from '../aggregate/support/prng.ts';

const WINDOWS: WindowDef[] = [
  win('10m', 10 * MIN, 1000),
  win('1h', HOUR, 5 * MIN),
  win('1h_by_1m', HOUR, MIN),
  win('1d', DAY, HOUR),
  win('7d', 7 * DAY, HOUR),
  win('28d', 28 * DAY, DAY),
  win('lifetime', null, DAY),
];
const groupBy = makeGroupBy(WINDOWS);
const agg = createGroupAggregator(groupBy);
const groups = windowGroups(groupBy);

/** The stored form of a tile set, as a store returns it: sorted by (level, start). */
function stored(tiles: TileSet): StoredTile[] {
  return tiles
    .refs()
    .map(({ level, start }) => ({ level, start, bytes: tiles.encodeTile(level, start)! }))
    .sort((a, b) => a.level - b.level || a.start - b.start);
}

const columns = (list: readonly StoredTile[]) => new TileColumns().fromTiles(list);

function expectOracle(irs: unknown[], events: readonly OracleEvent[], where: string): void {
  let reference: unknown[] | null = null;
  groupBy.aggregations.forEach((def, i) => {
    const got = agg.finalize(irs, i);
    if (def.op.startsWith('approx_')) {
      if (reference === null) {
        reference = agg.init();
        for (const e of events) agg.update(reference, e.row, e.ts, e.seq);
      }
      expect(got, `${where} ${def.names[0]}`).toEqual(agg.finalize(reference, i));
    } else {
      expectClose(got, oracleValue(def.op, def.input, def.params, events), `${where} ${def.names[0]}`);
    }
  });
}

describe('StoredWindowReader (windows straight from stored tiles)', () => {
  it('equals the naive oracle and TileSet.query for every op and window, with compaction and a lifetime prefix', () => {
    const rng = createRng(31);
    const reader = new StoredWindowReader(agg, WINDOWS, groups);
    for (let round = 0; round < 6; round++) {
      const lo = Date.UTC(2024, 0, 1) + rng.int(0, 10 * DAY);
      const hi = lo + rng.pick([2 * HOUR, 3 * DAY, 40 * DAY]);
      const events = genEvents(rng, rng.int(1, 300), lo, hi, ['a']);
      const tiles = new TileSet(agg, WINDOWS);
      for (const e of events) tiles.add(e.row, e.ts, e.seq);
      const newest = Math.max(...events.map((e) => e.ts));
      const compacted = rng.chance(0.7);
      if (compacted) tiles.compact(newest);
      const list = stored(tiles);
      const times = compacted
        ? [newest, newest + 1, newest + rng.int(0, 9 * DAY), Math.floor(newest / HOUR) * HOUR + HOUR]
        : [lo - 1, newest, newest + 1, rng.int(lo, hi), Math.floor(rng.int(lo, hi) / MIN) * MIN];
      for (const t of times) {
        // Every other time from the packed value (tiles read as ranges of one buffer), else from tile objects;
        // finest level first, coarsest first (as LMDB returns them) or shuffled.
        const order = rng.pick([list, [...list].reverse(), rng.shuffle([...list])]);
        const source = t % 2 === 0 ? columns(order) : new TileColumns().fromPacked(packTiles(order));
        const irs = reader.windows(source, 0, t);
        groups.forEach((g, gi) => {
          const where = `round ${round} @${t} ${g.window.label}`;
          expectOracle(irs[gi]!, oracleWindow(events, t, g.window.sizeMs, g.window.hopMs), where);
          const viaTileSet = tiles.query(t, g.window);
          // Tiles merge in another order than TileSet's, so floats agree to DESIGN's 1e-9, not bit for bit.
          groupBy.aggregations.forEach((_, i) =>
            expectClose(agg.finalize(irs[gi]!, i), agg.finalize(viaTileSet, i), where),
          );
        });
      }
    }
  });

  it('merges a tile from its range of a larger buffer, and never reads past the range', () => {
    const rng = createRng(11);
    const lo = Date.UTC(2024, 2, 1);
    const events = genEvents(rng, 40, lo, lo + HOUR, ['a']);
    const irs = agg.init();
    for (const e of events) agg.update(irs, e.row, e.ts, e.seq);
    const one = events.find((e) => e.row.amount !== null) ?? events[0]!;
    const tiles = [
      agg.encode(irs),
      agg.encodeEvent({ values: agg.values(one.row), ts: one.ts, seq: one.seq }),
    ];
    for (const tile of tiles) {
      const buffer = new Uint8Array(tile.length + 10).fill(0x55);
      buffer.set(tile, 4);
      const viaCopy = agg.init();
      agg.mergeEncoded(tile.slice(), [viaCopy], 1);
      const viaRange = agg.init();
      agg.mergeEncoded(buffer, [viaRange], 1, 4, 4 + tile.length);
      groupBy.aggregations.forEach((_, i) =>
        expect(agg.finalize(viaRange, i)).toEqual(agg.finalize(viaCopy, i)),
      );
      expect(() => agg.mergeEncoded(buffer, [agg.init()], 1, 4, 3 + tile.length)).toThrow();
      expect(() => agg.mergeEncoded(buffer, [agg.init()], 1, 4, 5 + tile.length)).toThrow(/trailing/);
    }
  });

  it('merges tiles stored twice at one address (deltas) and never mutates the stored bytes', () => {
    const rng = createRng(5);
    const reader = new StoredWindowReader(agg, WINDOWS, groups);
    const lo = Date.UTC(2024, 2, 1);
    const events = genEvents(rng, 200, lo, lo + 2 * DAY, ['a']);
    // Two tile sets over a split of the events: their tiles overlap in address, like deltas of one entity.
    const halves = [new TileSet(agg, WINDOWS), new TileSet(agg, WINDOWS)];
    events.forEach((e, i) => halves[i % 2]!.add(e.row, e.ts, e.seq));
    const list = [...stored(halves[0]!), ...stored(halves[1]!)];
    const copy = list.map((s) => Buffer.from(s.bytes).toString('hex'));
    for (const t of [lo + DAY, lo + 2 * DAY, lo + 2 * DAY + 17]) {
      const irs = reader.windows(columns(list), 0, t);
      groups.forEach((g, gi) =>
        expectOracle(irs[gi]!, oracleWindow(events, t, g.window.sizeMs, g.window.hopMs), `@${t}`),
      );
    }
    expect(list.map((s) => Buffer.from(s.bytes).toString('hex'))).toEqual(copy);
  });

  it('adds the events of an event run (in no tile) to every window that contains them, lifetime included', () => {
    const rng = createRng(12);
    const reader = new StoredWindowReader(agg, WINDOWS, groups);
    for (let round = 0; round < 8; round++) {
      const lo = Date.UTC(2024, 4, 1);
      const events = genEvents(rng, rng.int(2, 250), lo, lo + rng.pick([3 * HOUR, 35 * DAY]), ['a']);
      // The oldest events go to tiles (compacted, so the prefix may hold some), the rest to a run of chunks.
      const sorted = [...events].sort((x, y) => x.ts - y.ts);
      const split = rng.int(0, sorted.length);
      const tiles = new TileSet(agg, WINDOWS);
      for (const e of sorted.slice(0, split)) tiles.add(e.row, e.ts, e.seq);
      if (split > 0 && rng.chance(0.5)) tiles.compact(sorted[split - 1]!.ts);
      const runEvents = rng.shuffle(sorted.slice(split));
      const w = new ByteWriter();
      for (let i = 0; i < runEvents.length; ) {
        const chunk = runEvents.slice(i, i + rng.int(1, 5));
        writeRunHeader(w, agg, chunk.length);
        for (const e of chunk) writeRunEvent(w, agg, e.row, e.ts, e.seq);
        i += chunk.length;
      }
      const list = [...stored(tiles), { level: EVENT_RUN_LEVEL, start: 0, bytes: w.finish() }];
      const newest = sorted.at(-1)!.ts;
      for (const t of [newest, newest + 1, newest + rng.int(0, 2 * DAY)]) {
        if (t < tiles.exactFrom) continue;
        const irs = reader.windows(columns(list), 0, t);
        groups.forEach((g, gi) =>
          expectOracle(
            irs[gi]!,
            oracleWindow(events, t, g.window.sizeMs, g.window.hopMs),
            `run round ${round} @${t} ${g.window.label}`,
          ),
        );
      }
    }
  });

  it('leaves nothing of one entity in the next: only windows something was merged into are touched and reset', () => {
    const rng = createRng(5);
    const t = Date.UTC(2024, 0, 10) + 123_456;
    const reader = new StoredWindowReader(agg, WINDOWS, groups);
    /** An entity's stored tiles and run: events older than `runFrom` in tiles (compacted), the rest in a run. */
    const entity = (events: readonly OracleEvent[], runFrom: number): StoredTile[] => {
      const tiles = new TileSet(agg, WINDOWS);
      const w = new ByteWriter();
      const late = events.filter((e) => e.ts >= runFrom);
      for (const e of events) if (e.ts < runFrom) tiles.add(e.row, e.ts, e.seq);
      if (rng.chance(0.5)) tiles.compact(runFrom - 1);
      if (late.length === 0) return stored(tiles);
      writeRunHeader(w, agg, late.length);
      for (const e of late) writeRunEvent(w, agg, e.row, e.ts, e.seq);
      return [...stored(tiles), { level: EVENT_RUN_LEVEL, start: 0, bytes: w.finish() }];
    };
    for (let round = 0; round < 12; round++) {
      // A busy entity (events in every window, some in its run), then a quiet one (none in the short windows;
      // older than 29 days, compacted, only in the lifetime prefix).
      const busy = genEvents(rng, 60, t - 3 * HOUR, t - 1, ['a']);
      const quietFrom = rng.pick([20 * DAY, 60 * DAY]);
      const quiet = genEvents(rng, rng.int(0, 3), t - quietFrom, t - quietFrom / 2, ['a']);
      for (const [events, runFrom] of [
        [busy, t - 20 * MIN],
        [quiet, t - 3 * DAY],
      ] as const) {
        const list = entity(events, runFrom);
        const irs = reader.windows(columns(list), 0, t);
        const fresh = new StoredWindowReader(agg, WINDOWS, groups).windows(columns(list), 0, t);
        groups.forEach((g, gi) => {
          const inWindow = oracleWindow(events, t, g.window.sizeMs, g.window.hopMs);
          expect(reader.touched[gi], `round ${round} ${g.window.label}`).toBe(inWindow.length > 0 ? 1 : 0);
          groupBy.aggregations.forEach((_, i) =>
            expect(agg.finalize(irs[gi]!, i)).toEqual(agg.finalize(fresh[gi]!, i)),
          );
        });
      }
    }
  });

  it('rejects tiles of unknown levels, misaligned tiles and lifetime queries older than the prefix', () => {
    const reader = new StoredWindowReader(agg, WINDOWS, groups);
    const bytes = agg.encode(agg.init());
    expect(() => reader.windows(columns([{ level: 7, start: 0, bytes }]), 0, 1000)).toThrow(
      /level 7 ms is not one of its levels.*re-upload/,
    );
    // An unknown level after known ones (the level search starts where the last one was found).
    for (const known of [
      [HOUR, 1],
      [1, HOUR],
    ])
      expect(() =>
        reader.windows(columns([...known, 7].map((level) => ({ level, start: 0, bytes }))), 0, 1000),
      ).toThrow(/level 7 ms is not one of its levels/);
    expect(() => reader.windows(columns([{ level: HOUR, start: 5, bytes }]), 0, 1000)).toThrow(/not aligned/);
    expect(() => reader.windows(columns([{ level: 0, start: 10 * DAY, bytes }]), 0, DAY)).toThrow(
      /older than the compacted prefix/,
    );
    const noLifetime = makeGroupBy([win('1h', HOUR, 5 * MIN)]);
    const a = createGroupAggregator(noLifetime);
    const r = new StoredWindowReader(a, [win('1h', HOUR, 5 * MIN)], windowGroups(noLifetime));
    expect(() => r.windows(columns([{ level: 0, start: 0, bytes: a.encode(a.init()) }]), 0, DAY)).toThrow(
      /no lifetime window/,
    );
  });
});
