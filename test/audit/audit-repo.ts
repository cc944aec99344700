/**
 * The audit's feature repo: two sources, four group-bys covering every op, default and overridden hops,
 * lifetime windows, a filter, a derived column, nullable inputs and keys, a two-column key (int + string)
 * and two joins with prefixes, renamed key mappings and derivations.
 *
 * `repoSource` is the repo as TypeScript text (written to a temp folder and loaded by `tessera serve`);
 * `SPEC` describes the same definitions as plain data for the oracle (audit-oracle.ts), written by hand
 * from DESIGN §1 and the README, not derived from Tessera's plan.
 */
import { fileURLToPath } from 'node:url';

const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

export function repoSource(): string {
  return `import {
  col, eventSource, groupBy, join, count, sum, avg, min, max, variance, stddev, first, last,
  firstK, lastK, topK, bottomK, uniqueCount, approxUniqueCount, approxPercentile, histogram,
} from ${JSON.stringify(INDEX)};

export const tx = eventSource({
  name: 'tx',
  path: 'data/tx.jsonl',
  timeColumn: 'ts',
  schema: {
    user_id: col.string(),
    merchant: col.string().nullable(),
    amount: col.float().nullable(),
    qty: col.int().nullable(),
    flag: col.bool().nullable(),
    country: col.string(),
    ts: col.timestamp(),
  },
  derive: { big: { type: col.float().nullable(), fn: (r) => (r.amount !== null && r.amount > 50 ? r.amount : null) } },
  filter: (r) => r.country !== 'XX',
});

export const clicks = eventSource({
  name: 'clicks',
  path: 'data/clicks.jsonl',
  timeColumn: 'ts',
  schema: {
    a: col.int(),
    b: col.string(),
    user_id: col.string().nullable(),
    v: col.int().nullable(),
    w: col.int().nullable(),
    label: col.string().nullable(),
    sid: col.string(),
    ts: col.timestamp(),
  },
});

export const byUser = groupBy({
  name: 'user',
  source: tx,
  keys: ['user_id'],
  aggregations: [
    count({ windows: ['10m', '1h', '1d', 'lifetime'] }),
    count('amount', { windows: ['1h'] }),
    sum('amount', { windows: ['1h', { size: '1d', hop: '10m' }] }),
    sum('qty', { windows: ['2h', 'lifetime'] }),
    avg('amount', { windows: ['1d'] }),
    min('amount', { windows: ['1h'] }),
    max('qty', { windows: ['1d'] }),
    min('merchant', { windows: ['1d'] }),
    max('merchant', { windows: ['lifetime'] }),
    variance('amount', { windows: ['1d'] }),
    stddev('amount', { windows: ['6h'] }),
    first('merchant', { windows: ['1h', 'lifetime'] }),
    last('merchant', { windows: ['1h', 'lifetime'] }),
    last('flag', { windows: ['1d'] }),
    count('flag', { windows: ['30m'] }),
    firstK('merchant', { k: 3, windows: ['1d'] }),
    lastK('amount', { k: 4, windows: ['1h'] }),
    topK('amount', { k: 3, windows: ['1d'] }),
    bottomK('qty', { k: 2, windows: ['1h'] }),
    uniqueCount('merchant', { windows: ['1d', 'lifetime'] }),
    approxUniqueCount('merchant', { windows: ['lifetime'] }),
    approxPercentile('amount', { percentiles: [0, 0.5, 0.9, 1], windows: ['1d'] }),
    histogram('country', { windows: ['1h'] }),
    histogram('qty', { windows: ['1d'] }),
    sum('big', { windows: ['1d'] }),
  ],
});

// No lifetime window: weeks-late events are beyond retention here (counted, not applied).
export const recent = groupBy({
  name: 'recent',
  source: tx,
  keys: ['user_id'],
  aggregations: [
    count({ windows: ['1h'] }),
    sum('qty', { windows: ['10m'] }),
    last('merchant', { windows: ['1h'] }),
  ],
});

// Two string key columns.
export const byUserCountry = groupBy({
  name: 'uc',
  source: tx,
  keys: ['user_id', 'country'],
  aggregations: [count({ windows: ['lifetime'] }), sum('qty', { windows: ['1d'] })],
});

export const byMerchant = groupBy({
  name: 'merch',
  source: tx,
  keys: ['merchant'],
  aggregations: [
    count({ windows: [{ size: '30m', hop: '5m' }, '7d'] }),
    sum('big', { windows: ['1d'] }),
    last('user_id', { windows: ['lifetime'] }),
    lastK('user_id', { k: 2, windows: [{ size: '2h', hop: '20m' }] }),
    approxUniqueCount('user_id', { windows: ['1d'] }),
    histogram('flag', { windows: ['lifetime'] }),
  ],
});

export const byPair = groupBy({
  name: 'pair',
  source: clicks,
  keys: ['a', 'b'],
  aggregations: [
    count({ windows: ['15m', '1h'] }),
    sum('v', { windows: ['1h', 'lifetime'] }),
    last('v', { windows: ['lifetime'] }),
    first('label', { windows: ['15m'] }),
    firstK('label', { k: 2, windows: ['1h'] }),
    avg('v', { windows: [{ size: '1h', hop: '1m' }] }),
    min('v', { windows: ['90s'] }),
    variance('v', { windows: ['1h'] }),
    sum('w', { windows: ['1h'] }),
    max('w', { windows: ['1h'] }),
  ],
});

export const byA = groupBy({
  name: 'acc',
  source: clicks,
  keys: ['a'],
  aggregations: [
    count({ windows: ['lifetime'] }),
    sum('v', { windows: ['lifetime'] }),
    last('label', { windows: ['lifetime'] }),
    uniqueCount('b', { windows: ['lifetime'] }),
    sum('w', { windows: ['lifetime'] }),
    approxUniqueCount('sid', { windows: ['lifetime'] }),
    approxPercentile('v', { percentiles: [0.25, 0.75], windows: ['lifetime'] }),
  ],
});

export const txModel = join({
  name: 'tx_model',
  left: tx,
  parts: [
    { groupBy: byUser, keys: { user_id: 'user_id' } },
    { groupBy: byMerchant, keys: { merchant: 'merchant' }, prefix: 'm' },
    { groupBy: recent, keys: { user_id: 'user_id' } },
    { groupBy: byUserCountry, keys: { user_id: 'user_id', country: 'country' } },
  ],
  derive: {
    amt_vs_avg: {
      type: col.float().nullable(),
      fn: (f, row) => (row.amount == null || f.user_amount_avg_1d == null ? null : row.amount - f.user_amount_avg_1d),
    },
    at_hour: { type: col.int(), fn: (f, row) => new Date(row.ts).getUTCHours() },
  },
});

export const clickModel = join({
  name: 'click_model',
  left: clicks,
  parts: [
    { groupBy: byPair, keys: { a: 'a', b: 'b' } },
    { groupBy: byA, keys: { a: 'a' }, prefix: 'la' },
    { groupBy: byUser, keys: { user_id: 'user_id' }, prefix: 'u' },
    { groupBy: byMerchant, keys: { merchant: 'b' }, prefix: 'mb' },
  ],
});
`;
}

export type Op =
  | 'count'
  | 'sum'
  | 'avg'
  | 'min'
  | 'max'
  | 'variance'
  | 'stddev'
  | 'first'
  | 'last'
  | 'first_k'
  | 'last_k'
  | 'top_k'
  | 'bottom_k'
  | 'unique_count'
  | 'approx_unique_count'
  | 'approx_percentile'
  | 'histogram';

export interface WindowSpec {
  readonly label: string;
  /** null: lifetime. */
  readonly sizeMs: number | null;
  readonly hopMs: number;
}

export interface FeatureSpec {
  readonly name: string;
  readonly op: Op;
  readonly input: string | null;
  readonly window: WindowSpec;
  readonly k?: number;
  readonly percentiles?: readonly number[];
  /** int inputs: sums must be exact integers. */
  readonly intInput?: boolean;
}

export interface GroupBySpec {
  readonly name: string;
  readonly source: 'tx' | 'clicks';
  readonly keys: readonly string[];
  readonly features: readonly FeatureSpec[];
}

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

/** DESIGN §1: the largest of 1d, 1h, 5m, 1m, 1s with W >= 12·h. */
function defaultHop(sizeMs: number): number {
  for (const h of [D, H, 5 * M, M, S]) if (sizeMs >= 12 * h) return h;
  throw new Error(`no default hop for ${sizeMs} ms`);
}

function w(label: string, hop?: string): WindowSpec {
  if (label === 'lifetime') return { label, sizeMs: null, hopMs: D };
  const size = dur(label);
  return { label, sizeMs: size, hopMs: hop === undefined ? defaultHop(size) : dur(hop) };
}

function dur(text: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}`);
  return Number(m[1]) * { s: S, m: M, h: H, d: D }[m[2] as 's' | 'm' | 'h' | 'd'];
}

type Win = string | [string, string];

function feats(
  gb: string,
  op: Op,
  input: string | null,
  windows: readonly Win[],
  extra: Partial<FeatureSpec> = {},
): FeatureSpec[] {
  return windows.map((win) => {
    const window = typeof win === 'string' ? w(win) : w(win[0], win[1]);
    const name = `${gb}_${input === null ? '' : `${input}_`}${op}_${window.label}`;
    return { name, op, input, window, ...extra };
  });
}

export const USER: GroupBySpec = {
  name: 'user',
  source: 'tx',
  keys: ['user_id'],
  features: [
    ...feats('user', 'count', null, ['10m', '1h', '1d', 'lifetime']),
    ...feats('user', 'count', 'amount', ['1h']),
    ...feats('user', 'sum', 'amount', ['1h', ['1d', '10m']]),
    ...feats('user', 'sum', 'qty', ['2h', 'lifetime'], { intInput: true }),
    ...feats('user', 'avg', 'amount', ['1d']),
    ...feats('user', 'min', 'amount', ['1h']),
    ...feats('user', 'max', 'qty', ['1d']),
    ...feats('user', 'min', 'merchant', ['1d']),
    ...feats('user', 'max', 'merchant', ['lifetime']),
    ...feats('user', 'variance', 'amount', ['1d']),
    ...feats('user', 'stddev', 'amount', ['6h']),
    ...feats('user', 'first', 'merchant', ['1h', 'lifetime']),
    ...feats('user', 'last', 'merchant', ['1h', 'lifetime']),
    ...feats('user', 'last', 'flag', ['1d']),
    ...feats('user', 'count', 'flag', ['30m']),
    ...feats('user', 'first_k', 'merchant', ['1d'], { k: 3 }),
    ...feats('user', 'last_k', 'amount', ['1h'], { k: 4 }),
    ...feats('user', 'top_k', 'amount', ['1d'], { k: 3 }),
    ...feats('user', 'bottom_k', 'qty', ['1h'], { k: 2 }),
    ...feats('user', 'unique_count', 'merchant', ['1d', 'lifetime']),
    ...feats('user', 'approx_unique_count', 'merchant', ['lifetime']),
    ...feats('user', 'approx_percentile', 'amount', ['1d'], { percentiles: [0, 0.5, 0.9, 1] }),
    ...feats('user', 'histogram', 'country', ['1h']),
    ...feats('user', 'histogram', 'qty', ['1d']),
    ...feats('user', 'sum', 'big', ['1d']),
  ],
};

export const MERCH: GroupBySpec = {
  name: 'merch',
  source: 'tx',
  keys: ['merchant'],
  features: [
    ...feats('merch', 'count', null, [['30m', '5m'], '7d']),
    ...feats('merch', 'sum', 'big', ['1d']),
    ...feats('merch', 'last', 'user_id', ['lifetime']),
    ...feats('merch', 'last_k', 'user_id', [['2h', '20m']], { k: 2 }),
    ...feats('merch', 'approx_unique_count', 'user_id', ['1d']),
    ...feats('merch', 'histogram', 'flag', ['lifetime']),
  ],
};

export const PAIR: GroupBySpec = {
  name: 'pair',
  source: 'clicks',
  keys: ['a', 'b'],
  features: [
    ...feats('pair', 'count', null, ['15m', '1h']),
    ...feats('pair', 'sum', 'v', ['1h', 'lifetime'], { intInput: true }),
    ...feats('pair', 'last', 'v', ['lifetime']),
    ...feats('pair', 'first', 'label', ['15m']),
    ...feats('pair', 'first_k', 'label', ['1h'], { k: 2 }),
    ...feats('pair', 'avg', 'v', [['1h', '1m']]),
    ...feats('pair', 'min', 'v', ['90s']),
    ...feats('pair', 'variance', 'v', ['1h']),
    ...feats('pair', 'sum', 'w', ['1h'], { intInput: true }),
    ...feats('pair', 'max', 'w', ['1h']),
  ],
};

export const ACC: GroupBySpec = {
  name: 'acc',
  source: 'clicks',
  keys: ['a'],
  features: [
    ...feats('acc', 'count', null, ['lifetime']),
    ...feats('acc', 'sum', 'v', ['lifetime'], { intInput: true }),
    ...feats('acc', 'last', 'label', ['lifetime']),
    ...feats('acc', 'unique_count', 'b', ['lifetime']),
    ...feats('acc', 'sum', 'w', ['lifetime'], { intInput: true }),
    ...feats('acc', 'approx_unique_count', 'sid', ['lifetime']),
    ...feats('acc', 'approx_percentile', 'v', ['lifetime'], { percentiles: [0.25, 0.75] }),
  ],
};

export const RECENT: GroupBySpec = {
  name: 'recent',
  source: 'tx',
  keys: ['user_id'],
  features: [
    ...feats('recent', 'count', null, ['1h']),
    ...feats('recent', 'sum', 'qty', ['10m'], { intInput: true }),
    ...feats('recent', 'last', 'merchant', ['1h']),
  ],
};

export const UC: GroupBySpec = {
  name: 'uc',
  source: 'tx',
  keys: ['user_id', 'country'],
  features: [
    ...feats('uc', 'count', null, ['lifetime']),
    ...feats('uc', 'sum', 'qty', ['1d'], { intInput: true }),
  ],
};

export const GROUP_BYS: Record<string, GroupBySpec> = {
  user: USER,
  merch: MERCH,
  pair: PAIR,
  acc: ACC,
  recent: RECENT,
  uc: UC,
};

export interface JoinPart {
  readonly groupBy: GroupBySpec;
  /** group-by key → left column. */
  readonly keys: Record<string, string>;
  readonly prefix?: string;
}

export interface JoinSpec {
  readonly name: string;
  readonly parts: readonly JoinPart[];
  readonly derived: readonly string[];
}

export const TX_MODEL: JoinSpec = {
  name: 'tx_model',
  parts: [
    { groupBy: USER, keys: { user_id: 'user_id' } },
    { groupBy: MERCH, keys: { merchant: 'merchant' }, prefix: 'm' },
    { groupBy: RECENT, keys: { user_id: 'user_id' } },
    { groupBy: UC, keys: { user_id: 'user_id', country: 'country' } },
  ],
  derived: ['amt_vs_avg', 'at_hour'],
};

export const CLICK_MODEL: JoinSpec = {
  name: 'click_model',
  parts: [
    { groupBy: PAIR, keys: { a: 'a', b: 'b' } },
    { groupBy: ACC, keys: { a: 'a' }, prefix: 'la' },
    { groupBy: USER, keys: { user_id: 'user_id' }, prefix: 'u' },
    { groupBy: MERCH, keys: { merchant: 'b' }, prefix: 'mb' },
  ],
  derived: [],
};
