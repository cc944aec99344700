import { describe, expect, it } from 'vitest';
import type { GroupByDef, OpName, OpParams, Row, Scalar, WindowDef } from '../../src/define/types.ts';
import { ByteWriter } from '../../src/aggregate/bytes.ts';
import { EVENT_RUN_LEVEL, writeRunEvent, writeRunHeader } from '../../src/aggregate/event-run.ts';
import { createGroupAggregator, type GroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import { TileSet } from '../../src/aggregate/tiles.ts';
import { tileLevels } from '../../src/aggregate/window.ts';
import { AGG_SPECS, DAY, genEvents, HOUR, makeGroupBy, MIN, win } from './support/fixture.ts';
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

const MAX = Number.MAX_SAFE_INTEGER;
/** Values of `score` (a float column): NaN (Parquet can hold it), both zeros, infinities and many ties. */
const SCORES: readonly (Scalar | null)[] = [NaN, NaN, 0, -0, 0, 1, 1, 2.5, -3, Infinity, -Infinity, null];
/** Int values whose partial sums pass 2^53 (an int sum's (s, c) then depends on how it was merged). */
const HUGE = [MAX, MAX, -MAX, MAX - 1, 2 ** 52, -(2 ** 52), 1];

/**
 * The fixture's aggregations plus the ones ties and special values reach: min/max/first/last and the k ops
 * with small k over `score` (NaN, ±0, ties), k = 1 over tied ints, and sums of huge ints.
 */
const EXTRA_SPECS: readonly { op: OpName; input: string | null; params?: OpParams }[] = [
  { op: 'min', input: 'score' },
  { op: 'max', input: 'score' },
  { op: 'first', input: 'score' },
  { op: 'last', input: 'score' },
  { op: 'top_k', input: 'score', params: { k: 1 } },
  { op: 'bottom_k', input: 'score', params: { k: 2 } },
  { op: 'first_k', input: 'score', params: { k: 1 } },
  { op: 'last_k', input: 'score', params: { k: 1 } },
  { op: 'last_k', input: 'merchant', params: { k: 2 } },
  { op: 'top_k', input: 'qty', params: { k: 1 } },
  { op: 'bottom_k', input: 'qty', params: { k: 1 } },
  { op: 'sum', input: 'score' },
  { op: 'unique_count', input: 'score' },
  { op: 'sum', input: 'big' },
  { op: 'max', input: 'big' },
];

function groupBy(windows: readonly WindowDef[]): GroupByDef {
  const g = makeGroupBy(windows, [...AGG_SPECS, ...EXTRA_SPECS]);
  const float = { kind: 'column', type: 'float', nullable: true } as const;
  const int = { kind: 'column', type: 'int', nullable: true } as const;
  return { ...g, source: { ...g.source, schema: { ...g.source.schema, score: float, big: int } } };
}

/**
 * The fixture's rows plus `score` and `big`; source order (seq) is time-unrelated as in the fixture, and
 * some events repeat the previous seq (a duplicated source row: equal (ts, seq) when ts ties too).
 */
function streamEvents(rng: Rng, lo: number): OracleEvent[] {
  let seq = 0;
  return streamTimes(rng, lo).map((ts) => {
    const e = genEvents(rng, 1, ts, ts + 1)[0];
    const row: Row = { ...e.row, score: rng.pick(SCORES), big: rng.chance(0.1) ? null : rng.pick(HUGE) };
    if (rng.chance(0.05)) row.amount = rng.pick([0, -0]);
    if (!rng.chance(0.05)) seq++;
    return { ...e, row, ts, seq };
  });
}

/** An aggregator whose `mergeAt` calls are counted (closing a delta calls it; per-event adds never do). */
function countingAggregator(windows: readonly WindowDef[]): { agg: GroupAggregator; merges: () => number } {
  const agg = createGroupAggregator(groupBy(windows));
  let merges = 0;
  const mergeAt = agg.mergeAt;
  agg.mergeAt = (a, b, indices) => {
    merges++;
    mergeAt(a, b, indices);
  };
  return { agg, merges: () => merges };
}

/** A stored event run (event-run.ts) holding `events`. */
function encodeRun(agg: GroupAggregator, events: readonly OracleEvent[]): Uint8Array {
  const out = new ByteWriter(256);
  writeRunHeader(out, agg, events.length);
  for (const e of events) writeRunEvent(out, agg, e.row, e.ts, e.seq);
  return out.finish();
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
    let runs = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const rng = createRng(seed * 7919);
      const windows = WINDOW_SETS[seed % WINDOW_SETS.length];
      // 1 acts as 2 (the smallest that keeps the bytes); undefined is the default (3).
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
        for (let p = 0; p < part.length; p++) {
          const e = part[p];
          // Mostly the batch's liveFrom, as a worker's roll-up; sometimes another (a run loaded mid-batch).
          const liveFrom = rng.chance(0.05) ? compactTo - rng.pick([1000, HOUR]) : compactTo;
          if (rng.chance(0.03)) {
            // An event run (the next few events) loaded mid-stream: addRun with the batch's liveFrom, as a
            // worker's roll-up, or a stored run read back (addEncodedTile at EVENT_RUN_LEVEL: all kept).
            const run = part.slice(p, p + rng.int(1, 40));
            p += run.length - 1;
            const bytes = encodeRun(fast.agg, run);
            if (rng.chance(0.5)) {
              tiles.addRun(bytes, liveFrom);
              ref.addRun(bytes, liveFrom);
            } else {
              tiles.addEncodedTile(EVENT_RUN_LEVEL, 0, bytes);
              ref.addEncodedTile(EVENT_RUN_LEVEL, 0, bytes);
            }
            runs++;
            continue;
          }
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
    expect(runs).toBeGreaterThan(50);
  });
});

describe('TileSet batch delta: the cases where it once changed the bytes', () => {
  const windows = [win('1h', HOUR, MIN)];
  const T = Date.UTC(2024, 0, 10);

  /** Flushed writes (and finalized 1h values) after `steps` on a TileSet with `deltaFrom`. */
  function run(
    specs: { op: OpName; input: string; params?: OpParams }[],
    deltaFrom: number | undefined,
    steps: (tiles: TileSet) => void,
  ): unknown[] {
    const agg = createGroupAggregator(makeGroupBy(windows, specs));
    const tiles = new TileSet(agg, windows, deltaFrom === undefined ? {} : { deltaFrom });
    steps(tiles);
    const writes = flush(tiles, new Map());
    const irs = tiles.query(T + HOUR, windows[0]);
    return [writes, tiles.exactFrom, agg.ops.map((_, i) => agg.finalize(irs, i))];
  }

  /** One 1 s tile's events, one by one (the default deltaFrom opens a delta at the third). */
  const oneTile =
    (rows: Row[], ts = (i: number) => T + i, seq = (i: number) => i) =>
    (tiles: TileSet) =>
      rows.forEach((row, i) => tiles.add(row, ts(i), seq(i)));

  it('min over 5, 5, NaN, 1 (NaN sorts above every number, so the order of updates does not matter)', () => {
    const steps = oneTile([5, 5, NaN, 1].map((amount) => ({ amount })));
    const specs = [{ op: 'min' as const, input: 'amount' }];
    const [, , values] = run(specs, undefined, steps);
    expect(values).toEqual([1]);
    expect(run(specs, undefined, steps)).toEqual(run(specs, Infinity, steps));
  });

  it('top_k(1) over 0, 0, -0 and last_k(1) over equal (ts, seq): the later tie wins in merges and updates', () => {
    const specs = [
      { op: 'top_k' as const, input: 'amount', params: { k: 1 } },
      { op: 'last_k' as const, input: 'merchant', params: { k: 1 } },
    ];
    const rows = [
      { amount: 0, merchant: 'x' },
      { amount: 0, merchant: 'y' },
      { amount: -0, merchant: 'z' },
    ];
    const steps = oneTile(
      rows,
      () => T + 5,
      () => 9,
    );
    const [, , values] = run(specs, Infinity, steps);
    expect(values).toEqual([[-0], ['z']]);
    expect(run(specs, undefined, steps)).toEqual(run(specs, Infinity, steps));
  });

  it('int sum whose partial sums pass 2^53 (MAX, MAX, 1, 1, -MAX, -MAX) stores the same (s, c)', () => {
    const specs = [{ op: 'sum' as const, input: 'qty' }];
    const steps = oneTile([MAX, MAX, 1, 1, -MAX, -MAX].map((qty) => ({ qty })));
    const [, , values] = run(specs, Infinity, steps);
    expect(values).toEqual([2]);
    expect(run(specs, undefined, steps)).toEqual(run(specs, Infinity, steps));
  });

  it('deltaFrom 1 acts as 2: after a read or an eviction the next add of the same tile goes per event', () => {
    const specs = [
      { op: 'min' as const, input: 'amount' },
      { op: 'count' as const, input: 'amount' },
    ];
    const steps = (tiles: TileSet) => {
      tiles.add({ amount: 1 }, T, 0);
      tiles.add({ amount: 2 }, T + 1, 1);
      tiles.query(T + 2, windows[0]); // closes the delta
      tiles.add({ amount: 3 }, T + 2, 2);
      tiles.retain(T + 2 * HOUR); // evicts every tile
      tiles.add({ amount: 4 }, T + 3, 3); // the tile again, now with one event
    };
    for (const deltaFrom of [0, 1, 2]) {
      expect(run(specs, deltaFrom, steps), `deltaFrom ${deltaFrom}`).toEqual(run(specs, Infinity, steps));
    }
  });
});
