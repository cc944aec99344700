import type { WindowDef } from '../define/types.ts';

/**
 * Which tiles answer a window query: the pure planning half of tiles.ts, shared by the in-memory TileSet
 * and by stores that fetch tiles by address. See the invariants at the top of tiles.ts.
 */

/** Store level of the compacted lifetime prefix tile (its `start` is the prefix's exclusive end). */
export const LIFETIME_PREFIX_LEVEL = 0;

/**
 * Receives a run of same-level tiles: starts `from, from + level, …` below `to`. `from` is `-Infinity` for
 * "every tile of this level below `to`" (lifetime bodies); level 0 is the lifetime prefix tile, usable
 * when its end is `<= to`.
 */
export type CoverVisitor = (level: number, from: number, to: number) => void;

/**
 * Greedy cover of [p, limit) by the coarsest aligned tiles among `allowed` (sorted descending; must contain
 * a level that fits at every step). Consecutive tiles of one level are reported as one run.
 */
function coverRange(p: number, limit: number, allowed: readonly number[], visit: CoverVisitor): void {
  while (p < limit) {
    let li = -1;
    for (let i = 0; i < allowed.length; i++) {
      const level = allowed[i];
      if (p % level === 0 && p + level <= limit) {
        li = i;
        break;
      }
    }
    if (li < 0) {
      throw new Error(
        `tile cover: no tile level among [${allowed.join(', ')}] ms fits at ${p} (limit ${limit}); the tile set was built for other windows, rebuild it with tileLevels() of the group-by's windows`,
      );
    }
    const level = allowed[li];
    let end = p + Math.floor((limit - p) / level) * level;
    // Stop the run where a coarser level becomes aligned and fits, as the tile-by-tile greedy would.
    for (let i = 0; i < li; i++) {
      const coarse = allowed[i];
      if (coarse % level === 0) {
        const aligned = Math.ceil(p / coarse) * coarse;
        if (aligned + coarse <= limit && aligned < end) end = aligned;
      } else {
        for (let q = p + level; q < end; q += level) {
          if (q % coarse === 0 && q + coarse <= limit) {
            end = q;
            break;
          }
        }
      }
    }
    visit(level, p, end);
    p = end;
  }
}

/**
 * Reports the tiles whose merge is exactly the window `[floor(t/h)*h - W, t)` (DESIGN §1), given the
 * levels the tile set keeps (`tileLevels`, descending, ending in 1):
 * 1. body `[B - W, B)`, `B = floor(t/h)*h`: coarsest aligned tiles among levels that are multiples of h;
 * 2. head `[B, t)`: coarsest aligned tiles among levels finer than h (1 ms last, so it is exact);
 * lifetime: the prefix tile, every h-tile below B, then the head.
 *
 * @example
 * coverWindow(t, oneHourWindow, [3_600_000, 300_000, 60_000, 1000, 1], (level, from, to) => { ... });
 */
export function coverWindow(
  t: number,
  window: WindowDef,
  levels: readonly number[],
  visit: CoverVisitor,
): void {
  const h = window.hopMs;
  const b = Math.floor(t / h) * h;
  const allowed = allowedLevels(levels, h);
  if (window.sizeMs === null) {
    visit(LIFETIME_PREFIX_LEVEL, -Infinity, b);
    visit(h, -Infinity, b);
  } else {
    coverRange(b - window.sizeMs, b, allowed.body, visit);
  }
  coverRange(b, t, allowed.head, visit);
}

/** Body levels (multiples of h) and head levels (finer than h), memoized per levels array and hop. */
const allowedCache = new WeakMap<readonly number[], Map<number, { body: number[]; head: number[] }>>();

function allowedLevels(levels: readonly number[], h: number): { body: number[]; head: number[] } {
  let byHop = allowedCache.get(levels);
  if (byHop === undefined) allowedCache.set(levels, (byHop = new Map()));
  let allowed = byHop.get(h);
  if (allowed === undefined) {
    allowed = { body: levels.filter((l) => l % h === 0), head: levels.filter((l) => l < h) };
    byHop.set(h, allowed);
  }
  return allowed;
}

/**
 * How far back (ms before the newest event time N) tiles of `level` must be kept so that every query at
 * t >= N stays exact; tiles with `start < N - retentionMs` may be evicted (for the lifetime level they are
 * folded into the prefix tile instead). Per window (W, h) using the level:
 * - body level (a multiple of h): W + h, since the body starts after t - W - h;
 * - head level (finer than h): the smallest coarser head level L' that divides g = gcd(h, all head levels
 *   coarser than `level`), else h. The greedy's positions are multiples of g, so L' is aligned wherever
 *   `level` is first used and was skipped only because it overran t: `level` tiles start after t - L';
 * - lifetime: h for its own level (everything older lives in the prefix), head levels as above.
 * The result is the maximum over windows (at least `level`).
 *
 * @example
 * retentionMs(300_000, [oneHour], tileLevels([oneHour])); // 3_900_000 (1h + 5m)
 * retentionMs(1, [oneHour], tileLevels([oneHour])); // 1000: ms tiles only back to the current second
 */
export function retentionMs(level: number, windows: readonly WindowDef[], levels: readonly number[]): number {
  let keep = level;
  for (const w of windows) {
    const h = w.hopMs;
    if (level % h === 0) {
      if (w.sizeMs === null) keep = Math.max(keep, level === h ? h : 0);
      else keep = Math.max(keep, w.sizeMs + h);
    } else if (level < h) {
      // Greedy positions stay multiples of g = gcd(h, coarser head levels), so every head level dividing g
      // is aligned wherever `level` is chosen, and was skipped only because it overran t.
      let g = h;
      for (const l of levels) if (l > level && l < h) g = gcd(g, l);
      let bound = h;
      for (const l of levels) if (l > level && l < bound && g % l === 0) bound = l;
      keep = Math.max(keep, bound);
    }
  }
  return keep;
}

/**
 * Events older than `newest - horizon` can no longer change any query at t >= newest: callers count them as
 * late beyond retention. Infinity when a lifetime window exists (old events fold into the prefix).
 *
 * @example
 * retentionHorizonMs([oneHour, sevenDays]); // 7d + 1h
 */
export function retentionHorizonMs(windows: readonly WindowDef[]): number {
  let horizon = 0;
  for (const w of windows) horizon = Math.max(horizon, w.sizeMs === null ? Infinity : w.sizeMs + w.hopMs);
  return horizon;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
