import type { GroupByDef, WindowDef } from '../define/types.ts';

/**
 * Window math (DESIGN §1). All times are integer epoch milliseconds.
 *
 * For size `W` and hop `h` (h divides W), a query at `t` covers `[windowStart(t), t)` with
 * `windowStart(t) = floor(t/h)*h - W`, which equals DESIGN's `floor((t-W)/h)*h` because `h | W`.
 */

export const SECOND_MS = 1000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/** Hop candidates for the default hop, coarsest first (DESIGN §1). */
const DEFAULT_HOPS = [DAY_MS, HOUR_MS, 5 * MINUTE_MS, MINUTE_MS, SECOND_MS] as const;

/** Standard tile levels below a group-by's largest hop; they make the window head `[B, t)` cheap to merge. */
export const STANDARD_FINE_LEVELS = [DAY_MS, HOUR_MS, 5 * MINUTE_MS, MINUTE_MS, SECOND_MS] as const;

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: SECOND_MS,
  m: MINUTE_MS,
  h: HOUR_MS,
  d: DAY_MS,
  w: 7 * DAY_MS,
};

/**
 * Parses a duration such as `'250ms'`, `'30s'`, `'10m'`, `'1h'`, `'7d'` or `'2w'` into milliseconds.
 *
 * @example
 * parseDuration('10m'); // 600000
 * parseDuration('1.5h'); // throws: a whole number followed by one unit is required
 */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!match) {
    const hint = text.trim() === 'lifetime' ? " ('lifetime' is a window, not a duration)" : '';
    throw new Error(
      `invalid duration '${text}'${hint}: write a whole number followed by one unit of ms, s, m, h, d or w, e.g. '30s', '10m', '1h', '7d'`,
    );
  }
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new Error(`invalid duration '${text}': must be a positive number of milliseconds below 2^53`);
  }
  return ms;
}

/**
 * The default hop for a window size: the largest of 1d, 1h, 5m, 1m, 1s with `size >= 12 * hop`; windows
 * shorter than 12s fall back to 1s (so a `'5s'` window hops by 1s; a size that 1s does not divide then needs
 * an explicit hop, which `checkHop` reports).
 *
 * @example
 * defaultHop(parseDuration('1h')); // 300000 (5m)
 * defaultHop(parseDuration('10m')); // 1000 (1s)
 */
export function defaultHop(sizeMs: number): number {
  for (const hop of DEFAULT_HOPS) if (sizeMs >= 12 * hop) return hop;
  return SECOND_MS;
}

/**
 * Validates a hop for a window size; returns null when valid, else a message saying what is wrong and how to
 * fix it (define/ turns it into a validation issue).
 *
 * @example
 * checkHop(3_600_000, 300_000); // null
 * checkHop(3_600_000, 420_000); // "hop 420000ms does not divide window 3600000ms: ..."
 */
export function checkHop(sizeMs: number, hopMs: number): string | null {
  if (!Number.isSafeInteger(hopMs) || hopMs <= 0)
    return `hop ${hopMs}ms must be a positive whole number of ms`;
  if (hopMs > sizeMs || sizeMs % hopMs !== 0) {
    return `hop ${hopMs}ms does not divide window ${sizeMs}ms: choose a hop that divides the window size, or omit it for the default (${defaultHop(sizeMs)}ms)`;
  }
  return null;
}

/**
 * The first millisecond a query at `t` covers (`-Infinity` for lifetime windows, `sizeMs === null`).
 *
 * @example
 * windowStart(7_250_000, 3_600_000, 300_000); // 6_900_000 - 3_600_000 = 3_300_000
 */
export function windowStart(t: number, sizeMs: number | null, hopMs: number): number {
  if (sizeMs === null) return -Infinity;
  return Math.floor(t / hopMs) * hopMs - sizeMs;
}

/** Whether an event at `ts` falls in the window queried at `t` (the DESIGN §1 condition, for tests and tools). */
export function inWindow(ts: number, t: number, sizeMs: number | null, hopMs: number): boolean {
  return ts < t && ts >= windowStart(t, sizeMs, hopMs);
}

/** Standard levels above a hop that long windows also keep, so their body merges few tiles. */
export const STANDARD_COARSE_LEVELS = [MINUTE_MS, 5 * MINUTE_MS, HOUR_MS, DAY_MS, 7 * DAY_MS] as const;

/**
 * The tile sizes a group-by with these windows keeps, sorted descending:
 * - every window's hop;
 * - the standard levels 1d, 1h, 5m, 1m, 1s below the largest hop (they make the head `[B, t)` cheap);
 * - for a window (W, h), the standard levels L of 1m, 5m, 1h, 1d, 7d with `h | L` and `W >= 4L`, so e.g. a
 *   7d window with 1h hops merges about 6 day tiles plus up to 46 hour tiles instead of 168 hour tiles
 *   (one more tile write per event, far fewer merges per fetch);
 * - 1 (exact event times, so the head is exact to the millisecond).
 *
 * @example
 * tileLevels([oneHour, oneDay]); // hops 5m and 1h → [3600000, 300000, 60000, 1000, 1]
 * tileLevels([sevenDays]); // hop 1h, plus 1d → [86400000, 3600000, 300000, 60000, 1000, 1]
 */
export function tileLevels(windows: readonly WindowDef[]): number[] {
  const levels = new Set<number>([1]);
  let largest = 1;
  for (const w of windows) {
    levels.add(w.hopMs);
    largest = Math.max(largest, w.hopMs);
    if (w.sizeMs === null) continue;
    for (const level of STANDARD_COARSE_LEVELS) {
      if (level > w.hopMs && level % w.hopMs === 0 && w.sizeMs >= 4 * level) levels.add(level);
    }
  }
  for (const level of STANDARD_FINE_LEVELS) if (level < largest) levels.add(level);
  return [...levels].sort((a, b) => b - a);
}

/** One distinct window of a group-by and the aggregations that use it (with the window's index in each). */
export interface WindowGroup {
  readonly window: WindowDef;
  readonly aggregations: readonly { readonly aggregationIndex: number; readonly windowIndex: number }[];
}

/**
 * The distinct windows (by size and hop) of a group-by, so callers merge tiles once per window and finalize
 * every aggregation that uses it.
 *
 * @example
 * for (const g of windowGroups(gb)) { const irs = tiles.query(t, g.window); ... }
 */
export function windowGroups(groupBy: GroupByDef): WindowGroup[] {
  const byKey = new Map<
    string,
    { window: WindowDef; aggregations: { aggregationIndex: number; windowIndex: number }[] }
  >();
  groupBy.aggregations.forEach((agg, aggregationIndex) => {
    agg.windows.forEach((window, windowIndex) => {
      const key = `${window.sizeMs}/${window.hopMs}`;
      let group = byKey.get(key);
      if (!group) byKey.set(key, (group = { window, aggregations: [] }));
      group.aggregations.push({ aggregationIndex, windowIndex });
    });
  });
  return [...byKey.values()];
}

/** All windows of a group-by, in aggregation then window order. */
export function allWindows(groupBy: GroupByDef): WindowDef[] {
  return groupBy.aggregations.flatMap((a) => a.windows);
}
