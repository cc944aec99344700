import type { GroupByDef, Row } from '../define/types.ts';
import type { RowAggregator } from './row-aggregator.ts';
import { TileQueue } from './tile-queue.ts';

/** Builds the aggregator of a group-by restricted to some of its aggregations. @internal */
export type AggregatorFactory = (groupBy: GroupByDef) => RowAggregator;

interface Output {
  /** Position of the feature among the group-by's features (aggregation order, then window order). */
  readonly slot: number;
  /** Index of the aggregation inside the hop's (or lifetime's) restricted aggregator. */
  readonly local: number;
}

interface WindowState {
  readonly sizeMs: number;
  readonly outputs: readonly Output[];
  readonly queue: TileQueue<unknown>;
  /** The whole window `[B - W, t)` for `accB`, kept up to date as events of tile `accB` arrive; owned. */
  acc: unknown[] | null;
  accB: number;
  /** Whether events arrived since `values` were finalized from `acc`. */
  dirty: boolean;
  /** The last finalized outputs, by position in `outputs`. */
  readonly values: unknown[];
}

interface HopState {
  readonly hopMs: number;
  readonly agg: RowAggregator;
  readonly windows: readonly WindowState[];
  curStart: number;
  cur: unknown[] | null;
}

/**
 * The point-in-time sweep over one key: feed events in (ts, seq) order and queries in (t, rowId) order,
 * interleaved so that every event with `ts < t` comes before the query at `t` and the others after it.
 *
 * Invariants (DESIGN §1 / ARCHITECTURE decision 2; window `[B - W, t)` with `B = floor(t/h)*h`):
 * 1. Per hop `h`, events go into the tile `floor(ts/h)*h` under construction (`cur`); a tile is complete,
 *    and pushed to every window queue of that hop, once an event or query lies past its end.
 * 2. At a query, the complete tiles starting in `[B - W, B)` form the body (evicting older ones); `cur`,
 *    if it starts at `B`, is the head `[B, t)`: it holds exactly the events with `B <= ts < t`.
 * 3. Lifetime windows keep one running prefix of every event fed so far (all `ts < t`).
 * 4. Only aggregator `merge`/`clone`/`finalize` combine IRs; tiles are never mutated once pushed.
 * @internal
 */
export class KeySweeper {
  /** Number of features this sweeper produces per query. */
  readonly featureCount: number;
  private readonly hops: HopState[] = [];
  private readonly lifetimeAgg: RowAggregator | null = null;
  private readonly lifetimeOutputs: Output[] = [];
  private lifetime: unknown[] | null = null;
  private lifetimeDirty = true;
  private lifetimeValues: unknown[] = [];
  private readonly emptyValues: unknown[];

  constructor(groupBy: GroupByDef, makeAggregator: AggregatorFactory) {
    const slots = new Map<string, number>();
    const emptyOf: number[] = [];
    groupBy.aggregations.forEach((a, ai) =>
      a.windows.forEach((_, wi) => {
        slots.set(`${ai}/${wi}`, slots.size);
        emptyOf.push(ai);
      }),
    );
    this.featureCount = slots.size;
    const fullAgg = makeAggregator(groupBy);
    this.emptyValues = emptyOf.map((ai) => fullAgg.emptyValue(ai));

    // Restrict each hop (and lifetime) to the aggregations that use it, so an event updates each IR once.
    const hopSizes = new Map<number, Map<number, Array<{ ai: number; wi: number }>>>();
    const lifetimeUses: Array<{ ai: number; wi: number }> = [];
    groupBy.aggregations.forEach((a, ai) =>
      a.windows.forEach((w, wi) => {
        if (w.sizeMs === null) return void lifetimeUses.push({ ai, wi });
        let sizes = hopSizes.get(w.hopMs);
        if (!sizes) hopSizes.set(w.hopMs, (sizes = new Map()));
        let uses = sizes.get(w.sizeMs);
        if (!uses) sizes.set(w.sizeMs, (uses = []));
        uses.push({ ai, wi });
      }),
    );
    const restrict = (uses: Array<{ ai: number; wi: number }>) => {
      const aggIdx = [...new Set(uses.map((u) => u.ai))].sort((x, y) => x - y);
      const agg = makeAggregator({ ...groupBy, aggregations: aggIdx.map((ai) => groupBy.aggregations[ai]) });
      const outputs = (list: Array<{ ai: number; wi: number }>): Output[] =>
        list.map((u) => ({ slot: slots.get(`${u.ai}/${u.wi}`)!, local: aggIdx.indexOf(u.ai) }));
      return { agg, outputs };
    };
    for (const [hopMs, sizes] of [...hopSizes].sort((x, y) => x[0] - y[0])) {
      const { agg, outputs } = restrict([...sizes.values()].flat());
      const windows = [...sizes].map(([sizeMs, uses]) => ({
        sizeMs,
        outputs: outputs(uses),
        queue: new TileQueue<unknown>(agg),
        acc: null,
        accB: 0,
        dirty: true,
        values: new Array<unknown>(uses.length),
      }));
      this.hops.push({ hopMs, agg, windows, curStart: 0, cur: null });
    }
    if (lifetimeUses.length > 0) {
      const { agg, outputs } = restrict(lifetimeUses);
      this.lifetimeAgg = agg;
      this.lifetimeOutputs = outputs(lifetimeUses);
    }
  }

  /** Forgets the previous key. */
  reset(): void {
    for (const hop of this.hops) {
      hop.cur = null;
      for (const w of hop.windows) {
        w.queue.clear();
        w.acc = null;
      }
    }
    this.lifetime = null;
    this.lifetimeDirty = true;
  }

  /** Adds an event; events must come in (ts, seq) order. */
  event(row: Row, ts: number, seq: number): void {
    for (const hop of this.hops) {
      const start = Math.floor(ts / hop.hopMs) * hop.hopMs;
      if (hop.cur !== null && hop.curStart !== start) this.complete(hop);
      if (hop.cur === null) {
        hop.cur = hop.agg.init();
        hop.curStart = start;
      }
      hop.agg.update(hop.cur, row, ts, seq);
      for (const w of hop.windows) {
        if (w.acc === null) continue;
        if (w.accB === start) {
          hop.agg.update(w.acc, row, ts, seq);
          w.dirty = true;
        } else w.acc = null; // the next query is in a later tile: rebuild there
      }
    }
    if (this.lifetimeAgg !== null) {
      if (this.lifetime === null) this.lifetime = this.lifetimeAgg.init();
      this.lifetimeAgg.update(this.lifetime, row, ts, seq);
      this.lifetimeDirty = true;
    }
  }

  /** Writes the features at time `t` into `out` (length `featureCount`), given all events with `ts < t`. */
  query(t: number, out: unknown[]): void {
    for (const hop of this.hops) {
      const b = Math.floor(t / hop.hopMs) * hop.hopMs;
      if (hop.cur !== null && hop.curStart < b) this.complete(hop);
      const head = hop.cur;
      for (const w of hop.windows) {
        if (w.acc === null || w.accB !== b) {
          // Rebuild the window once per (key, hop tile); later queries in the tile reuse it.
          w.queue.evictBefore(b - w.sizeMs);
          let acc: unknown[] | null = null;
          for (const part of [w.queue.frontAggregate(), w.queue.backAggregate(), head]) {
            if (part === null) continue;
            if (acc === null) acc = hop.agg.clone(part);
            else hop.agg.merge(acc, part);
          }
          w.acc = acc ?? hop.agg.init();
          w.accB = b;
          w.dirty = acc !== null;
          if (acc === null) w.outputs.forEach((o, i) => (w.values[i] = this.emptyValues[o.slot]));
        }
        if (w.dirty) {
          w.outputs.forEach((o, i) => (w.values[i] = hop.agg.finalize(w.acc!, o.local)));
          w.dirty = false;
        }
        for (let i = 0; i < w.outputs.length; i++) out[w.outputs[i].slot] = w.values[i];
      }
    }
    if (this.lifetimeAgg !== null && this.lifetimeDirty) {
      this.lifetimeOutputs.forEach((o, i) => {
        this.lifetimeValues[i] =
          this.lifetime === null
            ? this.emptyValues[o.slot]
            : this.lifetimeAgg!.finalize(this.lifetime, o.local);
      });
      this.lifetimeDirty = false;
    }
    for (let i = 0; i < this.lifetimeOutputs.length; i++)
      out[this.lifetimeOutputs[i].slot] = this.lifetimeValues[i];
  }

  private complete(hop: HopState): void {
    for (const w of hop.windows) w.queue.push(hop.curStart, hop.cur!);
    hop.cur = null;
  }
}
