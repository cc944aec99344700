import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.ts';
import { col, eventSource, groupBy, semanticHash, type AggSpec, type WindowInput } from '../../src/index.ts';
import { rng as mulberry32 } from '../support/rng.ts';

/** Small seeded PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const shuffle = <T>(xs: readonly T[]): T[] => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
  return { int, pick, shuffle };
}

type Rng = ReturnType<typeof rng>;

/** A group-by described as plain data, so tests can rename, reorder and mutate it. */
interface Desc {
  sourceName: string;
  path: string;
  timeColumn: string;
  schema: [string, 'string' | 'float' | 'int' | 'timestamp', boolean][];
  filter: string | null;
  name: string;
  owner?: string;
  keys: string[];
  aggs: { op: string; input: string | null; k?: number; percentiles?: number[]; windows: WindowInput[] }[];
}

const OPS: Record<string, { fn: string; input: 'num' | 'any' | 'none'; k?: boolean; p?: boolean }> = {
  count: { fn: 'count', input: 'none' },
  sum: { fn: 'sum', input: 'num' },
  avg: { fn: 'avg', input: 'num' },
  min: { fn: 'min', input: 'num' },
  max: { fn: 'max', input: 'num' },
  variance: { fn: 'variance', input: 'num' },
  last: { fn: 'last', input: 'any' },
  first: { fn: 'first', input: 'any' },
  stddev: { fn: 'stddev', input: 'num' },
  last_k: { fn: 'lastK', input: 'any', k: true },
  top_k: { fn: 'topK', input: 'num', k: true },
  unique_count: { fn: 'uniqueCount', input: 'any' },
  approx_percentile: { fn: 'approxPercentile', input: 'num', p: true },
  histogram: { fn: 'histogram', input: 'any' },
};
const SIZES = ['5m', '10m', '1h', '6h', '1d', '7d', '30d', 'lifetime'];

function randomDesc(r: Rng): Desc {
  const aggs: Desc['aggs'] = [];
  for (let i = 0, n = 1 + r.int(5); i < n; i++) {
    const op = r.pick(Object.keys(OPS).filter((o) => o !== 'first' && o !== 'stddev'));
    const spec = OPS[op]!;
    const input =
      spec.input === 'none'
        ? null
        : spec.input === 'num'
          ? r.pick(['amount', 'cents'])
          : r.pick(['merchant_id', 'amount']);
    if (aggs.some((a) => a.op === op && a.input === input)) continue; // one aggregation per (op, input)
    const windows = r.shuffle(SIZES).slice(0, 1 + r.int(3)) as WindowInput[];
    if (r.int(3) === 0 && windows[0] === '1h') windows[0] = { size: '1h', hop: '10m' };
    aggs.push({
      op,
      input,
      windows,
      ...(spec.k ? { k: 1 + r.int(9) } : {}),
      ...(spec.p ? { percentiles: [0.5, 0.9] } : {}),
    });
  }
  return {
    sourceName: 'charges',
    path: 'data/charges/*.parquet',
    timeColumn: 'ts',
    schema: [
      ['card_id', 'string', false],
      ['merchant_id', 'string', false],
      ['amount', 'float', false],
      ['cents', 'int', true],
      ['ts', 'timestamp', false],
    ],
    filter: r.int(2) ? 'r.amount > 0' : null,
    name: 'card_stats',
    keys: r.int(3) === 0 ? ['card_id', 'merchant_id'] : ['card_id'],
    aggs,
  };
}

function build(d: Desc) {
  const schema = Object.fromEntries(
    d.schema.map(([n, t, nullable]) => [n, nullable ? col[t]().nullable() : col[t]()]),
  );
  const filter =
    d.filter === null ? undefined : (new Function('r', `return ${d.filter}`) as (r: unknown) => boolean);
  const source = eventSource({
    name: d.sourceName,
    path: d.path,
    timeColumn: d.timeColumn,
    schema,
    ...(filter ? { filter } : {}),
  } as never);
  const helpers = api as unknown as Record<string, (...args: unknown[]) => AggSpec>;
  const aggregations = d.aggs.map((a) => {
    const spec = OPS[a.op]!;
    const options = {
      windows: a.windows,
      ...(a.k ? { k: a.k } : {}),
      ...(a.percentiles ? { percentiles: a.percentiles } : {}),
    };
    return a.input === null ? helpers[spec.fn]!(options) : helpers[spec.fn]!(a.input, options);
  });
  return groupBy({
    name: d.name,
    source,
    keys: d.keys,
    aggregations,
    ...(d.owner ? { owner: d.owner } : {}),
  } as never);
}

/** Same computation, different surface: names, owners, docs and every order that does not matter. */
function cosmetic(d: Desc, r: Rng): Desc {
  return {
    ...d,
    sourceName: `src_${r.int(1000)}`,
    name: `renamed_${r.int(1000)}`,
    owner: `team_${r.int(10)}`,
    schema: r.shuffle(d.schema),
    keys: r.shuffle(d.keys),
    aggs: r.shuffle(d.aggs).map((a) => ({ ...a, windows: r.shuffle(a.windows) })),
  };
}

const windowSize = (w: WindowInput) => (typeof w === 'string' ? w : w.size);

/** One change that alters what is computed. */
function semanticMutation(d: Desc, r: Rng): [string, Desc] {
  const c: Desc = structuredClone(d);
  const agg = c.aggs[r.int(c.aggs.length)]!;
  const choices: (() => string)[] = [
    () => {
      const free = SIZES.filter((s) => !agg.windows.some((w) => windowSize(w) === s));
      agg.windows[0] = r.pick(free);
      return 'window size';
    },
    () => {
      agg.windows.push(r.pick(SIZES.filter((s) => !agg.windows.some((w) => windowSize(w) === s))));
      return 'extra window';
    },
    () => {
      const i = agg.windows.findIndex((w) => windowSize(w) === '1h');
      if (i < 0) agg.windows.push({ size: '1h', hop: '20m' });
      else agg.windows[i] = typeof agg.windows[i] === 'string' ? { size: '1h', hop: '20m' } : '1h';
      return 'hop';
    },
    () => {
      c.aggs.push({ op: 'count', input: 'ts', windows: ['1d'] });
      return 'extra aggregation';
    },
    () => {
      // Ops the generator never uses, so the result cannot collide with another aggregation.
      if (agg.k) agg.k += 1;
      else if (agg.percentiles) agg.percentiles = [0.9, 0.5];
      else if (agg.input === null) agg.input = 'cents';
      else if (agg.input === 'merchant_id') agg.op = 'first';
      else agg.op = 'stddev';
      return 'op or params';
    },
    () => {
      c.keys = c.keys.length === 1 ? ['card_id', 'merchant_id'] : ['card_id'];
      return 'keys';
    },
    () => {
      c.filter = c.filter === null ? 'r.amount > 0' : 'r.amount >= 0';
      return 'filter';
    },
    () => {
      c.path = 'data/charges-v2/*.parquet';
      return 'path';
    },
    () => {
      c.schema = c.schema.map(([n, t, nullable]) => [n, t, n === 'card_id' ? !nullable : nullable]);
      return 'nullability';
    },
  ];
  return [r.pick(choices)(), c];
}

describe('semanticHash', () => {
  it('is a sha256 hex digest and is stable for a fixed definition', () => {
    const g = build({ ...randomDesc(rng(1)) });
    expect(semanticHash(g)).toMatch(/^[0-9a-f]{64}$/);
    expect(semanticHash(g)).toBe(semanticHash(build({ ...randomDesc(rng(1)) })));
  });

  it('ignores names, owners, docs and the order of keys, schema fields, aggregations and windows', () => {
    for (let seed = 0; seed < 200; seed++) {
      const r = rng(seed);
      const d = randomDesc(r);
      expect(semanticHash(build(cosmetic(d, r))), `seed ${seed}`).toBe(semanticHash(build(d)));
    }
  });

  it('changes with any change to what is computed', () => {
    for (let seed = 0; seed < 300; seed++) {
      const r = rng(seed);
      const d = randomDesc(r);
      const [what, mutated] = semanticMutation(d, r);
      expect(semanticHash(build(mutated)), `seed ${seed}: ${what}`).not.toBe(semanticHash(build(d)));
    }
  });

  it('distinguishes derived column code and treats equal spelled-differently windows alike', () => {
    const make = (fn: (r: { amount: number }) => boolean, window: WindowInput) =>
      groupBy({
        name: 'g',
        source: eventSource({
          name: 's',
          path: 'x.csv',
          timeColumn: 'ts',
          schema: { card_id: col.string(), amount: col.float(), ts: col.timestamp() },
          derive: { big: { type: col.bool(), fn } },
        }),
        keys: ['card_id'],
        aggregations: [api.count('big', { windows: [window] })],
      });
    const base = semanticHash(make((r) => r.amount > 1, '1d'));
    expect(semanticHash(make((r) => r.amount > 1, '24h'))).toBe(base);
    expect(semanticHash(make((r) => r.amount > 1, { size: '1d', hop: '1h' }))).toBe(base);
    expect(semanticHash(make((r) => r.amount > 2, '1d'))).not.toBe(base);
  });
});
