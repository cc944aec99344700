/** Shared definitions and helpers for the online tests (a small "events" source and two group-bys). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { avg, col, count, eventSource, groupBy, last, max, sum, uniqueCount } from '../../src/index.ts';
import type { Row } from '../../src/define/types.ts';
import { rng } from '../support/rng.ts';
export { rng };

export const events = eventSource({
  name: 'events',
  path: 'data/*.jsonl',
  timeColumn: 'ts',
  schema: {
    user: col.string(),
    kind: col.string().nullable(),
    amount: col.float().nullable(),
    ts: col.timestamp(),
  },
  derive: {
    cents: { type: col.int().nullable(), fn: (r) => (r.amount === null ? null : Math.round(r.amount * 100)) },
  },
  filter: (r) => r.kind !== 'ignored',
});

/**
 * Keyed by user, with lifetime windows (no retention horizon). `name` lets a test define the same
 * computation under another name (equal store id).
 */
export const userStats = (name: string) =>
  groupBy({
    name,
    source: events,
    keys: ['user'],
    aggregations: [
      count({ windows: ['10m', '1h', '1d', 'lifetime'] }),
      sum('amount', { windows: ['1h', '1d'] }),
      avg('cents', { windows: ['1h'] }),
      max('amount', { windows: ['10m', { size: '1d', hop: '10m' }] }),
      last('amount', { windows: ['lifetime', '1h'] }),
      uniqueCount('kind', { windows: ['1d'] }),
    ],
  });

export const byUser = userStats('by_user');

/** Keyed by (user, kind), short windows only: old events are late beyond retention. */
export const byUserKind = groupBy({
  name: 'by_user_kind',
  source: events,
  keys: ['user', 'kind'],
  aggregations: [count({ windows: ['10m', '1h'] }), sum('amount', { windows: ['1h'] })],
});

export const groupBys = [byUser, byUserKind];

export const T0 = Date.UTC(2024, 0, 1);

/**
 * Random events, mostly in time order with jitter, ties in ts, nulls, filtered rows, and a few events
 * days late (beyond by_user_kind's retention).
 */
export function randomEvents(seed: number, n: number, users = 12): Row[] {
  const r = rng(seed);
  const out: Row[] = [];
  let clock = T0;
  for (let i = 0; i < n; i++) {
    clock += Math.floor(r() * 120_000);
    let ts = clock - Math.floor(r() * 300_000); // up to 5 minutes late
    if (r() < 0.01) ts = clock - 3 * 86_400_000; // far too late for short windows
    const tie = r() < 0.05 && out.length > 0; // same entity and ts as the previous event
    if (tie) ts = out[out.length - 1].ts as number;
    const kinds = ['a', 'b', 'c', null, 'ignored'];
    out.push({
      user: tie ? out[out.length - 1].user : `u${Math.floor(r() * users)}`,
      kind: kinds[Math.floor(r() * kinds.length)],
      amount: r() < 0.1 ? null : Math.round(r() * 100000) / 100,
      ts,
    });
  }
  return out;
}

export function tempDir(prefix = 'tessera-online-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Independent naive oracle for the fixtures' group-bys (DESIGN §1), events in log order (seq = index). */
export function naive(all: readonly Row[], groupByName: string, key: string, t: number): unknown[][] {
  const inWin = (ts: number, size: number | null, hop: number) =>
    ts < t && (size === null || ts >= Math.floor(t / hop) * hop - size);
  const M = 60_000;
  const H = 3_600_000;
  const D = 86_400_000;
  type Ev = { user: string; kind: string | null; amount: number | null; ts: number; seq: number };
  const evs = all
    .map((e, seq) => ({ ...e, seq }) as Ev)
    .filter((e) => e.kind !== 'ignored')
    .filter((e) =>
      groupByName === 'by_user' ? e.user === key : e.kind !== null && `${e.user}\u001f${e.kind}` === key,
    );
  const win = (size: number | null, hop: number) => evs.filter((e) => inWin(e.ts as number, size, hop));
  const nums = (xs: typeof evs, c: 'amount' | 'cents') =>
    xs
      .map((e) =>
        c === 'cents' ? (e.amount === null ? null : Math.round((e.amount as number) * 100)) : e.amount,
      )
      .filter((v): v is number => v !== null);
  const sumOf = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) : null);
  const lastOf = (xs: typeof evs) => {
    const v = xs
      .filter((e) => e.amount !== null)
      .sort((a, b) => (a.ts as number) - (b.ts as number) || a.seq - b.seq);
    return v.length ? v[v.length - 1].amount : null;
  };
  if (groupByName === 'by_user') {
    const w10m = win(10 * M, 1000);
    const w1h = win(H, 5 * M);
    const w1d = win(D, H);
    const w1d10 = win(D, 10 * M);
    const life = win(null, D);
    const avgOf = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
    const maxOf = (v: number[]) => (v.length ? Math.max(...v) : null);
    return [
      [w10m.length, w1h.length, w1d.length, life.length],
      [sumOf(nums(w1h, 'amount')), sumOf(nums(w1d, 'amount'))],
      [avgOf(nums(w1h, 'cents'))],
      [maxOf(nums(w10m, 'amount')), maxOf(nums(w1d10, 'amount'))],
      [lastOf(life), lastOf(w1h)],
      [new Set(w1d.map((e) => e.kind).filter((k) => k !== null)).size],
    ];
  }
  const w10m = win(10 * M, 1000);
  const w1h = win(H, 5 * M);
  return [[w10m.length, w1h.length], [sumOf(nums(w1h, 'amount'))]];
}

/** Deep equality with floats compared to a relative 1e-9 (DESIGN §1). */
export function closeTo(actual: unknown, expected: unknown): boolean {
  if (typeof actual === 'number' && typeof expected === 'number') {
    if (Number.isInteger(expected) && Number.isInteger(actual)) return actual === expected;
    return Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
  }
  if (Array.isArray(actual) && Array.isArray(expected))
    return actual.length === expected.length && actual.every((a, i) => closeTo(a, expected[i]));
  return actual === expected;
}
