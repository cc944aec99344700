import { describe, expect, it } from 'vitest';
import { createGroupAggregator } from '../../src/aggregate/group-aggregator.ts';
import type { AggregationDef, GroupByDef, OpName, WindowDef } from '../../src/define/types.ts';
import { KeySweeper } from '../../src/offline/key-sweeper.ts';
import { inWindow, naive, type OracleEvent, type OracleOp } from './naive-oracle.ts';
import { rng, same } from './support.ts';

const win = (label: string, sizeMs: number | null, hopMs: number): WindowDef => ({
  kind: 'window',
  label,
  sizeMs,
  hopMs,
});
const WINDOWS = [
  win('w60', 60, 5),
  win('w24', 24, 4),
  win('w7', 7, 1),
  win('w100', 100, 20),
  win('life', null, 50),
];

const agg = (op: OpName, windows: WindowDef[], k?: number): AggregationDef => ({
  kind: 'aggregation',
  op,
  input: op === 'count' ? null : 'v',
  params: k === undefined ? {} : { k },
  windows,
  names: windows.map((w) => `${op}_${w.label}`),
});

const AGGS: Array<{ def: AggregationDef; oracle: OracleOp }> = [
  { def: agg('count', WINDOWS), oracle: 'count_events' },
  { def: agg('sum', [WINDOWS[0], WINDOWS[2], WINDOWS[4]]), oracle: 'sum' },
  { def: agg('max', [WINDOWS[1], WINDOWS[3]]), oracle: 'max' },
  { def: agg('last', [WINDOWS[0], WINDOWS[4]]), oracle: 'last' },
  { def: agg('last_k', [WINDOWS[1]], 3), oracle: 'last_k3' },
  { def: agg('unique_count', [WINDOWS[0], WINDOWS[3]]), oracle: 'unique_count' },
];

const groupBy: GroupByDef = {
  kind: 'groupBy',
  name: 'g',
  keys: ['k'],
  source: {
    kind: 'source',
    name: 's',
    path: 'unused',
    format: 'auto',
    timeColumn: 'ts',
    schema: {
      k: { kind: 'column', type: 'string', nullable: false },
      v: { kind: 'column', type: 'int', nullable: true },
      ts: { kind: 'column', type: 'timestamp', nullable: false },
    },
    derived: {},
  },
  aggregations: AGGS.map((a) => a.def),
};

describe('KeySweeper (one key) against the naive oracle', () => {
  it('matches on random interleavings of events and queries, incl. ties, hop boundaries, resets', () => {
    const sweeper = new KeySweeper(groupBy, createGroupAggregator);
    const out: unknown[] = new Array(sweeper.featureCount);
    let checked = 0;
    for (let trial = 0; trial < 300; trial++) {
      const r = rng(1000 + trial);
      sweeper.reset();
      // A sorted stream: events (ts, seq) and queries (t); at equal time queries come first.
      const n = 1 + Math.floor(r() * 60);
      const items: Array<{ t: number; kind: 0 | 1; seq: number; v: number | null }> = [];
      for (let i = 0; i < n; i++) {
        const t = Math.floor(r() * 400) - 50;
        items.push({ t, kind: r() < 0.6 ? 1 : 0, seq: i, v: r() < 0.15 ? null : Math.floor(r() * 10) });
      }
      items.sort((a, b) => a.t - b.t || a.kind - b.kind || a.seq - b.seq);
      const seen: OracleEvent[] = [];
      for (const item of items) {
        if (item.kind === 1) {
          sweeper.event({ v: item.v }, item.t, item.seq);
          seen.push({ key: 'x', ts: item.t, seq: item.seq, value: item.v });
          continue;
        }
        sweeper.query(item.t, out);
        let slot = 0;
        for (const a of AGGS) {
          for (const w of a.def.windows) {
            const expected = naive(
              a.oracle,
              seen.filter((e) => inWindow(e.ts, item.t, w.sizeMs, w.hopMs)),
            );
            if (!same(out[slot], expected)) {
              throw new Error(
                `trial ${trial} t=${item.t} ${a.def.op}/${w.label}: got ${JSON.stringify(out[slot])}, expected ${JSON.stringify(expected)}`,
              );
            }
            slot++;
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });
});
