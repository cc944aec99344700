import { defaultHop, parseDuration } from '../aggregate/window.ts';
import type { WindowInput } from './aggregation-spec.ts';
import type { IssueCollector } from './issues.ts';
import type { WindowDef } from './types.ts';

/** Lifetime windows keep daily tiles: the hop only sets tile granularity, the window is all of `ts < t`. */
export const LIFETIME_HOP_MS = 86_400_000;

const WINDOW_EXAMPLE = "use a duration like '30s', '10m', '1h', '7d', or 'lifetime'";

/** The label a window input appears under in feature names (`'1h'`, `'lifetime'`). */
export function windowLabel(input: WindowInput): string {
  return typeof input === 'string' ? input : input?.size;
}

function tryParse(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return parseDuration(text);
  } catch {
    return undefined; // the issue below says what a valid duration looks like
  }
}

/** @internal Parses one window input into a `WindowDef`, recording issues on failure. */
export function normalizeWindow(
  input: WindowInput,
  c: IssueCollector,
  path: readonly (string | number)[],
): WindowDef | undefined {
  const size = typeof input === 'string' ? input : input?.size;
  const hop = typeof input === 'object' && input !== null ? input.hop : undefined;
  if (size === 'lifetime') {
    if (hop !== undefined) {
      c.add(
        'bad_hop',
        [...path, 'hop'],
        'a lifetime window has no hop',
        'remove hop from the lifetime window',
      );
      return undefined;
    }
    return { kind: 'window', label: 'lifetime', sizeMs: null, hopMs: LIFETIME_HOP_MS };
  }
  const sizeMs = tryParse(size);
  if (sizeMs === undefined) {
    c.add(
      'bad_window',
      typeof input === 'string' ? path : [...path, 'size'],
      `window '${String(size)}' is not a valid duration`,
      WINDOW_EXAMPLE,
    );
    return undefined;
  }
  const hopMs = hop === undefined ? defaultHop(sizeMs) : tryParse(hop);
  if (hopMs === undefined) {
    c.add(
      'bad_hop',
      [...path, 'hop'],
      `hop '${String(hop)}' is not a valid duration`,
      "use a duration like '1m' or '1h'",
    );
    return undefined;
  }
  if (hopMs > sizeMs || sizeMs % hopMs !== 0) {
    const what = hop === undefined ? `the default hop ${formatMs(hopMs)}` : `hop '${hop}'`;
    c.add(
      'bad_hop',
      hop === undefined ? path : [...path, 'hop'],
      `${what} does not divide window '${size}'`,
      `set a hop that divides ${size}: { size: '${size}', hop: '...' }`,
    );
    return undefined;
  }
  return { kind: 'window', label: size, sizeMs, hopMs };
}

/** Formats ms as the largest exact unit, e.g. 3_600_000 → '1h'. */
export function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
