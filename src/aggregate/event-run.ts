import type { Row, Scalar } from '../define/types.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import type { GroupAggregator } from './group-aggregator.ts';

/**
 * Event runs: an entity's recent events kept as raw events next to its tiles, so a stream worker appends a
 * few bytes per event instead of rewriting the entity's tiles every batch (it rolls the run up into tiles
 * later, see online/worker.ts).
 *
 * Invariants:
 * 1. An event is in the entity's tiles xor in its run, never both: a window at t is the merge of its tile
 *    cover plus `updateValues` of every run event with windowStart(t) <= ts < t (lifetime: ts < t), which
 *    equals the DESIGN §1 window (AggOp contract 4: order of updates and merges does not matter).
 * 2. A run is a concatenation of chunks, so appending a chunk is appending bytes (Redis APPEND, or one
 *    put). Chunk: u8 RUN_FORMAT (4), varuint aggregation count, varuint count of distinct input columns,
 *    varuint event count, then per event `writeNumber(ts)`, `writeNumber(seq)` and each distinct input
 *    column's value as `writeScalar`, in order of first use by the aggregations (count of events reads
 *    none). Several aggregations of one column (sum, avg, max of `amount`) store it once, which keeps runs
 *    short and roll-ups rare. Readers also accept format 3 (before distinct columns): aggregation count,
 *    event count, then per event ts, seq and one `writeScalar` per aggregation (`true` for count).
 * 3. Stores return the run as one extra stored entry `{ level: EVENT_RUN_LEVEL, start: 0, bytes }` after
 *    the entity's tiles; `TileSet.addEncodedTile` accepts it.
 */

/** Store level of an entity's event run (below the exact-from marker's -1; never a tile level). */
export const EVENT_RUN_LEVEL = -2;

/** Leading byte of a run chunk (tile encodings start with 1 or 2, so a misplaced run fails loudly). */
const RUN_FORMAT = 4;
/** The earlier chunk format (one value per aggregation), still read so stored runs stay valid. */
const RUN_FORMAT_PER_AGGREGATION = 3;

/** How an aggregator's inputs map onto a chunk's distinct columns. */
interface RunLayout {
  /** Distinct input columns, in order of first use. */
  readonly columns: readonly string[];
  /** Per aggregation, its column's index in `columns`, or -1 for count of events (value `true`). */
  readonly slot: Int32Array;
}

const layouts = new WeakMap<GroupAggregator, RunLayout>();
/** The last aggregator asked for (writers call `layoutOf` per event, mostly for the same one). */
let lastAgg: GroupAggregator | null = null;
let lastLayout: RunLayout | null = null;

function layoutOf(agg: GroupAggregator): RunLayout {
  if (agg === lastAgg) return lastLayout!;
  let layout = layouts.get(agg);
  if (layout === undefined) {
    const columns: string[] = [];
    const slot = new Int32Array(agg.inputs.length);
    agg.inputs.forEach((input, k) => {
      if (input === null) slot[k] = -1;
      else {
        let c = columns.indexOf(input);
        if (c < 0) c = columns.push(input) - 1;
        slot[k] = c;
      }
    });
    layout = { columns, slot };
    layouts.set(agg, layout);
  }
  lastAgg = agg;
  lastLayout = layout;
  return layout;
}

/**
 * Starts a chunk of `events` events (each then written with `writeRunEvent`) in `out`.
 *
 * @example
 * writeRunHeader(writer, agg, 2);
 * writeRunEvent(writer, agg, row1, ts1, seq1);
 * writeRunEvent(writer, agg, row2, ts2, seq2);
 */
export function writeRunHeader(out: ByteWriter, agg: GroupAggregator, events: number): void {
  out.writeU8(RUN_FORMAT);
  out.writeVarUint(agg.inputs.length);
  out.writeVarUint(layoutOf(agg).columns.length);
  out.writeVarUint(events);
}

/** Writes one event of a chunk: its time, source order and the distinct input columns read from `row`. */
export function writeRunEvent(
  out: ByteWriter,
  agg: GroupAggregator,
  row: Row,
  ts: number,
  seq: number,
): void {
  const columns = layoutOf(agg).columns;
  out.writeNumber(ts);
  out.writeNumber(seq);
  for (let c = 0; c < columns.length; c++) out.writeScalar(row[columns[c]] ?? null);
}

/** Distinct column values of the event being read (reused). */
let columnScratch: (Scalar | null)[] = [];

/**
 * Calls `visit` with each event of a run (every chunk, in append order); `values` holds one value per
 * aggregation like `GroupAggregator.values`, in ONE array reused for every event of the call (an array per
 * event was most of a fetch's garbage with runs): copy it to keep it. Throws naming the group-by when the
 * run is corrupt or was written for other aggregations.
 *
 * @example
 * forEachRunEvent(agg, run, (values, ts, seq) => agg.updateValues(out, values, ts, seq));
 */
export function forEachRunEvent(
  agg: GroupAggregator,
  bytes: Uint8Array,
  visit: (values: (Scalar | null)[], ts: number, seq: number) => void,
): void {
  const n = agg.inputs.length;
  const { columns, slot } = layoutOf(agg);
  const m = columns.length;
  // Filled with null so the array holds tagged values: a fresh `new Array(m)` turns into a double array
  // on the first number, and then every read of it into `values` allocates a new box.
  if (columnScratch.length < m) columnScratch = new Array(m).fill(null);
  const input = new ByteReader(bytes);
  const values: (Scalar | null)[] = new Array(n).fill(null);
  while (!input.done) {
    const format = input.readU8();
    const count = input.readVarUint();
    const distinct = format === RUN_FORMAT ? input.readVarUint() : m;
    if ((format !== RUN_FORMAT && format !== RUN_FORMAT_PER_AGGREGATION) || count !== n || distinct !== m) {
      throw new Error(
        `group-by '${agg.groupBy.name}': stored event run is corrupt or was written for other aggregations (format ${format}, ${count} inputs, expected ${RUN_FORMAT} and ${n}); re-upload the group-by`,
      );
    }
    const events = input.readVarUint();
    for (let e = 0; e < events; e++) {
      const ts = input.readNumber();
      const seq = input.readNumber();
      if (format === RUN_FORMAT) {
        for (let c = 0; c < m; c++) columnScratch[c] = input.readScalar();
        for (let k = 0; k < n; k++) values[k] = slot[k] < 0 ? true : columnScratch[slot[k]];
      } else for (let k = 0; k < n; k++) values[k] = input.readScalar();
      visit(values, ts, seq);
    }
  }
}

/**
 * A batch of events whose run inputs are read from their rows and encoded ONCE for several aggregators
 * (a stream worker's group-bys share columns: `amount` feeds most of them): a run event's bytes are
 * `writeNumber(ts)`, `writeNumber(seq)` and its columns' `writeScalar` bytes (invariant 2), each
 * self-delimiting, so `writeEvent` copies them instead of re-encoding per aggregator, and `inputs` reads
 * the values from arrays instead of property lookups on the row. Reused across batches.
 *
 * @example
 * const batch = new RunBatch([aggA, aggB]);
 * batch.reset(rows.length);
 * rows.forEach((row, r) => batch.add(r, row, ts[r], seq[r]));
 * batch.reserve(rows.length + more.length); // then add events rows.length.. of the same batch
 * writeRunHeader(out, aggA, 1);
 * batch.writeEvent(out, aggA, 0);
 */
export class RunBatch {
  /** Distinct input columns of all the aggregators. */
  private readonly columns: readonly string[];
  /**
   * Per aggregator: what `writeEvent` copies of an event's encoding, as [from, to) pairs of offsets into
   * its `at` entries (0: ts; 1 + c: column c; 1 + columns: the end). Its run columns that lie next to each
   * other in `columns` (and ts + seq before column 0) are one pair, so they are copied in one go.
   */
  private readonly runRanges = new Map<GroupAggregator, Int32Array>();
  /** Per aggregator: per aggregation, its column's index in `columns` (-1: count of events). */
  private readonly inputColumns = new Map<GroupAggregator, Int32Array>();
  /** The aggregator of the last call and its entries (callers go through a batch one aggregator at a time). */
  private lastAgg: GroupAggregator | null = null;
  private lastRanges: Int32Array = new Int32Array(0);
  private lastInputs: Int32Array = new Int32Array(0);
  private readonly encoded = new ByteWriter(1 << 16);
  /** Per event `r`, at `r * (columns + 2)`: where its ts, then each column, start in `encoded`. */
  private at = new Int32Array(0);
  /** Per event `r`, at `r * columns + c`: column c's value (tagged array, see forEachRunEvent). */
  private values: (Scalar | null)[] = [];

  constructor(aggregators: readonly GroupAggregator[]) {
    const columns: string[] = [];
    const indexOf = (name: string) => {
      const c = columns.indexOf(name);
      return c >= 0 ? c : columns.push(name) - 1;
    };
    for (const agg of aggregators) {
      const ranges = [0, 1];
      for (const c of layoutOf(agg).columns.map(indexOf)) {
        if (ranges[ranges.length - 1] === 1 + c) ranges[ranges.length - 1] = 2 + c;
        else ranges.push(1 + c, 2 + c);
      }
      this.runRanges.set(agg, Int32Array.from(ranges));
      this.inputColumns.set(
        agg,
        Int32Array.from(agg.inputs, (input) => (input === null ? -1 : indexOf(input))),
      );
    }
    this.columns = columns;
  }

  /** Forgets the previous batch and makes room for events 0..n-1. */
  reset(n: number): void {
    this.encoded.reset();
    this.reserve(n);
  }

  /** Makes room for events 0..n-1, keeping the events added so far (a batch filled in several reads). */
  reserve(n: number): void {
    const stride = this.columns.length + 2;
    if (this.at.length < n * stride + 1) {
      const at = new Int32Array(Math.max(n * stride + 1, 2 * this.at.length));
      at.set(this.at);
      this.at = at;
    }
    // Grown by push: `new Array(size)` past ~16K elements makes a dictionary-mode (hash table) array.
    const size = n * this.columns.length;
    while (this.values.length < size) this.values.push(null);
  }

  /** Reads and encodes event `r` (each index once per batch, in any order before it is used). */
  add(r: number, row: Row, ts: number, seq: number): void {
    const columns = this.columns;
    const m = columns.length;
    const out = this.encoded;
    const at = this.at;
    const values = this.values;
    let k = r * (m + 2);
    at[k++] = out.length;
    out.writeNumber(ts);
    out.writeNumber(seq);
    for (let c = 0; c < m; c++) {
      at[k++] = out.length;
      const v = row[columns[c]] ?? null;
      values[r * m + c] = v;
      out.writeScalar(v);
    }
    at[k] = out.length;
  }

  /** Appends event `r` to a chunk of `agg` started with `writeRunHeader` (same bytes as `writeRunEvent`). */
  writeEvent(out: ByteWriter, agg: GroupAggregator, r: number): void {
    if (agg !== this.lastAgg) this.use(agg);
    const ranges = this.lastRanges;
    const at = this.at;
    const base = r * (this.columns.length + 2);
    const src = this.encoded;
    for (let i = 0; i < ranges.length; i += 2)
      out.writeFrom(src, at[base + ranges[i]], at[base + ranges[i + 1]]);
  }

  /** Event `r`'s input values for `agg` (one per aggregation, as `GroupAggregator.values`) into `into`. */
  inputs(agg: GroupAggregator, r: number, into: (Scalar | null)[]): (Scalar | null)[] {
    if (agg !== this.lastAgg) this.use(agg);
    const cols = this.lastInputs;
    const base = r * this.columns.length;
    const values = this.values;
    for (let k = 0; k < cols.length; k++) into[k] = cols[k] < 0 ? true : values[base + cols[k]];
    return into;
  }

  /** Makes `agg` the aggregator of `lastRanges` and `lastInputs` (a Map lookup per switch, not per event). */
  private use(agg: GroupAggregator): void {
    const ranges = this.runRanges.get(agg);
    const inputs = this.inputColumns.get(agg);
    if (ranges === undefined || inputs === undefined)
      throw new Error(
        `RunBatch: group-by '${agg.groupBy.name}' was not among the aggregators it was built for`,
      );
    this.lastAgg = agg;
    this.lastRanges = ranges;
    this.lastInputs = inputs;
  }
}
