import type { Row, Scalar } from '../define/types.ts';
import { ByteReader, type ByteWriter } from './bytes.ts';
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
 *    put). Chunk: u8 RUN_FORMAT, varuint aggregation count, varuint event count, then per event
 *    `writeNumber(ts)`, `writeNumber(seq)` and the aggregation inputs as `writeScalar` (`true` for count of
 *    events, like `GroupAggregator.values`).
 * 3. Stores return the run as one extra stored entry `{ level: EVENT_RUN_LEVEL, start: 0, bytes }` after
 *    the entity's tiles; `TileSet.addEncodedTile` accepts it.
 */

/** Store level of an entity's event run (below the exact-from marker's -1; never a tile level). */
export const EVENT_RUN_LEVEL = -2;

/** Leading byte of a run chunk (tile encodings start with 1 or 2, so a misplaced run fails loudly). */
const RUN_FORMAT = 3;

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
  out.writeVarUint(events);
}

/** Writes one event of a chunk: its time, source order and the aggregations' inputs read from `row`. */
export function writeRunEvent(
  out: ByteWriter,
  agg: GroupAggregator,
  row: Row,
  ts: number,
  seq: number,
): void {
  const inputs = agg.inputs;
  out.writeNumber(ts);
  out.writeNumber(seq);
  for (let k = 0; k < inputs.length; k++) {
    const input = inputs[k];
    out.writeScalar(input === null ? true : (row[input] ?? null));
  }
}

/**
 * Calls `visit` with each event of a run (every chunk, in append order); `values` is a fresh array per
 * event (callers may keep it). Throws naming the group-by when the run is corrupt or was written for other
 * aggregations.
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
  const input = new ByteReader(bytes);
  while (!input.done) {
    const format = input.readU8();
    const count = input.readVarUint();
    if (format !== RUN_FORMAT || count !== n) {
      throw new Error(
        `group-by '${agg.groupBy.name}': stored event run is corrupt or was written for other aggregations (format ${format}, ${count} inputs, expected ${RUN_FORMAT} and ${n}); re-upload the group-by`,
      );
    }
    const events = input.readVarUint();
    for (let e = 0; e < events; e++) {
      const ts = input.readNumber();
      const seq = input.readNumber();
      const values: (Scalar | null)[] = new Array(n);
      for (let k = 0; k < n; k++) values[k] = input.readScalar();
      visit(values, ts, seq);
    }
  }
}
