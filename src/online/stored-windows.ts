import { EVENT_RUN_LEVEL, forEachRunEvent } from '../aggregate/event-run.ts';
import type { GroupAggregator, IrRow } from '../aggregate/group-aggregator.ts';
import { coverWindow, LIFETIME_PREFIX_LEVEL } from '../aggregate/tile-cover.ts';
import { tileLevels, windowStart, type WindowGroup } from '../aggregate/window.ts';
import type { WindowDef } from '../define/types.ts';
import type { TileColumns } from './tile-pack.ts';

/**
 * Window IRs straight from one entity's stored tiles, for serving: no TileSet is built per entity.
 *
 * A window's tile cover (aggregate/tile-cover.ts) depends only on the query time, not on the entity, so it
 * is planned once per `t` and reused for every entity of a request (a 100-row fetch asks ~1000 entities the
 * same question). Each stored tile is then visited once and merged into the windows whose cover holds it.
 *
 * Invariants:
 * 1. The result equals loading the tiles into a `TileSet` (`addEncodedTile`) and calling `query` for each
 *    window (tiles.ts invariants 3, 5, 8): a tile joins a window iff its (level, start) lies in a run of
 *    that window's cover; runs at the lifetime hop begin at the prefix end; the prefix (level 0) joins
 *    lifetime windows when its end is at or before `floor(t/h)*h`, and a later end is an error, as there.
 * 2. Each tile is read only when some window covers it, and merged into those windows straight from its
 *    bytes (`GroupAggregator.mergeEncoded` of its range in the entity's value): no IR row, event object or
 *    byte view per tile.
 * 3. Tiles at the same address (a store may return deltas of one tile) are all merged, like `addEncodedTile`
 *    merges them; a level the windows do not use, or a misaligned start, is an error naming the fix.
 * 4. Stored bytes are only read. The returned IR rows belong to the reader and are emptied by its next
 *    `windows` call (reusing them saved most of a fetch's IR garbage): finalize them before calling again.
 *    Only rows something was merged into (`touched`) are reset; the rest are still empty, and a caller may
 *    use known empty-row values for them instead of finalizing (a 100-row fetch: most short windows).
 *    Finalized values stay valid, since only ops whose values are numbers reuse IR storage (`AggOp.reset`).
 * 5. The entity's event run (level `EVENT_RUN_LEVEL`, event-run.ts) holds events that are in no tile: each
 *    joins every window with windowStart(t) <= ts < t (lifetime: ts < t, even before the prefix end).
 */
export class StoredWindowReader {
  private readonly levelList: readonly number[];
  /** `levelList` as a typed array: a linear scan of a few levels beats a Set of doubles. */
  private readonly levelArray: Float64Array;
  private readonly lifetimeHop: number | null;
  /** Query time the runs below were planned for. */
  private plannedAt = NaN;
  /**
   * Per level (index into `levelList`): (window group, from, to) triples, the runs of that level in the
   * window groups' covers at `plannedAt`, so a tile is matched against its own level's runs only. The
   * arrays are reused by every plan (a plan per fetch, as `t` is usually now); `byLevelLength` ends them.
   */
  private byLevel: Float64Array[];
  private readonly byLevelLength: Int32Array;
  /** The window group `plan` is covering, for `addRun`. */
  private planning = 0;
  private readonly addRun: (level: number, from: number, to: number) => void;
  /** Per window group: the body end `floor(t/h)*h` for lifetime windows, NaN otherwise. */
  private lifetimeEnd: Float64Array;
  /** Per window group: the first ms the window covers at `plannedAt` (-Infinity for lifetime). */
  private windowFrom: Float64Array;
  /** The windows the tile being read joins (scratch for `mergeEncoded`). */
  private readonly targets: IrRow[];
  /** The IR row per window group that `windows` fills and returns (invariant 4). */
  private readonly rows: IrRow[];
  /**
   * Per window group: 1 when its row may hold merged data, 0 when it is still empty (as `init` made it or
   * the last reset left it). Set before a merge, so a throw mid-merge leaves it set; only set rows are reset.
   */
  readonly touched: Uint8Array;

  constructor(
    private readonly agg: GroupAggregator,
    windows: readonly WindowDef[],
    private readonly groups: readonly WindowGroup[],
  ) {
    this.levelList = tileLevels(windows);
    this.levelArray = Float64Array.from(this.levelList);
    const hops = new Set(windows.filter((w) => w.sizeMs === null).map((w) => w.hopMs));
    if (hops.size > 1) {
      throw new Error(
        `group-by '${agg.groupBy.name}': lifetime windows use different hops (${[...hops].join(', ')} ms); give all lifetime windows the same hop`,
      );
    }
    this.lifetimeHop = hops.size === 1 ? [...hops][0]! : null;
    this.lifetimeEnd = new Float64Array(groups.length);
    this.windowFrom = new Float64Array(groups.length);
    this.targets = new Array(groups.length).fill(null);
    this.rows = groups.map(() => agg.init());
    this.touched = new Uint8Array(groups.length);
    this.byLevel = this.levelList.map(() => new Float64Array(3 * groups.length));
    this.byLevelLength = new Int32Array(this.levelList.length);
    this.addRun = (level, from, to) => {
      const gi = this.planning;
      if (level === LIFETIME_PREFIX_LEVEL) {
        this.lifetimeEnd[gi] = to;
        return;
      }
      const li = this.levelList.indexOf(level);
      let runs = this.byLevel[li]!;
      const at = this.byLevelLength[li]!;
      if (at + 3 > runs.length) {
        const grown = new Float64Array(2 * runs.length + 3);
        grown.set(runs);
        this.byLevel[li] = runs = grown;
      }
      runs[at] = gi;
      runs[at + 1] = from;
      runs[at + 2] = to;
      this.byLevelLength[li] = at + 3;
    };
  }

  private plan(t: number): void {
    this.plannedAt = NaN; // until complete: a throw must not leave a half-written plan in use
    this.byLevelLength.fill(0);
    for (let gi = 0; gi < this.groups.length; gi++) {
      const { window } = this.groups[gi]!;
      this.lifetimeEnd[gi] = NaN;
      this.windowFrom[gi] = windowStart(t, window.sizeMs, window.hopMs);
      this.planning = gi;
      coverWindow(t, window, this.levelList, this.addRun);
    }
    this.plannedAt = t;
  }

  /**
   * The merged IR row of every window group at `t` from entries `first..` of one entity's stored tiles
   * (sorted or not), in `groups` order; valid until the next call (invariant 4).
   *
   * @example
   * const columns = new TileColumns().fromTiles(stored);
   * const irs = reader.windows(columns, markerCount(columns), t);
   * agg.finalize(irs[0], 0); // first aggregation over the first window group
   */
  windows(stored: TileColumns, first: number, t: number): readonly IrRow[] {
    if (t !== this.plannedAt) this.plan(t);
    const { agg, lifetimeHop, levelArray, byLevel, byLevelLength } = this;
    const levels = stored.level;
    const starts = stored.start;
    const length = stored.length;
    const n = this.groups.length;
    const out = this.rows;
    const touched = this.touched;
    for (let g = 0; g < n; g++) {
      if (touched[g] === 0) continue;
      agg.reset(out[g]!);
      touched[g] = 0;
    }
    const targets = this.targets;

    let prefixEnd = -Infinity;
    for (let i = first; i < length; i++) {
      if (levels[i] === LIFETIME_PREFIX_LEVEL && starts[i]! > prefixEnd) prefixEnd = starts[i]!;
    }
    if (prefixEnd !== -Infinity) this.mergePrefix(stored, first, prefixEnd, out);

    // Runs of the current tile's level; tiles come sorted by level, so this changes about once per level.
    let runLevel = NaN;
    let runIndex = levelArray.length;
    let runs = byLevel[0]!;
    let runsLength = 0;
    for (let i = first; i < length; i++) {
      const level = levels[i]!;
      if (level === LIFETIME_PREFIX_LEVEL) continue;
      if (level === EVENT_RUN_LEVEL) {
        this.mergeRun(stored.bytes(i), t, out);
        continue;
      }
      if (level !== runLevel) {
        // Tiles come finest level first (packed by level, start) and levels coarsest first, so the next
        // level is usually just before the last one: search down from there, then the rest.
        let li = runIndex - 1;
        while (li >= 0 && levelArray[li] !== level) li--;
        if (li < 0) for (li = levelArray.length - 1; li >= runIndex && levelArray[li] !== level; li--);
        if (li < 0 || levelArray[li] !== level) {
          throw new Error(
            `group-by '${agg.groupBy.name}': stored tile level ${level} ms is not one of its levels (${this.levelList.join(', ')}); the stored tiles were written for other windows, re-upload them`,
          );
        }
        runLevel = level;
        runIndex = li;
        runs = byLevel[li]!;
        runsLength = byLevelLength[li]!;
      }
      const start = starts[i]!;
      // `start % level` on epoch-ms doubles is a slow fmod call; the quotient of an aligned start is an exact
      // integer (both are integers below 2^53), and a misaligned one is at least 1/level off one.
      const q = start / level;
      if (q !== Math.floor(q)) {
        throw new Error(
          `group-by '${agg.groupBy.name}': stored tile start ${start} is not aligned to level ${level} ms; the tile address is corrupt`,
        );
      }
      // A window group's runs are disjoint, so at most one triple per group matches.
      let count = 0;
      for (let k = 0; k < runsLength; k += 3) {
        const from = level === lifetimeHop && prefixEnd > runs[k + 1]! ? prefixEnd : runs[k + 1]!;
        if (start < from || start >= runs[k + 2]!) continue;
        touched[runs[k]!] = 1;
        targets[count++] = out[runs[k]!]!;
      }
      if (count > 0) agg.mergeEncoded(stored.source(i), targets, count, stored.from[i], stored.to[i]);
    }
    return out;
  }

  /** Applies each event of a run to the windows that contain it (invariant 5). */
  private mergeRun(bytes: Uint8Array, t: number, out: IrRow[]): void {
    const { agg, windowFrom, touched } = this;
    forEachRunEvent(agg, bytes, (values, ts, seq) => {
      if (ts >= t) return;
      for (let g = 0; g < out.length; g++)
        if (ts >= windowFrom[g]!) {
          touched[g] = 1;
          agg.updateValues(out[g]!, values, ts, seq);
        }
    });
  }

  /** Merges every prefix tile into the lifetime windows (tiles.ts invariant 5). */
  private mergePrefix(stored: TileColumns, first: number, prefixEnd: number, out: IrRow[]): void {
    const { agg } = this;
    if (this.lifetimeHop === null) {
      throw new Error(
        `group-by '${agg.groupBy.name}': a lifetime prefix tile is stored but the group-by has no lifetime window; re-upload its tiles`,
      );
    }
    for (let g = 0; g < out.length; g++) {
      const end = this.lifetimeEnd[g]!;
      if (!Number.isNaN(end) && prefixEnd > end) {
        throw new Error(
          `lifetime query at ${this.plannedAt} is older than the compacted prefix (end ${prefixEnd}); lifetime values are only available for t >= ${prefixEnd}`,
        );
      }
    }
    const targets = this.targets;
    let count = 0;
    for (let g = 0; g < out.length; g++) {
      if (Number.isNaN(this.lifetimeEnd[g]!)) continue;
      this.touched[g] = 1;
      targets[count++] = out[g]!;
    }
    for (let i = first; i < stored.length; i++) {
      if (stored.level[i] === LIFETIME_PREFIX_LEVEL)
        agg.mergeEncoded(stored.source(i), targets, count, stored.from[i], stored.to[i]);
    }
  }
}
