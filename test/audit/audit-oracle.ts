/**
 * An independent oracle for the audit, written straight from DESIGN §1: for a key and a time `t` it scans
 * the key's accepted events and applies the window rule `floor((t - W) / h) * h <= ts < t` (lifetime:
 * `ts < t`) and each op's definition by brute force. No Tessera code is used, so a shared misreading of the
 * contract cannot hide a bug. Also generates the random corpus (ties, nulls, out-of-order, late and very
 * old events, ISO and epoch times).
 */
import { rng } from '../support/rng.ts';
import type { FeatureSpec, GroupBySpec } from './audit-repo.ts';

export type Row = Record<string, string | number | boolean | null>;

export interface OEvent {
  readonly source: 'tx' | 'clicks';
  /** As posted (ts may be ISO text). */
  readonly posted: Row;
  /** Normalized: ts in epoch ms, derived columns added. */
  readonly row: Row;
  readonly ts: number;
  /** Source order: position among the source's accepted events. */
  seq: number;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** Parses a posted time as the README says: epoch ms, or ISO-8601 text (UTC if no zone). */
export function parseTs(v: string | number): number {
  if (typeof v === 'number') return v;
  const zoned = /(Z|[+-]\d\d:\d\d)$/.test(v) ? v : `${v}Z`;
  const ms = Date.parse(zoned);
  if (!Number.isFinite(ms)) throw new Error(`oracle: bad time ${v}`);
  return ms;
}

/** Source filter and derived columns of the audit repo, re-stated by hand. */
function normalize(source: 'tx' | 'clicks', posted: Row): Row | null {
  const row: Row = { ...posted, ts: parseTs(posted.ts as string | number) };
  if (source === 'tx') {
    if (row.country === 'XX') return null;
    const amount = row.amount as number | null;
    row.big = amount !== null && amount > 50 ? amount : null;
  }
  return row;
}

export class Oracle {
  /** group-by → key (JSON of key values) → events sorted by (ts, seq). */
  private readonly index = new Map<string, Map<string, OEvent[]>>();
  private readonly seqs = { tx: 0, clicks: 0 };
  /**
   * Upper bound of each source's worker watermark: max ts, capped at wall clock + 60 s when accepted (the
   * worker's documented cap against bogus future times).
   */
  readonly maxTs = { tx: -Infinity, clicks: -Infinity };
  readonly trueMaxTs = { tx: -Infinity, clicks: -Infinity };
  /** Future events (ts past the wall clock when posted). */
  readonly future: number[] = [];
  readonly accepted: OEvent[] = [];

  constructor(private readonly groupBys: readonly GroupBySpec[]) {
    for (const g of groupBys) this.index.set(g.name, new Map());
  }

  /** Records a batch the server accepted (in posting order). */
  accept(source: 'tx' | 'clicks', batch: readonly Row[]): void {
    for (const posted of batch) {
      const seq = this.seqs[source]++;
      const ts = parseTs(posted.ts as string | number);
      const capped = Math.min(ts, Date.now() + 60_000);
      if (capped > this.maxTs[source]) this.maxTs[source] = capped;
      if (ts > Date.now()) this.future.push(ts);
      if (ts > this.trueMaxTs[source]) this.trueMaxTs[source] = ts;
      const row = normalize(source, posted);
      if (row === null) continue;
      const e: OEvent = { source, posted, row, ts, seq };
      this.accepted.push(e);
      for (const g of this.groupBys) {
        if (g.source !== source) continue;
        const kv = g.keys.map((k) => row[k]);
        if (kv.some((v) => v === null || v === undefined)) continue;
        const byKey = this.index.get(g.name)!;
        const key = JSON.stringify(kv);
        let list = byKey.get(key);
        if (!list) byKey.set(key, (list = []));
        list.push(e);
      }
    }
  }

  /** Accepted, unfiltered events of one entity (empty for a null or unknown key). */
  events(gb: GroupBySpec, keyValues: readonly unknown[]): OEvent[] {
    if (keyValues.some((v) => v === null || v === undefined)) return [];
    return this.index.get(gb.name)!.get(JSON.stringify(keyValues)) ?? [];
  }

  keys(gb: GroupBySpec): unknown[][] {
    return [...this.index.get(gb.name)!.keys()].map((k) => JSON.parse(k) as unknown[]);
  }

  /** Every feature of `gb` for one entity at `t`. */
  values(gb: GroupBySpec, keyValues: readonly unknown[], t: number): Record<string, unknown> {
    const evs = this.events(gb, keyValues);
    const out: Record<string, unknown> = {};
    for (const f of gb.features) out[f.name] = featureValue(f, evs, t);
    return out;
  }
}

function inWindow(f: FeatureSpec, ts: number, t: number): boolean {
  if (ts >= t) return false;
  if (f.window.sizeMs === null) return true;
  const h = f.window.hopMs;
  return Math.floor((t - f.window.sizeMs) / h) * h <= ts;
}

function byTime(a: OEvent, b: OEvent): number {
  return a.ts - b.ts || a.seq - b.seq;
}

export function emptyValue(f: FeatureSpec): unknown {
  if (f.op === 'count' || f.op === 'unique_count') return 0;
  if (f.op === 'histogram') return {};
  return null;
}

export function featureValue(f: FeatureSpec, events: readonly OEvent[], t: number): unknown {
  const inWin = events.filter((e) => inWindow(f, e.ts, t)).sort(byTime);
  if (f.op === 'count' && f.input === null) return inWin.length;
  const withInput = inWin.filter((e) => e.row[f.input!] !== null && e.row[f.input!] !== undefined);
  const vals = withInput.map((e) => e.row[f.input!]!);
  if (vals.length === 0) return emptyValue(f);
  const nums = vals as number[];
  switch (f.op) {
    case 'count':
      return vals.length;
    case 'sum': {
      if (!f.intInput) return nums.reduce((a, b) => a + b, 0);
      // README: an int sum is exact, or null when the exact sum is beyond ±(2^53 − 1).
      const s = nums.reduce((a, b) => a + BigInt(b), 0n);
      return s > BigInt(Number.MAX_SAFE_INTEGER) || s < -BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(s);
    }
    case 'avg':
      return nums.reduce((a, b) => a + b, 0) / nums.length;
    case 'min':
      return vals.reduce((a, b) => (b < a ? b : a));
    case 'max':
      return vals.reduce((a, b) => (b > a ? b : a));
    case 'variance':
    case 'stddev': {
      const mean = nums.reduce((a, b) => a + b, 0) / nums.length;
      const v = nums.reduce((a, b) => a + (b - mean) ** 2, 0) / nums.length;
      return f.op === 'variance' ? v : Math.sqrt(v);
    }
    case 'first':
      return vals[0];
    case 'last':
      return vals[vals.length - 1];
    case 'first_k':
      return vals.slice(0, f.k);
    case 'last_k':
      return vals.slice().reverse().slice(0, f.k);
    case 'top_k':
      return vals
        .slice()
        .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))
        .slice(0, f.k);
    case 'bottom_k':
      return vals
        .slice()
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, f.k);
    case 'unique_count':
    case 'approx_unique_count':
      return new Set(vals).size;
    case 'approx_percentile':
      // The exact sorted values: compare() checks the sketch against them within its documented accuracy.
      return { sorted: nums.slice().sort((a, b) => a - b) };
    case 'histogram': {
      const h: Record<string, number> = {};
      for (const v of vals) h[String(v)] = (h[String(v)] ?? 0) + 1;
      return h;
    }
  }
}

function close(a: number, e: number, scale: number): boolean {
  return Math.abs(a - e) <= 1e-9 * Math.max(Math.abs(e), scale);
}

/**
 * Compares a served value with the oracle's; null when they agree, else what differs. Exact for ints,
 * strings, bools, lists and histograms; floats to relative 1e-9; approx_unique_count within 3% (the HLL's
 * standard error is 0.81%) and at least 1; approx_percentile within the sketch's 1% of the sorted value at
 * index floor(q · (n − 1)) (ddsketch.ts), clamped to [min, max].
 */
export function compare(f: FeatureSpec, expected: unknown, actual: unknown): string | null {
  const bad = (why = '') => `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}${why}`;
  if (expected === null || (f.op === 'histogram' && isEmptyObject(expected))) {
    return JSON.stringify(actual) === JSON.stringify(expected) ? null : bad();
  }
  switch (f.op) {
    case 'approx_unique_count': {
      const n = expected as number;
      if (n === 0) return actual === 0 ? null : bad();
      const tol = Math.max(1, Math.ceil(0.03 * n));
      return typeof actual === 'number' && Number.isInteger(actual) && Math.abs(actual - n) <= tol
        ? null
        : bad(` (tolerance ±${tol})`);
    }
    case 'approx_percentile': {
      const sorted = (expected as { sorted: number[] }).sorted;
      if (!Array.isArray(actual) || actual.length !== f.percentiles!.length) return bad(' (shape)');
      const lo = sorted[0]!;
      const hi = sorted[sorted.length - 1]!;
      for (let i = 0; i < f.percentiles!.length; i++) {
        const q = f.percentiles![i]!;
        const want = sorted[Math.floor(q * (sorted.length - 1))]!;
        const got = actual[i] as number;
        if (
          typeof got !== 'number' ||
          got < lo ||
          got > hi ||
          Math.abs(got - want) > 0.01 * Math.abs(want) + 1e-12
        )
          return `p${q}: exact ${want} (n=${sorted.length}, range ${lo}..${hi}), got ${got}`;
      }
      return null;
    }
    case 'sum':
    case 'avg':
      if (f.intInput && f.op === 'sum') return actual === expected ? null : bad();
      return typeof actual === 'number' && close(actual, expected as number, 1e-300) ? null : bad();
    case 'variance':
    case 'stddev': {
      if (typeof actual !== 'number') return bad();
      // Welford and the oracle's two-pass formula differ by rounding scaled by mean², not by the variance.
      const e = expected as number;
      const a2 = f.op === 'stddev' ? actual * actual : actual;
      const e2 = f.op === 'stddev' ? e * e : e;
      return Math.abs(a2 - e2) <= 1e-9 * (Math.abs(e2) + 1e4) ? null : bad();
    }
    case 'histogram':
      return JSON.stringify(sortKeys(actual)) === JSON.stringify(sortKeys(expected)) ? null : bad();
    default:
      return JSON.stringify(actual) === JSON.stringify(expected) ? null : bad();
  }
}

/** Histograms are maps: key order carries no meaning. */
function sortKeys(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}

// ---------------------------------------------------------------------------------------------------
// Corpus

export interface Corpus {
  readonly tx: Row[];
  readonly clicks: Row[];
  readonly users: string[];
  readonly merchants: string[];
  readonly base: number;
}

const COUNTRIES = ['US', 'DE', 'FR', 'US', 'XX'];
/** Key values with the characters key encodings tend to use as separators, and non-ASCII. */
export const ODD_USERS = ['q\u001fUS', 'q', 'z\u0000z', 'ü-ß-😀', 'a b/c?d&e=f#', '{x}:y'];
const BIG = 2 ** 52;
const LABELS = ['red', 'green', 'blue', 'teal'];

/**
 * A random corpus over ~1.5 days ending a few hours before now (the worker's watermark never passes the
 * wall clock): ties in ts, hop-aligned times, nulls in every nullable column, events out of order by up to
 * 3 h, late events 10-40 days old, and a few from 1970 and 2001.
 */
export function makeCorpus(seed: number, nTx: number, nClicks: number): Corpus {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const skew = (n: number) => Math.floor(n * r() * r());
  const users = Array.from({ length: 30 }, (_, i) => `u${String(i).padStart(2, '0')}`);
  const merchants = Array.from({ length: 15 }, (_, i) => `m${String(i).padStart(2, '0')}`);
  const base = Math.floor((Date.now() - 2 * DAY) / DAY) * DAY;
  const span = 1.5 * DAY;

  const times = (n: number): number[] => {
    const out: number[] = [];
    let clock = base;
    for (let i = 0; i < n; i++) {
      clock += Math.floor((r() * 2 * span) / n);
      const u = r();
      let ts: number;
      if (u < 0.2 && out.length > 0)
        ts = out[out.length - 1]!; // tie with the previous event
      else if (u < 0.3)
        ts = Math.floor(clock / (5 * MIN)) * 5 * MIN; // on a hop boundary
      else if (u < 0.4)
        ts = clock - Math.floor(r() * 3 * HOUR); // out of order
      else if (u < 0.41)
        ts = clock - Math.floor((10 + r() * 30) * DAY); // late by weeks
      else if (u < 0.413) {
        const w = r();
        // 1969 (negative epoch ms), 1970, 2001.
        ts = (w < 0.33 ? -DAY : w < 0.66 ? 1000 : Date.UTC(2001, 0, 1)) + Math.floor(r() * DAY);
      } else if (u < 0.415)
        ts = Date.now() + (r() < 0.5 ? 2 * DAY : 400 * DAY) + Math.floor(r() * HOUR); // future
      else ts = clock;
      out.push(ts);
    }
    return out;
  };

  const tx = times(nTx).map((ts): Row => {
    const q = r();
    const odd = r() < 0.03;
    return {
      user_id: odd ? pick(ODD_USERS) : users[skew(users.length)]!,
      merchant: r() < 0.1 ? null : merchants[skew(merchants.length)]!,
      amount: r() < 0.1 ? null : Math.round((0.5 + r() * r() * 200) * 100) / 100,
      qty: q < 0.1 ? null : Math.floor(r() * 10),
      flag: r() < 0.15 ? null : r() < 0.5,
      // 'q\u001fUS' in 'DE' and 'q' in 'US\u001fDE' are different entities of a two-column key.
      country: odd && r() < 0.5 ? 'US\u001fDE' : pick(COUNTRIES),
      ts: r() < 0.2 ? new Date(ts).toISOString() : ts,
    };
  });
  const clicks = times(nClicks).map((ts): Row => {
    const iso = new Date(ts).toISOString();
    const u = r();
    return {
      a: 1 + skew(6),
      b: merchants[skew(8)]!,
      user_id: r() < 0.2 ? null : users[skew(users.length)]!,
      v: r() < 0.1 ? null : Math.floor(r() * 100) - 20,
      // Mostly small; a few near ±2^52, so sums cross the exact range and come back.
      w:
        r() < 0.1
          ? null
          : r() < 0.05
            ? (r() < 0.5 ? BIG : -BIG) + Math.floor(r() * 1000)
            : Math.floor(r() * 50),
      label: r() < 0.1 ? null : pick(LABELS),
      // Mostly distinct, so a busy key's HyperLogLog turns dense (past 512 registers).
      sid: `s${Math.floor(r() * 1e9)}`,
      // ISO with a zone, ISO without a zone (UTC), or epoch ms.
      ts:
        u < 0.4
          ? iso
          : u < 0.55
            ? iso.slice(0, -1)
            : u < 0.6
              ? `${new Date(ts + 2 * HOUR).toISOString().slice(0, -1)}+02:00`
              : ts,
    };
  });
  return { tx, clicks, users, merchants, base };
}
