import type { Row, Scalar, WindowDef } from '../define/types.ts';
import { EVENT_RUN_LEVEL, forEachRunEvent } from './event-run.ts';
import type { GroupAggregator, IrRow } from './group-aggregator.ts';
import { LevelTiles } from './level-tiles.ts';
import { coverWindow, LIFETIME_PREFIX_LEVEL, retentionMs } from './tile-cover.ts';
import { tileLevels } from './window.ts';

/**
 * Tiles: pre-aggregated IR rows per entity key, from which any window of the group-by is merged.
 *
 * Invariants (numbered so code and tests can cite them):
 * 1. A tile of level L (ms) and start s holds, for every aggregation of the group-by, the merge of exactly
 *    the events with s <= ts < s + L; s is a multiple of L (floor division, also for negative times).
 * 2. Every event is added to one tile at every level, so each level alone covers all retained events
 *    (except tiles that retention evicts at once, invariant 11).
 *    Levels are `tileLevels(windows)`: each window's hop, the standard 1h/5m/1m/1s levels below the largest
 *    hop, and 1 ms, whose tiles hold exact event times so the window head is exact to the millisecond.
 * 3. A query at t for window (W, h) merges a disjoint cover of [floor(t/h)*h - W, t) (tile-cover.ts): the
 *    body with the coarsest aligned tiles whose level is a multiple of h, the head [floor(t/h)*h, t) with
 *    the coarsest aligned finer tiles. Disjoint + exact cover ⇒ the merge is the DESIGN §1 window; events at
 *    ts >= t are never read because every tile used ends at or before t.
 * 4. Windowing only calls `merge`/`init` of the group aggregator; it never looks inside an op, and since
 *    op results do not depend on merge order (AggOp contract 4), neither do query results.
 * 5. Lifetime windows read the prefix tile (level 0 in stores; `start` = its exclusive end E), which holds
 *    exactly the events with ts < E, plus the lifetime-hop tiles in [E, floor(t/h)*h), plus the head. The
 *    prefix only grows by absorbing whole evicted lifetime-hop tiles (or late events with ts < E), so
 *    lifetime stays exact while storage stays bounded. Queries need t >= E.
 * 6. Retention (`compact(N)`): a level keeps tiles with start >= N - retentionMs(level); every query at
 *    t >= N only reads such tiles (proof sketch in tile-cover.ts), so eviction never changes a result.
 * 7. `query` returns a fresh IR row: tiles are never mutated by queries (merge never mutates its second
 *    argument) and never aliased by the result.
 * 8. A tile holding a single event may be kept as that event (a `values` snapshot, ts, seq) instead of an
 *    IR row, and a tile loaded from a store may stay encoded (`addEncodedTile`); either is materialized
 *    (init + update, or decode) on its next event or when read out. Merging it into a
 *    window is `update` with that event, which equals merging its one-event IR row (AggOp contract 4).
 *    Most tiles of sparse keys (fine levels especially) hold one event, so this saves most allocations.
 * 9. `exactFrom` is the time from which queries are exact: the largest `compact(N)` point that removed a
 *    tile (-Infinity while nothing was ever removed), raised by `raiseExactFrom` for knowledge kept outside
 *    (a stored entity's point, events a writer dropped). Queries at t >= exactFrom equal the DESIGN §1
 *    window over every event added (invariant 6); earlier ones may miss evicted events, so callers must not
 *    present them as exact.
 * 10. Change tracking for writers: every tile carries STORED (the store holds it as is, or an older
 *    version of it) and DIRTY (changed since the last `flushChanges`) bits. Tiles loaded with
 *    `addEncodedTile`/`addTile` are STORED; `add` marks tiles DIRTY; eviction queues a delete for STORED
 *    tiles only, so a tile created and evicted between two flushes costs the store nothing. After
 *    `flushChanges` the store equals the tile set (given it held the STORED tiles before).
 * 11. `addRow(…, liveFrom)` and `addRun(…, liveFrom)` do not create (or update) a tile that `retain(liveFrom)`
 *    would evict, i.e. with start < liveFrom - retentionMs(level), except at the lifetime hop, whose
 *    evicted tiles fold into the prefix; they raise `exactFrom` to liveFrom instead, as that eviction would.
 *    So adding then retaining equals the eager `add` + `retain` for every query at t >= exactFrom.
 * 12. An event run (event-run.ts) loaded with `addEncodedTile(EVENT_RUN_LEVEL, …)` adds each of its events
 *    like `add` (its events are in no stored tile), so query results equal the stored tiles plus the run.
 * 13. Batch delta: once `deltaFrom` consecutive adds (same `liveFrom`) land in one tile of the delta level
 *    (the finest level above 1 ms), further events of that tile update one delta IR row instead of the
 *    tiles of the delta level and of every level it divides (they share that tile, so the same tiles, cuts
 *    and prefix apply to every event of the delta); the delta is merged into those tiles (`closeDelta`) when an
 *    event leaves the tile or changes `liveFrom`, and before any other method reads or changes the set, so
 *    every method sees the tiles invariants 1-12 describe. Only `GroupAggregator.deltaOps` take the delta
 *    (their merge gives exactly the updates' IR, ties included); `updatePerTile` ops (float and int sums,
 *    Welford, HyperLogLog) still update each covered tile per event. A delta opens only over tiles its
 *    run's first add made (`deltaFrom` >= 2). So tiles and their bytes equal those of per-event adds. A
 *    hot key (many events per second) pays one update per event plus a few merges per batch instead of one
 *    update per level; a sparse key never opens a delta.
 */

const STORED = 1;
const DIRTY = 2;

/**
 * Default `TileSetOptions.deltaFrom`: the third add in a row into one delta-level tile opens a delta
 * (invariant 13). A delta of one event would cost a merge per level instead of an update per level; a
 * tile that got two events in a row usually gets many (a hot key), one that gets one per batch never pays.
 */
const DELTA_FROM = 3;

/**
 * Delta rows (invariant 13) of closed deltas, per aggregator, for the next `openDelta`: a hot key opens a
 * delta per batch and tile, and `init` builds every aggregation's IR, including the `updatePerTile` ones a
 * delta never touches. A few suffice: a writer rolls up one tile set at a time.
 */
const spareDeltas = new WeakMap<GroupAggregator, IrRow[]>();
const MAX_SPARE_DELTAS = 4;

/** An empty delta row: a spare one with its `deltaOps` IRs made fresh (the others are never read), or new. */
function takeDeltaRow(agg: GroupAggregator): IrRow {
  const row = spareDeltas.get(agg)?.pop();
  if (row === undefined) return agg.init();
  const { ops, deltaOps } = agg;
  for (let k = 0; k < deltaOps.length; k++) row[deltaOps[k]] = ops[deltaOps[k]].init();
  return row;
}

/** Tuning of a TileSet (tests compare paths with it). */
export interface TileSetOptions {
  /**
   * The how-many-th consecutive add into one delta-level tile opens a delta (invariant 13; values below 2
   * act as 2; Infinity: never, every event updates every level).
   */
  readonly deltaFrom?: number;
}

/** Input values of the event being added, reused across calls (copied only when an event is kept). */
let scratch: (Scalar | null)[] = [];

/**
 * A one-event tile (invariant 8). One object is shared by every level the event opened a tile at, so its
 * store encoding is computed once and shared too (`bytes`, immutable once set).
 */
class PendingEvent {
  bytes: Uint8Array | null = null;
  constructor(
    readonly values: readonly (Scalar | null)[],
    readonly ts: number,
    readonly seq: number,
  ) {}
}

/** Per-windows constants, computed once per windows array (serving builds a TileSet per fetch). */
interface Layout {
  readonly levels: readonly number[];
  readonly retention: readonly number[];
  readonly levelIndex: ReadonlyMap<number, number>;
  readonly lifetimeHop: number | null;
  /**
   * Per level, the smallest event time whose tile `retain(cutsFor)` keeps (-Infinity at the lifetime hop,
   * which folds instead): `floor(ts / L) * L < liveFrom - retention` exactly when `ts < cuts[i]`. Shared by
   * every TileSet of these windows, since a writer rolls up a whole batch with one `liveFrom`.
   */
  readonly cuts: Float64Array;
  /** The smallest of `cuts`: an event before it skips every level. */
  cutAll: number;
  /** The `liveFrom` of `cuts` (NaN: none yet). */
  cutsFor: number;
  /** The delta level in ms (invariant 13; 0: none), the finest level above 1 ms. */
  readonly deltaLevel: number;
  /** Indices of the levels a delta covers: the delta level and the levels it divides. */
  readonly coveredIdx: Int32Array;
  /** Per level, 1 when a delta covers it. */
  readonly covered: Uint8Array;
}

/** Fills `layout.cuts` for `liveFrom` (invariant 11; see `Layout.cuts`). */
function setCuts(layout: Layout, liveFrom: number): void {
  const { levels, retention, cuts } = layout;
  let all = Infinity;
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    // The smallest multiple of `level` that is >= liveFrom - retention: tiles start at multiples of it.
    cuts[i] = level === layout.lifetimeHop ? -Infinity : Math.ceil((liveFrom - retention[i]) / level) * level;
    all = Math.min(all, cuts[i]); // NaN (a NaN liveFrom) stays NaN: nothing is skipped, as before
  }
  layout.cutAll = all;
  layout.cutsFor = liveFrom;
}

const layouts = new WeakMap<readonly WindowDef[], Layout>();

function layoutFor(windows: readonly WindowDef[], groupByName: string): Layout {
  let layout = layouts.get(windows);
  if (layout === undefined) {
    const levels = tileLevels(windows);
    const lifetimeHops = new Set(windows.filter((w) => w.sizeMs === null).map((w) => w.hopMs));
    if (lifetimeHops.size > 1) {
      throw new Error(
        `TileSet for '${groupByName}': lifetime windows use different hops (${[...lifetimeHops].join(', ')} ms); give all lifetime windows the same hop`,
      );
    }
    // Coarser levels that the delta level divides share its tile for every event of one delta tile.
    const deltaLevel = levels.length >= 2 && levels[levels.length - 1] === 1 ? levels[levels.length - 2] : 0;
    const covered = Uint8Array.from(levels, (level) => (deltaLevel > 0 && level % deltaLevel === 0 ? 1 : 0));
    layout = {
      deltaLevel,
      coveredIdx: Int32Array.from(levels.flatMap((_, i) => (covered[i] === 1 ? [i] : []))),
      covered,
      levels,
      retention: levels.map((level) => retentionMs(level, windows, levels)),
      levelIndex: new Map(levels.map((level, i) => [level, i])),
      lifetimeHop: lifetimeHops.size === 1 ? [...lifetimeHops][0] : null,
      cuts: new Float64Array(levels.length),
      cutAll: -Infinity,
      cutsFor: NaN,
    };
    layouts.set(windows, layout);
  }
  return layout;
}

/** A tile in memory: an IR row, a one-event tile (invariant 8) or still-encoded store bytes. */
type Slot = IrRow | PendingEvent | Uint8Array;

/** The address of one tile (`level` 0 is the lifetime prefix). */
export interface TileRef {
  readonly level: number;
  readonly start: number;
}

/** A tile with its IR row. */
export interface Tile extends TileRef {
  readonly irs: IrRow;
}

/** What `compact` removed or changed, for writers that mirror tiles into a store. */
export interface CompactResult {
  readonly removed: TileRef[];
  /** The prefix tile after compaction, when it changed (write it back at level 0). */
  readonly prefix: Tile | null;
  /** The prefix's previous address when `prefix` moved to a new end (delete it from the store). */
  readonly replacedPrefix: TileRef | null;
}

/**
 * The tiles of one entity key for one group-by, in memory. Stream workers and batch upload build them;
 * serving rebuilds one from stored tiles (`addTile`) and queries it.
 *
 * @example
 * const tiles = new TileSet(createGroupAggregator(cardSpend), allWindows(cardSpend));
 * tiles.add({ card_id: 'c1', amount: 12.5 }, ts, seq);
 * const irs = tiles.query(now, oneHour);
 * agg.finalize(irs, 0);
 */
export class TileSet {
  /** Tile levels in ms, descending, ending in 1. */
  readonly levels: readonly number[];
  private readonly tilesByLevel: LevelTiles<Slot>[];
  /** retentionMs per level, same order as `levels`. */
  private readonly retention: readonly number[];
  private readonly levelIndex: ReadonlyMap<number, number>;
  private readonly lifetimeHop: number | null;
  private readonly layout: Layout;
  private prefixEnd = -Infinity;
  private prefixIrs: IrRow | null = null;
  private exactFromMs = -Infinity;
  /** Per level, the smallest start marked DIRTY since the last flush (Infinity: none). */
  private readonly minDirty: Float64Array;
  /** [level, start, …] of STORED tiles evicted since the last flush. */
  private evictedStored: number[] = [];
  /** End of the prefix as stored (NaN: none stored) and whether it changed since the last flush. */
  private storedPrefixEnd = NaN;
  private prefixDirty = false;
  /** Invariant 13: the consecutive adds (same `liveFrom`) into one delta-level tile, by normal adds. */
  private readonly deltaFrom: number;
  private runStart = NaN;
  private runLiveFrom = NaN;
  private runCount = 0;
  /** The open delta (exact ops only), or null, with the tile, `liveFrom` and prefix side of its events. */
  private delta: IrRow | null = null;
  private deltaStart = NaN;
  private deltaLiveFrom = NaN;
  private deltaIntoPrefix = false;
  /** Per `layout.coveredIdx` entry, the tile row the open delta merges into (null: cut by retention). */
  private deltaRows: (IrRow | null)[] | null = null;
  /** `openDelta`'s tile index per `layout.coveredIdx` entry (scratch). */
  private deltaAt: Int32Array | null = null;

  constructor(
    readonly aggregator: GroupAggregator,
    readonly windows: readonly WindowDef[],
    options: TileSetOptions = {},
  ) {
    // At least 2: a run's first add makes the tiles its delta merges into, and `closeDelta` restarts the
    // count, so the first add after any other call (an eviction may have removed the tile) goes per event.
    this.deltaFrom = Math.max(2, options.deltaFrom ?? DELTA_FROM);
    const layout = layoutFor(windows, aggregator.groupBy.name);
    this.layout = layout;
    this.levels = layout.levels;
    this.retention = layout.retention;
    this.levelIndex = layout.levelIndex;
    this.lifetimeHop = layout.lifetimeHop;
    this.tilesByLevel = this.levels.map(() => new LevelTiles<Slot>());
    this.minDirty = new Float64Array(this.levels.length).fill(Infinity);
  }

  /** Adds one event to its tile at every level (invariant 2). `row` is not kept. */
  add(row: Row, ts: number, seq: number): void {
    this.addRow(row, ts, seq, -Infinity);
  }

  /**
   * `add`, skipping the tiles that `retain(liveFrom)` would evict at once (invariant 11): writers that roll
   * old events up call this and then `retain(liveFrom)`, and never build, encode or delete those tiles.
   *
   * @example
   * for (const e of events) tiles.addRow(e.row, e.ts, e.seq, watermark - exactHistoryMs);
   * tiles.retain(watermark - exactHistoryMs);
   */
  addRow(row: Row, ts: number, seq: number, liveFrom: number): void {
    // Read the row once: every level applies the same input values.
    const inputs = this.aggregator.inputs;
    const n = inputs.length;
    if (scratch.length < n) scratch = new Array(n).fill(null); // tagged elements (see event-run.ts)
    for (let k = 0; k < n; k++) {
      const input = inputs[k];
      scratch[k] = input === null ? true : (row[input] ?? null);
    }
    this.addValues(scratch, ts, seq, liveFrom, true);
  }

  /**
   * `addRow` from the event's input values (`GroupAggregator.values`), e.g. read once per batch for several
   * group-bys (event-run.ts `RunBatch`); `values` is copied if kept, so callers may reuse it.
   */
  addInputs(values: readonly (Scalar | null)[], ts: number, seq: number, liveFrom: number): void {
    this.addValues(values, ts, seq, liveFrom, true);
  }

  /**
   * Adds an event given as its input values (`GroupAggregator.values`); `copy` false hands `values` over
   * (kept as a one-event tile, never mutated). Skips tiles evicted by `retain(liveFrom)` (invariant 11).
   */
  private addValues(
    values: readonly (Scalar | null)[],
    ts: number,
    seq: number,
    liveFrom: number,
    copy: boolean,
  ): void {
    const layout = this.layout;
    if (layout.cutsFor !== liveFrom) setCuts(layout, liveFrom);
    if (ts < layout.cutAll) {
      // retain(liveFrom) would evict this event's tile at every level (e.g. an old event rolled up late).
      this.raiseExactFrom(liveFrom);
      return;
    }
    const agg = this.aggregator;
    const intoPrefix = ts < this.prefixEnd;
    // Invariant 13: levels an open delta covers are skipped below.
    let covered: Uint8Array | null = null;
    const d = layout.deltaLevel;
    if (d > 0) {
      const start = Math.floor(ts / d) * d;
      if (this.delta !== null) {
        if (
          start === this.deltaStart &&
          liveFrom === this.deltaLiveFrom &&
          intoPrefix === this.deltaIntoPrefix
        )
          covered = layout.covered;
        else this.closeDelta();
      }
      if (covered === null) {
        if (start !== this.runStart || liveFrom !== this.runLiveFrom) {
          this.runStart = start;
          this.runLiveFrom = liveFrom;
          this.runCount = 1;
        } else if (
          ++this.runCount >= this.deltaFrom &&
          agg.deltaOps.length > 0 &&
          this.openDelta(start, ts, liveFrom, intoPrefix)
        ) {
          covered = layout.covered;
        }
      }
      if (covered !== null) this.addToDelta(values, ts, seq);
    }
    let pending: PendingEvent | null = null;
    const { levels, tilesByLevel, minDirty, lifetimeHop } = this;
    const cuts = layout.cuts;
    let skipped = false;
    for (let i = 0; i < levels.length; i++) {
      if (covered !== null && covered[i] === 1) continue;
      const level = levels[i];
      if (intoPrefix && level === lifetimeHop) {
        agg.updateValues(this.prefixIrs as IrRow, values, ts, seq);
        this.prefixDirty = true;
        continue;
      }
      if (ts < cuts[i]) {
        // retain(liveFrom) would evict this tile (lifetime-hop tiles fold into the prefix instead).
        skipped = true;
        continue;
      }
      const start = Math.floor(ts / level) * level;
      if (start < minDirty[i]) minDirty[i] = start;
      const lt = tilesByLevel[i];
      const j = lt.indexOf(start);
      if (j < 0) {
        pending ??= new PendingEvent(copy ? values.slice(0, agg.inputs.length) : values, ts, seq);
        lt.insert(start, pending, DIRTY);
      } else {
        lt.flags[j] |= DIRTY;
        const slot = lt.slots[j];
        if (Array.isArray(slot)) agg.updateValues(slot, values, ts, seq);
        else {
          const irs = this.toRow(slot);
          agg.updateValues(irs, values, ts, seq);
          lt.slots[j] = irs;
        }
      }
    }
    if (skipped) this.raiseExactFrom(liveFrom);
  }

  /**
   * Opens a delta for events in the delta-level tile at `start` (invariant 13): marks the tiles it covers
   * dirty (materializing them) and keeps their rows, so each event costs no lookup. Returns false, changing
   * nothing, when a covered tile is missing: the run's earlier adds (at least one since any other call, as
   * `deltaFrom` >= 2) made every such tile, so this is only a guard; an empty row in its place would flush
   * as an IR row where per-event adds keep a one-event tile, so that event goes the per-event way instead.
   */
  private openDelta(start: number, ts: number, liveFrom: number, intoPrefix: boolean): boolean {
    const agg = this.aggregator;
    const { levels, tilesByLevel, minDirty, lifetimeHop } = this;
    const { cuts, coveredIdx } = this.layout;
    const at = (this.deltaAt ??= new Int32Array(coveredIdx.length));
    for (let k = 0; k < coveredIdx.length; k++) {
      const i = coveredIdx[k];
      const level = levels[i];
      // -1: the prefix takes the events; -2: retention cuts the tile (invariant 11).
      if (intoPrefix && level === lifetimeHop) at[k] = -1;
      else if (ts < cuts[i]) at[k] = -2;
      else if ((at[k] = tilesByLevel[i].indexOf(Math.floor(ts / level) * level)) < 0) return false;
    }
    const rows = (this.deltaRows ??= new Array<IrRow | null>(coveredIdx.length).fill(null));
    let skipped = false;
    for (let k = 0; k < coveredIdx.length; k++) {
      const i = coveredIdx[k];
      const j = at[k];
      if (j === -1) {
        rows[k] = this.prefixIrs as IrRow;
        this.prefixDirty = true;
      } else if (j === -2) {
        rows[k] = null;
        skipped = true;
      } else {
        const lt = tilesByLevel[i];
        if (lt.starts[j] < minDirty[i]) minDirty[i] = lt.starts[j];
        lt.flags[j] |= DIRTY;
        rows[k] = this.rowAt(lt, j);
      }
    }
    if (skipped) this.raiseExactFrom(liveFrom);
    this.delta = takeDeltaRow(agg);
    this.deltaStart = start;
    this.deltaLiveFrom = liveFrom;
    this.deltaIntoPrefix = intoPrefix;
    return true;
  }

  /** Adds an event to the open delta; `updatePerTile` ops go to the covered tiles directly. */
  private addToDelta(values: readonly (Scalar | null)[], ts: number, seq: number): void {
    const agg = this.aggregator;
    agg.updateValuesAt(this.delta as IrRow, values, ts, seq, agg.deltaOps);
    const perTile = agg.perTileOps;
    if (perTile.length === 0) return;
    const rows = this.deltaRows as (IrRow | null)[];
    for (let k = 0; k < rows.length; k++) {
      const row = rows[k];
      if (row !== null) agg.updateValuesAt(row, values, ts, seq, perTile);
    }
  }

  /**
   * Merges the open delta, if any, into the tiles it covers and ends the run of adds (invariant 13). Every
   * method other than the adds calls this first.
   */
  private closeDelta(): void {
    this.runCount = 0;
    const delta = this.delta;
    if (delta === null) return;
    this.delta = null;
    const agg = this.aggregator;
    const rows = this.deltaRows as (IrRow | null)[];
    for (let k = 0; k < rows.length; k++) {
      const row = rows[k];
      if (row !== null) agg.mergeAt(row, delta, agg.deltaOps);
      rows[k] = null;
    }
    // Merging never aliases the delta, so its row can serve the next delta of any tile set.
    const spare = spareDeltas.get(agg);
    if (spare === undefined) spareDeltas.set(agg, [delta]);
    else if (spare.length < MAX_SPARE_DELTAS) spare.push(delta);
  }

  /**
   * Adds every event of a stored event run (event-run.ts), skipping tiles `retain(liveFrom)` would evict
   * (invariant 11; -Infinity adds them all).
   *
   * @example
   * tiles.addRun(stored.bytes, watermark - exactHistoryMs);
   */
  addRun(bytes: Uint8Array, liveFrom: number): void {
    // `values` is reused per event, so a one-event tile copies it (copy: true).
    forEachRunEvent(this.aggregator, bytes, (values, ts, seq) =>
      this.addValues(values, ts, seq, liveFrom, true),
    );
  }

  /** Merges a stored tile in (level 0: the lifetime prefix with `start` = its end). `irs` is not kept. */
  addTile(level: number, start: number, irs: IrRow): void {
    this.closeDelta();
    if (level === LIFETIME_PREFIX_LEVEL) {
      this.absorbStoredPrefix(irs, start);
      return;
    }
    const lt = this.levelTiles(level, start);
    const j = lt.indexOf(start);
    if (j < 0) lt.insert(start, this.aggregator.clone(irs), STORED);
    else this.mergeStored(lt, j, level, irs);
  }

  /** Merges stored IRs into an existing tile, which then differs from what the store holds. */
  private mergeStored(lt: LevelTiles<Slot>, j: number, level: number, irs: IrRow): void {
    this.aggregator.merge(this.rowAt(lt, j), irs);
    lt.flags[j] |= DIRTY;
    const i = this.levelIndex.get(level)!;
    if (lt.starts[j] < this.minDirty[i]) this.minDirty[i] = lt.starts[j];
  }

  /** Loads a stored prefix tile (the store holds it at `end`). */
  private absorbStoredPrefix(irs: IrRow, end: number): void {
    const had = this.prefixIrs !== null;
    this.absorbIntoPrefix(irs, end);
    if (had) this.prefixDirty = true;
    else this.storedPrefixEnd = end;
  }

  /**
   * `addTile` from store bytes, decoding lazily: a tile is decoded only when a query, `get`, `tiles` or
   * `add` needs it, because a fetch reads every tile of a key but each window touches only some.
   * `bytes` must not be mutated afterwards.
   *
   * @example
   * for (const s of stored) tiles.addEncodedTile(s.level, s.start, s.bytes);
   */
  addEncodedTile(level: number, start: number, bytes: Uint8Array): void {
    if (level === EVENT_RUN_LEVEL) {
      this.addRun(bytes, -Infinity);
      return;
    }
    this.closeDelta();
    if (level === LIFETIME_PREFIX_LEVEL) {
      this.absorbStoredPrefix(this.aggregator.decode(bytes), start);
      return;
    }
    const lt = this.levelTiles(level, start);
    const j = lt.indexOf(start);
    if (j >= 0) {
      this.mergeStored(lt, j, level, this.aggregator.decode(bytes));
      return;
    }
    // Kept encoded: a writer rewrites most loaded tiles unchanged (or not at all), so decoding waits until
    // an event lands in the tile or a query reads it.
    lt.insert(start, bytes, STORED);
  }

  /**
   * The store encoding of one tile, or undefined when absent (level 0: the prefix when its end is
   * `start`). A one-event tile is written as the event itself (`GroupAggregator.encodeEvent`), without
   * building its IRs; prefer this over `agg.encode(tiles.get(...))` when writing tiles out.
   *
   * @example
   * const bytes = tiles.encodeTile(level, start); // undefined → delete the tile
   */
  encodeTile(level: number, start: number): Uint8Array | undefined {
    this.closeDelta();
    if (level === LIFETIME_PREFIX_LEVEL) {
      return this.prefixEnd === start && this.prefixIrs !== null
        ? this.aggregator.encode(this.prefixIrs)
        : undefined;
    }
    const lt = this.levelTiles(level);
    const j = lt.indexOf(start);
    if (j < 0) return undefined;
    return this.encodeSlot(lt.slots[j]);
  }

  private encodeSlot(slot: Slot): Uint8Array {
    if (slot instanceof PendingEvent) return (slot.bytes ??= this.aggregator.encodeEvent(slot));
    // Array.isArray is an intrinsic; `instanceof Uint8Array` looks up Symbol.hasInstance first.
    if (Array.isArray(slot)) return this.aggregator.encode(slot);
    return slot;
  }

  /** The merged IR row of `window` at query time `t` (invariants 3, 5, 7). */
  query(t: number, window: WindowDef): IrRow {
    this.closeDelta();
    const agg = this.aggregator;
    const out = agg.init();
    coverWindow(t, window, this.levels, (level, from, to) => {
      if (level === LIFETIME_PREFIX_LEVEL) {
        if (this.prefixIrs === null) return;
        if (this.prefixEnd > to) {
          throw new Error(
            `TileSet.query: lifetime query at ${t} is older than the compacted prefix (end ${this.prefixEnd}); lifetime values are only available for t >= ${this.prefixEnd}`,
          );
        }
        agg.merge(out, this.prefixIrs);
        return;
      }
      const lt = this.levelTiles(level);
      // Every stored start is aligned to its level, so the run's tiles are exactly the starts in [lo, to).
      const lo = level === this.lifetimeHop && this.prefixEnd > from ? this.prefixEnd : from;
      for (let j = lo === -Infinity ? 0 : lt.lowerBound(lo); j < lt.size && lt.starts[j] < to; j++) {
        const slot = lt.slots[j];
        if (Array.isArray(slot)) agg.merge(out, slot);
        else {
          const event = slot instanceof PendingEvent ? slot : this.eventOf(lt, j, slot);
          if (event !== null) agg.updateValues(out, event.values, event.ts, event.seq);
          else agg.merge(out, this.rowAt(lt, j));
        }
      }
    });
    return out;
  }

  /**
   * Removes tiles of `level` with start < minStart; for the lifetime hop level they are first folded into
   * the prefix (invariant 5). Returns the removed tile addresses.
   */
  evictBefore(level: number, minStart: number): TileRef[] {
    this.closeDelta();
    const removed: TileRef[] = [];
    this.levelTiles(level); // validates the level
    this.evictLevel(this.levelIndex.get(level) as number, minStart, removed);
    // Windows reading this level are exact again only once every tile they read starts at >= minStart.
    if (removed.length > 0) this.raiseExactFrom(minStart + this.retention[this.levelIndex.get(level)!]);
    return removed;
  }

  /** The time from which queries are exact (invariant 9). */
  get exactFrom(): number {
    return this.exactFromMs;
  }

  /**
   * Records that queries before `t` may be inexact (invariant 9), e.g. the point a stored entity was
   * compacted to, or the compaction point when an event of this entity was dropped as too late.
   *
   * @example
   * tiles.raiseExactFrom(storedExactFrom);
   */
  raiseExactFrom(t: number): void {
    if (t > this.exactFromMs) this.exactFromMs = t;
  }

  /**
   * Applies retention for newest event time `newestTs` at every level (invariant 6); queries at
   * t >= `newestTs` stay exact (invariant 9).
   */
  compact(newestTs: number): CompactResult {
    this.closeDelta();
    const before = this.prefixEnd;
    const removed: TileRef[] | null = [];
    let folded = false;
    for (let i = 0; i < this.levels.length; i++) {
      const n = removed.length;
      this.evictLevel(i, newestTs - this.retention[i], removed);
      if (removed.length > n && this.levels[i] === this.lifetimeHop) folded = true;
    }
    if (removed.length > 0) this.raiseExactFrom(newestTs);
    const changed = this.prefixIrs !== null && (before !== this.prefixEnd || folded);
    const replacedPrefix =
      changed && before !== this.prefixEnd && before !== -Infinity
        ? { level: LIFETIME_PREFIX_LEVEL, start: before }
        : null;
    return { removed, prefix: changed ? this.prefix() : null, replacedPrefix };
  }

  /**
   * `compact` without building its result (for writers that use `flushChanges`); returns whether any
   * tile was removed.
   *
   * @example
   * tiles.retain(watermark - exactHistoryMs);
   */
  retain(newestTs: number): boolean {
    this.closeDelta();
    let removed = false;
    for (let i = 0; i < this.levels.length; i++)
      if (this.evictLevel(i, newestTs - this.retention[i], null)) removed = true;
    if (removed) this.raiseExactFrom(newestTs);
    return removed;
  }

  /**
   * `retain(compactTo)`, then, while more than `maxTiles` tiles remain, moves the compaction point toward
   * `keepFrom` (halving the distance each time, never past it): a hot key keeps less exact history instead
   * of a value that grows with its event rate, since its fine-level tiles are in effect its events. Queries
   * at t >= the point reached stay exact (invariant 6) and `exactFrom` records it (invariant 9), so callers
   * choose `keepFrom` as the earliest time that must stay exact whatever the budget.
   *
   * @example
   * tiles.retainBounded(watermark - exactHistoryMs, watermark - maxFutureMs, 8192);
   */
  retainBounded(compactTo: number, keepFrom: number, maxTiles: number): void {
    this.retain(compactTo);
    let point = compactTo;
    while (point < keepFrom && this.size > maxTiles) {
      const gap = keepFrom - point;
      point = gap > 1000 ? keepFrom - Math.floor(gap / 2) : keepFrom;
      this.retain(point);
    }
  }

  /**
   * Reports every change since the last call (invariant 10) as store writes: deletes (`bytes` null) of
   * evicted stored tiles and of a moved prefix, and the prefix and every dirty tile with its encoding; a
   * delete of an address comes before a write of it.
   * Afterwards all tiles count as stored and clean. `visit` must not modify the tile set.
   *
   * @example
   * tiles.flushChanges((level, start, bytes) => writes.push({ groupBy, key, level, start, bytes }));
   */
  flushChanges(visit: (level: number, start: number, bytes: Uint8Array | null) => void): void {
    this.closeDelta();
    if (this.prefixIrs !== null && (this.prefixDirty || this.storedPrefixEnd !== this.prefixEnd)) {
      if (!Number.isNaN(this.storedPrefixEnd) && this.storedPrefixEnd !== this.prefixEnd)
        visit(LIFETIME_PREFIX_LEVEL, this.storedPrefixEnd, null);
      visit(LIFETIME_PREFIX_LEVEL, this.prefixEnd, this.aggregator.encode(this.prefixIrs));
      this.storedPrefixEnd = this.prefixEnd;
    }
    this.prefixDirty = false;
    // Level by level, finest (smallest) first, each level's deletes before its writes (an address evicted
    // then filled again is deleted, then written): usually ascending (level, start), the order packed
    // stores keep, so they need not sort.
    const ev = this.evictedStored;
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i];
      for (let k = 0; k < ev.length; k += 2) if (ev[k] === level) visit(level, ev[k + 1], null);
      const from = this.minDirty[i];
      if (from === Infinity) continue;
      this.minDirty[i] = Infinity;
      const lt = this.tilesByLevel[i];
      for (let j = lt.lowerBound(from); j < lt.size; j++) {
        if ((lt.flags[j] & DIRTY) === 0) continue;
        lt.flags[j] = STORED;
        visit(level, lt.starts[j], this.encodeSlot(lt.slots[j]));
      }
    }
    ev.length = 0;
  }

  private evictLevel(i: number, minStart: number, removed: TileRef[] | null): boolean {
    const lt = this.tilesByLevel[i];
    if (lt.size === 0 || lt.starts[0] >= minStart) return false;
    const level = this.levels[i];
    const fold = level === this.lifetimeHop;
    const end = Math.ceil(minStart / level) * level;
    lt.evictBefore(minStart, (start, slot, flags) => {
      if (fold) {
        this.absorbIntoPrefix(slot, end);
        this.prefixDirty = true;
      }
      if ((flags & STORED) !== 0) this.evictedStored.push(level, start);
      removed?.push({ level, start });
    });
    if (fold && this.prefixEnd < minStart && this.prefixIrs !== null) this.prefixEnd = end;
    return true;
  }

  /** The lifetime prefix tile (level 0, start = exclusive end), or null. */
  prefix(): Tile | null {
    this.closeDelta();
    return this.prefixIrs === null
      ? null
      : { level: LIFETIME_PREFIX_LEVEL, start: this.prefixEnd, irs: this.prefixIrs };
  }

  /** Every tile including the prefix (IR rows are live; clone before mutating). */
  *tiles(): IterableIterator<Tile> {
    this.closeDelta();
    const prefix = this.prefix();
    if (prefix) yield prefix;
    for (let i = 0; i < this.levels.length; i++) {
      const lt = this.tilesByLevel[i];
      for (let j = 0; j < lt.size; j++)
        yield { level: this.levels[i], start: lt.starts[j], irs: this.rowAt(lt, j) };
    }
  }

  /** Every tile address including the prefix, without materializing anything (pair with `encodeTile`). */
  refs(): TileRef[] {
    this.closeDelta();
    const out: TileRef[] = [];
    if (this.prefixIrs !== null) out.push({ level: LIFETIME_PREFIX_LEVEL, start: this.prefixEnd });
    for (let i = 0; i < this.levels.length; i++) {
      for (const start of this.tilesByLevel[i].starts) out.push({ level: this.levels[i], start });
    }
    return out;
  }

  /** The tile of `level` starting at `start`, if present (level 0: the prefix when its end is `start`). */
  get(level: number, start: number): IrRow | undefined {
    this.closeDelta();
    if (level === LIFETIME_PREFIX_LEVEL)
      return this.prefixEnd === start ? (this.prefixIrs ?? undefined) : undefined;
    const lt = this.levelTiles(level);
    const j = lt.indexOf(start);
    return j < 0 ? undefined : this.rowAt(lt, j);
  }

  /** Number of tiles (including the prefix). */
  get size(): number {
    this.closeDelta();
    let n = this.prefixIrs === null ? 0 : 1;
    for (const lt of this.tilesByLevel) n += lt.size;
    return n;
  }

  /** The one-event tile encoded in `bytes` (kept in slot `j`, with its bytes), or null for an IR row. */
  private eventOf(lt: LevelTiles<Slot>, j: number, bytes: Uint8Array): PendingEvent | null {
    const e = this.aggregator.readEvent(bytes);
    if (e === null) return null;
    const event = new PendingEvent(e.values, e.ts, e.seq);
    event.bytes = bytes;
    lt.slots[j] = event;
    return event;
  }

  /** A fresh IR row for a one-event or encoded slot. */
  private toRow(slot: PendingEvent | Uint8Array): IrRow {
    if (slot instanceof Uint8Array) return this.aggregator.decode(slot);
    const irs = this.aggregator.init();
    this.aggregator.updateValues(irs, slot.values, slot.ts, slot.seq);
    return irs;
  }

  /** The IR row of tile `j`, materializing (and storing) it so callers may keep the row. */
  private rowAt(lt: LevelTiles<Slot>, j: number): IrRow {
    const slot = lt.slots[j];
    if (Array.isArray(slot)) return slot;
    const irs = this.toRow(slot);
    lt.slots[j] = irs;
    return irs;
  }

  /** The tiles of `level`; with `start`, also checks that the address is aligned. */
  private levelTiles(level: number, start?: number): LevelTiles<Slot> {
    const i = this.levelIndex.get(level);
    if (i === undefined) {
      throw new Error(
        `TileSet for '${this.aggregator.groupBy.name}': no tile level ${level} ms (levels: ${this.levels.join(', ')}); the stored tiles were written for other windows, re-upload them`,
      );
    }
    if (start !== undefined && start % level !== 0) {
      throw new Error(
        `TileSet: tile start ${start} is not aligned to level ${level} ms; the tile address is corrupt`,
      );
    }
    return this.tilesByLevel[i];
  }

  private absorbIntoPrefix(slot: Slot, end: number): void {
    if (this.lifetimeHop === null) {
      throw new Error(
        `TileSet for '${this.aggregator.groupBy.name}': a lifetime prefix tile exists but the group-by has no lifetime window; re-upload its tiles`,
      );
    }
    if (this.prefixIrs === null) this.prefixIrs = this.aggregator.init();
    const agg = this.aggregator;
    if (Array.isArray(slot)) agg.merge(this.prefixIrs, slot);
    else if (slot instanceof PendingEvent) agg.updateValues(this.prefixIrs, slot.values, slot.ts, slot.seq);
    else agg.merge(this.prefixIrs, agg.decode(slot));
    if (end > this.prefixEnd) this.prefixEnd = end;
  }
}
