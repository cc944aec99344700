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

/**
 * Copy-on-write for window aggregates: a window made of a single piece reuses it instead of cloning.
 * OWN: our clone; BORROWED: a queue aggregate (read-only); HEAD: the hop's tile under construction, which
 * events update anyway; EMPTY: no events yet (the first event of the tile makes it HEAD).
 */
const enum AccMode {
  OWN,
  BORROWED,
  HEAD,
  EMPTY,
}

interface WindowState {
  readonly sizeMs: number;
  readonly outputs: readonly Output[];
  readonly queue: TileQueue<unknown>;
  /** The whole window `[B - W, t)` for `accB`, kept up to date as events of tile `accB` arrive. */
  acc: unknown[] | null;
  /** Who `acc` belongs to (see `AccMode`); only an `OWN` acc may be updated in place. */
  accMode: AccMode;
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

/** Placeholder aggregate of an empty window (never finalized or updated). */
const EMPTY: unknown[] = [];

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
        accMode: AccMode.EMPTY,
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
        if (w.accB !== start) {
          w.acc = null; // the next query is in a later tile: rebuild there
          continue;
        }
        switch (w.accMode) {
          case AccMode.EMPTY:
            w.acc = hop.cur;
            w.accMode = AccMode.HEAD;
            break;
          case AccMode.HEAD:
            break; // it is hop.cur, updated above
          case AccMode.BORROWED:
            w.acc = hop.agg.clone(w.acc);
            w.accMode = AccMode.OWN;
            hop.agg.update(w.acc, row, ts, seq);
            break;
          case AccMode.OWN:
            hop.agg.update(w.acc, row, ts, seq);
        }
        w.dirty = true;
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
          const front = w.queue.frontAggregate();
          const back = w.queue.backAggregate();
          const pieces = (front === null ? 0 : 1) + (back === null ? 0 : 1) + (head === null ? 0 : 1);
          w.accB = b;
          w.dirty = pieces > 0;
          if (pieces === 0) {
            w.acc = EMPTY;
            w.accMode = AccMode.EMPTY;
            w.outputs.forEach((o, i) => (w.values[i] = this.emptyValues[o.slot]));
          } else if (pieces === 1) {
            w.acc = front ?? back ?? head;
            w.accMode = w.acc === head ? AccMode.HEAD : AccMode.BORROWED;
          } else {
            let acc: unknown[] | null = null;
            for (const part of [front, back, head]) {
              if (part === null) continue;
              if (acc === null) acc = hop.agg.clone(part);
              else hop.agg.merge(acc, part);
            }
            w.acc = acc;
            w.accMode = AccMode.OWN;
          }
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
