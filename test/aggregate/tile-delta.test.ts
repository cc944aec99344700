import { describe, expect, it } from 'vitest';
import type { WindowDef } from '../../src/define/types.ts';
import { createGroupAggregator, type GroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { tileLevels } from '../../src/aggregate/window.ts';
import { DAY, genEvents, HOUR, makeGroupBy, MIN, win } from './support/fixture.ts';
import type { OracleEvent } from './support/oracle.ts';
import { createRng, type Rng } from './support/prng.ts';

/**
 * tiles.ts invariant 13: a TileSet that routes hot tiles' events through a batch delta flushes exactly the
 * writes (addresses, order and bytes) of one that adds every event to every level, and answers every query
 * the same, through retention cuts, budget trimming, the lifetime prefix, late events and store reloads.
 */
const WINDOW_SETS: readonly (readonly WindowDef[])[] = [
  [
    win('10m', 10 * MIN, 1000),
    win('1h', HOUR, 5 * MIN),
    win('14m_by_7m', 14 * MIN, 7 * MIN),
    win('1d', DAY, HOUR),
    win('7d', 7 * DAY, HOUR),
    win('28d', 28 * DAY, DAY),
    win('lifetime', null, DAY),
  ],
  // The lifetime hop is the delta level itself, so late bursts fold into the prefix.
  [win('1h', HOUR, 5 * MIN), win('lifetime', null, 1000)],
  // 1500 ms is not a multiple of the delta level (1 s): that level keeps per-event adds.
  [win('3s', 3000, 1500), win('1m', MIN, 1000)],
  // Only 1 ms below the hop: no level above 1 ms but the hop, which is the delta level.
  [win('5s', 5000, 1000)],
  // Short retention at the lifetime hop: a batch's early tiles fold into the prefix at its retain.
  [win('lifetime', null, 1000)],
  [win('10s', 10_000, 1000), win('lifetime', null, MIN)],
];

/** Event times of a stream: dense bursts, sparse stretches, swaps (out of order) and late bursts. */
function streamTimes(rng: Rng, lo: number): number[] {
  const out: number[] = [];
  let t = lo;
  for (let phase = rng.int(2, 8); phase > 0; phase--) {
    const kind = rng.pick(['dense', 'dense', 'sparse', 'late'] as const);
    if (kind === 'sparse') {
      for (let n = rng.int(1, 30); n > 0; n--) out.push((t += rng.int(300, 5000)));
      continue;
    }
    const span = rng.pick([50, 999, 3000, 20_000]);
    const base = kind === 'late' ? t - rng.pick([2000, 10 * MIN, 2 * HOUR, 3 * DAY]) : t;
    const burst: number[] = [];
    for (let n = rng.int(3, kind === 'late' ? 20 : 300); n > 0; n--) burst.push(base + rng.int(0, span));
    burst.sort((x, y) => x - y);
    out.push(...burst);
    if (kind === 'dense') t = burst.at(-1)! + rng.int(0, 2000);
  }
  for (let i = 1; i < out.length; i++) if (rng.chance(0.05)) [out[i], out[i - 1]] = [out[i - 1], out[i]];
  return out;
}

function streamEvents(rng: Rng, lo: number): OracleEvent[] {
  return streamTimes(rng, lo).map((ts, seq) => ({ ...genEvents(rng, 1, ts, ts + 1)[0], ts, seq }));
}

/** An aggregator whose `mergeAt` calls are counted (closing a delta calls it; per-event adds never do). */
function countingAggregator(windows: readonly WindowDef[]): { agg: GroupAggregator; merges: () => number } {
  const agg = createGroupAggregator(makeGroupBy(windows));
  let merges = 0;
  const mergeAt = agg.mergeAt;
  agg.mergeAt = (a, b, indices) => {
    merges++;
    mergeAt(a, b, indices);
  };
  return { agg, merges: () => merges };
}

type Store = Map<string, { level: number; start: number; bytes: Uint8Array }>;

/** Flushes `tiles` into `store`; returns the writes as comparable strings, in order. */
function flush(tiles: TileSet, store: Store): string[] {
  const writes: string[] = [];
  tiles.flushChanges((level, start, bytes) => {
    writes.push(`${level}:${start}:${bytes === null ? 'delete' : Buffer.from(bytes).toString('hex')}`);
    if (bytes === null) store.delete(`${level}:${start}`);
    else store.set(`${level}:${start}`, { level, start, bytes: bytes.slice() });
  });
  return writes;
}

function reload(
  agg: GroupAggregator,
  windows: readonly WindowDef[],
  store: Store,
  exactFrom: number,
  deltaFrom?: number,
) {
  const tiles = new TileSet(agg, windows, deltaFrom === undefined ? {} : { deltaFrom });
  tiles.raiseExactFrom(exactFrom);
  for (const s of [...store.values()].sort((x, y) => x.level - y.level || x.start - y.start))
    tiles.addEncodedTile(s.level, s.start, s.bytes);
  return tiles;
}

/** Every aggregation of every window at `t`, finalized. */
function answers(tiles: TileSet, windows: readonly WindowDef[], t: number): unknown[] {
  const a = tiles.aggregator;
  return windows.flatMap((w) => {
    const irs = tiles.query(t, w);
    return a.ops.map((_, i) => a.finalize(irs, i));
  });
}

describe('TileSet batch delta (invariant 13)', () => {
  it('flushes the same writes and answers the same queries as per-event adds', () => {
    let merges = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const rng = createRng(seed * 7919);
      const windows = WINDOW_SETS[seed % WINDOW_SETS.length];
      const deltaFrom = rng.pick([1, 2, 3, undefined]);
      const fast = countingAggregator(windows);
      const slow = countingAggregator(windows);
      let tiles = new TileSet(fast.agg, windows, deltaFrom === undefined ? {} : { deltaFrom });
      let ref = new TileSet(slow.agg, windows, { deltaFrom: Infinity });
      const fastStore: Store = new Map();
      const refStore: Store = new Map();
      const events = streamEvents(rng, Date.UTC(2024, 0, 10));
      let watermark = -Infinity;
      const history = rng.pick([0, 1000, 5 * MIN, HOUR]);
      const maxTiles = rng.pick([8, 64, 100_000]);
      for (let at = 0, batch = 0; at < events.length; batch++) {
        const part = events.slice(at, (at += rng.int(1, 200)));
        for (const e of part) watermark = Math.max(watermark, e.ts);
        const compactTo = watermark - history;
        const keepFrom = Math.max(compactTo, watermark - rng.pick([0, 1000, 30_000]));
        const where = `seed ${seed} batch ${batch} (deltaFrom ${deltaFrom}, levels ${tileLevels(windows)})`;
        for (const e of part) {
          // Mostly the batch's liveFrom, as a worker's roll-up; sometimes another (a run loaded mid-batch).
          const liveFrom = rng.chance(0.05) ? compactTo - rng.pick([1000, HOUR]) : compactTo;
          if (rng.chance(0.5)) {
            const values = fast.agg.values(e.row);
            tiles.addInputs(values, e.ts, e.seq, liveFrom);
            ref.addInputs(values, e.ts, e.seq, liveFrom);
          } else {
            tiles.addRow(e.row, e.ts, e.seq, liveFrom);
            ref.addRow(e.row, e.ts, e.seq, liveFrom);
          }
          if (rng.chance(0.01) && refStore.size > 0) {
            // A stored tile merged in mid-batch (not a real worker step, but both sets must agree).
            const s = rng.pick([...refStore.values()].filter((x) => x.level > 0));
            if (s !== undefined) {
              tiles.addEncodedTile(s.level, s.start, s.bytes);
              ref.addEncodedTile(s.level, s.start, s.bytes);
            }
          }
          if (rng.chance(0.01)) {
            // A read in the middle of a batch closes the open delta first.
            const t = Math.max(ref.exactFrom, watermark) + rng.int(0, 2000);
            expect(answers(tiles, windows, t), `${where}: mid-batch query @${t}`).toEqual(
              answers(ref, windows, t),
            );
          }
        }
        if (rng.chance(0.8)) {
          tiles.retainBounded(compactTo, keepFrom, maxTiles);
          ref.retainBounded(compactTo, keepFrom, maxTiles);
        }
        expect(tiles.exactFrom, `${where}: exactFrom`).toBe(ref.exactFrom);
        expect(flush(tiles, fastStore), `${where}: writes`).toEqual(flush(ref, refStore));
        if (rng.chance(0.2)) {
          tiles = reload(fast.agg, windows, fastStore, tiles.exactFrom, deltaFrom);
          ref = reload(slow.agg, windows, refStore, ref.exactFrom, Infinity);
        }
      }
      for (let q = 0; q < 8; q++) {
        const t =
          Math.max(ref.exactFrom, watermark - history) + rng.int(0, rng.pick([1000, 2 * MIN, 2 * HOUR]));
        expect(answers(tiles, windows, t), `seed ${seed} @${t}`).toEqual(answers(ref, windows, t));
      }
      expect(slow.merges(), `seed ${seed}: the per-event path never merges`).toBe(0);
      merges += fast.merges();
    }
    // The bursts must actually open deltas, or this compares the per-event path with itself.
    expect(merges).toBeGreaterThan(1000);
  });
});
