import type { ColumnType, GroupByDef, OpName, Row, Scalar } from '../define/types.ts';
import type { AggOp } from './agg-op.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { opSpecs } from './ops/index.ts';

/** One IR per aggregation of a group-by, in `groupBy.aggregations` order. Opaque outside aggregate/. */
export type IrRow = unknown[];

/** Leading byte of encoded rows; bump when the layout changes so old tiles fail loudly, not silently. */
const FORMAT_VERSION = 1;
/** Leading byte of a one-event tile: the event's input values, ts and seq (cheaper than init+update+encode). */
const FORMAT_EVENT = 2;

/**
 * Ops whose `update` ignores `ts` and `seq` (a test checks each): a one-event tile of a group-by with only
 * these is merged without decoding the event's time and sequence number (a 7-byte varint and another
 * number: ~10% of applying a one-event tile). Any other op gets them decoded.
 */
const TIMELESS_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'variance',
  'stddev',
  'unique_count',
  'approx_unique_count',
  'approx_percentile',
  'histogram',
]);

/** @internal Whether an op's `update` ignores `ts` and `seq` (`TIMELESS_OPS`), for its test. */
export function ignoresTime(op: OpName): boolean {
  return TIMELESS_OPS.has(op);
}

/** One event's inputs as `values(row)` returns them, with its time and source order. */
export interface EventSnapshot {
  readonly values: readonly (Scalar | null)[];
  readonly ts: number;
  readonly seq: number;
}

/**
 * All aggregations of one group-by, run together over rows. Offline sweeps, stream workers and tiles all
 * use this, so there is one implementation of every feature value.
 *
 * Mutation contract (as in AggOp): `update` and `merge` mutate their first argument (`merge` returns it),
 * never the second; `finalize` never mutates.
 */
export interface GroupAggregator {
  readonly groupBy: GroupByDef;
  /** Runtime ops, one per aggregation. */
  readonly ops: readonly AggOp<Scalar, unknown, unknown>[];
  /** Input column per aggregation (null: count of events). */
  readonly inputs: readonly (string | null)[];
  /** A fresh row of empty IRs. */
  init(): IrRow;
  /** Empties `irs` in place (equal to `init()`, reusing what `AggOp.reset` can) and returns it. */
  reset(irs: IrRow): IrRow;
  /** Adds one event; aggregations whose input is null in `row` skip it (DESIGN §1). */
  update(irs: IrRow, row: Row, ts: number, seq: number): void;
  /** The inputs `update` would read from `row`, one per aggregation (`true` for count of events). */
  values(row: Row): (Scalar | null)[];
  /** `update` from a `values(row)` snapshot (lets callers keep an event without keeping the row). */
  updateValues(irs: IrRow, values: readonly (Scalar | null)[], ts: number, seq: number): void;
  /** Merges `b` into `a` and returns `a`; `b` is unchanged and not aliased. */
  merge(a: IrRow, b: IrRow): IrRow;
  /** Indices of the aggregations tiles may update through a batch delta (`AggOp.updatePerTile` unset). */
  readonly deltaOps: Int32Array;
  /** Indices of the other aggregations (`AggOp.updatePerTile`). */
  readonly perTileOps: Int32Array;
  /** `updateValues` for the aggregations at `indices` only. */
  updateValuesAt(
    irs: IrRow,
    values: readonly (Scalar | null)[],
    ts: number,
    seq: number,
    indices: Int32Array,
  ): void;
  /** `merge` for the aggregations at `indices` only. */
  mergeAt(a: IrRow, b: IrRow, indices: Int32Array): void;
  clone(irs: IrRow): IrRow;
  /** Compact bytes for stores (a copy; safe to keep). */
  encode(irs: IrRow): Uint8Array;
  /** Appends the encoding to `out` (lets hot loops reuse one writer). */
  encodeInto(irs: IrRow, out: ByteWriter): void;
  /**
   * Encodes a one-event tile as the event itself; `decode` accepts it (as init + update), and
   * `readEvent` returns the event without building IRs.
   */
  encodeEvent(event: EventSnapshot): Uint8Array;
  /** The event of a one-event encoding, or null for an IR-row encoding. */
  readEvent(bytes: Uint8Array): EventSnapshot | null;
  /** Decodes either encoding into an IR row. */
  decode(bytes: Uint8Array): IrRow;
  /**
   * `merge(targets[k], decode(bytes.subarray(from, to)))` for every k < count, without building the tile's
   * IR row or event, or a view of its bytes (the serving path's per-tile garbage): a one-event tile is
   * applied with `updateValues` (its time and sequence number decoded only when an op reads them,
   * `TIMELESS_OPS`), an IR row op by op with `AggOp.mergeDecoded` where the op has it. `bytes` is only read.
   */
  mergeEncoded(bytes: Uint8Array, targets: readonly IrRow[], count: number, from?: number, to?: number): void;
  /** The feature value of aggregation `aggregationIndex` for a window whose merged IRs are `irs`. */
  finalize(irs: IrRow, aggregationIndex: number): unknown;
  /** The value for an empty window / unknown key (0, {} or null per DESIGN §1). */
  emptyValue(aggregationIndex: number): unknown;
}

/** The declared type of a source column (raw or derived), or a clear error naming the group-by and fix. */
function inputType(groupBy: GroupByDef, input: string): ColumnType {
  const col = groupBy.source.schema[input] ?? groupBy.source.derived[input];
  if (!col) {
    const known = [...Object.keys(groupBy.source.schema), ...Object.keys(groupBy.source.derived)].join(', ');
    throw new Error(
      `group-by '${groupBy.name}': input column '${input}' is not in source '${groupBy.source.name}' (columns: ${known}); add it to the schema or as a derived column`,
    );
  }
  return col.type;
}

/**
 * Builds the aggregator for a group-by (validates op/type fit again, since defs can be hand-built).
 *
 * @example
 * const agg = createGroupAggregator(cardSpend);
 * const irs = agg.init();
 * agg.update(irs, { card_id: 'c1', amount: 12.5 }, ts, seq);
 * agg.finalize(irs, 0); // e.g. the sum of amount
 */
export function createGroupAggregator(groupBy: GroupByDef): GroupAggregator {
  const specs = groupBy.aggregations.map((a) => opSpecs[a.op]);
  const inputs = groupBy.aggregations.map((a) => a.input);
  const ops = groupBy.aggregations.map((a, i) => {
    const type = a.input === null ? null : inputType(groupBy, a.input);
    if (a.input === null && a.op !== 'count') {
      throw new Error(`group-by '${groupBy.name}': ${a.op} needs an input column; only count may omit it`);
    }
    if (type !== null && !specs[i].accepts(type)) {
      throw new Error(
        `group-by '${groupBy.name}': ${a.op} does not accept ${type} column '${a.input}'; convert it with a derived column or pick another op`,
      );
    }
    return specs[i].factory(a.params, type) as AggOp<Scalar, unknown, unknown>;
  });
  const n = ops.length;
  // The hot per-op functions in arrays: `ops[i].update` is a megamorphic property load (every op object has
  // its own shape), an array element is a plain load (AggOp contract 7: ops never use `this`).
  const updates = ops.map((op) => op.update);
  const merges = ops.map((op) => op.merge);
  const encodes = ops.map((op) => op.encode);
  const writer = new ByteWriter(1024);
  /** Per aggregation, the first earlier one reading the same input column (-1: none or count of events). */
  const sameInput = Int32Array.from(inputs, (input, i) => (input === null ? -1 : inputs.indexOf(input)));
  for (let i = 0; i < n; i++) if (sameInput[i] === i) sameInput[i] = -1;
  /** Where each aggregation's value starts in `writer` during `encodeEvent` (then the end, at n). */
  const valueAt = new Int32Array(n + 1);
  const checkCount = (count: number, version: number): void => {
    if (count !== n) {
      throw new Error(
        `group-by '${groupBy.name}': stored tile (format ${version}) has ${count} aggregations, expected ${n}; the definition changed without a new plan hash, re-run upload/backfill for it`,
      );
    }
  };
  const checkDone = (input: ByteReader, end: number): void => {
    if (!input.done) {
      throw new Error(
        `group-by '${groupBy.name}': ${end - input.pos} trailing bytes in a stored tile; it is corrupt`,
      );
    }
  };
  /** Reads the header of an IR-row encoding (not a one-event tile) in `bytes[from, to)`, checking it. */
  const readRowHeader = (bytes: Uint8Array, from = 0, to = bytes.length): ByteReader => {
    const input = reader.reset(bytes, from, to);
    const version = input.readU8();
    if (version !== FORMAT_VERSION) {
      throw new Error(
        `group-by '${groupBy.name}': stored tile has format ${version}, expected ${FORMAT_VERSION} or ${FORMAT_EVENT}; it was written by an incompatible version, re-run upload for this group-by`,
      );
    }
    checkCount(input.readVarUint(), version);
    return input;
  };
  // Reused by every decode (they are synchronous and never nest): one reader per tile was garbage.
  const reader = new ByteReader(new Uint8Array(0));
  /** Input values of the one-event tile `mergeEncoded` is applying (never kept: ops keep values only). */
  const eventValues: (Scalar | null)[] = new Array(n).fill(null);
  /** Whether some op reads an event's `ts`/`seq` (else `mergeEncoded` skips their bytes). */
  const readsTime = groupBy.aggregations.some((a) => !TIMELESS_OPS.has(a.op));

  const perTile = ops.map((op) => op.updatePerTile === true);
  const indicesWhere = (want: boolean) => Int32Array.from(ops.keys()).filter((i) => perTile[i] === want);

  const agg: GroupAggregator = {
    groupBy,
    ops,
    inputs,
    deltaOps: indicesWhere(false),
    perTileOps: indicesWhere(true),
    init() {
      const irs: IrRow = new Array(n);
      for (let i = 0; i < n; i++) irs[i] = ops[i].init();
      return irs;
    },
    reset(irs) {
      for (let i = 0; i < n; i++) {
        const op = ops[i];
        irs[i] = op.reset === undefined ? op.init() : op.reset(irs[i]);
      }
      return irs;
    },
    update(irs, row, ts, seq) {
      for (let i = 0; i < n; i++) {
        const input = inputs[i];
        const value = input === null ? true : row[input];
        if (value === null || value === undefined) continue;
        irs[i] = updates[i](irs[i], value, ts, seq);
      }
    },
    values(row) {
      const out: (Scalar | null)[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const input = inputs[i];
        out[i] = input === null ? true : (row[input] ?? null);
      }
      return out;
    },
    updateValues(irs, values, ts, seq) {
      for (let i = 0; i < n; i++) {
        const value = values[i];
        if (value !== null) irs[i] = updates[i](irs[i], value, ts, seq);
      }
    },
    merge(a, b) {
      for (let i = 0; i < n; i++) a[i] = merges[i](a[i], b[i]);
      return a;
    },
    updateValuesAt(irs, values, ts, seq, indices) {
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k];
        const value = values[i];
        if (value !== null) irs[i] = updates[i](irs[i], value, ts, seq);
      }
    },
    mergeAt(a, b, indices) {
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k];
        a[i] = merges[i](a[i], b[i]);
      }
    },
    clone(irs) {
      const out: IrRow = new Array(n);
      for (let i = 0; i < n; i++) out[i] = ops[i].clone(irs[i]);
      return out;
    },
    encodeInto(irs, out) {
      out.writeU8(FORMAT_VERSION);
      out.writeVarUint(n);
      for (let i = 0; i < n; i++) encodes[i](irs[i], out);
    },
    encode(irs) {
      writer.reset();
      agg.encodeInto(irs, writer);
      return writer.finishPooled();
    },
    encodeEvent(event) {
      writer.reset();
      writer.writeU8(FORMAT_EVENT);
      writer.writeVarUint(n);
      const values = event.values;
      for (let i = 0; i < n; i++) {
        const v = values[i] ?? null;
        const j = sameInput[i];
        valueAt[i] = writer.length;
        // Aggregations of one column (sum, avg, max of amount) hold one value: copy its bytes, encoded once.
        if (j >= 0 && Object.is(v, values[j] ?? null)) writer.writeFrom(writer, valueAt[j], valueAt[j + 1]);
        else writer.writeScalar(v);
        valueAt[i + 1] = writer.length;
      }
      writer.writeNumber(event.ts);
      writer.writeNumber(event.seq);
      return writer.finishPooled();
    },
    readEvent(bytes) {
      if (bytes[0] !== FORMAT_EVENT) return null;
      const input = reader.reset(bytes, 1);
      checkCount(input.readVarUint(), FORMAT_EVENT);
      const values: (Scalar | null)[] = new Array(n);
      for (let i = 0; i < n; i++) values[i] = input.readScalar();
      const ts = input.readNumber();
      const seq = input.readNumber();
      checkDone(input, bytes.length);
      return { values, ts, seq };
    },
    decode(bytes) {
      const event = agg.readEvent(bytes);
      if (event !== null) {
        const irs = agg.init();
        agg.updateValues(irs, event.values, event.ts, event.seq);
        return irs;
      }
      const input = readRowHeader(bytes);
      const irs: IrRow = new Array(n);
      for (let i = 0; i < n; i++) irs[i] = ops[i].decode(input);
      checkDone(input, bytes.length);
      return irs;
    },
    mergeEncoded(bytes, targets, count, from = 0, to = bytes.length) {
      if (count === 0) return;
      if (bytes[from] === FORMAT_EVENT) {
        const input = reader.reset(bytes, from + 1, to);
        checkCount(input.readVarUint(), FORMAT_EVENT);
        for (let i = 0; i < n; i++) eventValues[i] = input.readScalar();
        let ts = 0;
        let seq = 0;
        if (readsTime) {
          ts = input.readNumber();
          seq = input.readNumber();
        } else {
          input.skipNumber();
          input.skipNumber();
        }
        checkDone(input, to);
        for (let k = 0; k < count; k++) agg.updateValues(targets[k], eventValues, ts, seq);
        return;
      }
      const input = readRowHeader(bytes, from, to);
      for (let i = 0; i < n; i++) {
        const op = ops[i];
        if (op.mergeDecoded === undefined) {
          // Decoded once and merged into every target (merge never aliases its second argument).
          const ir = op.decode(input);
          for (let k = 0; k < count; k++) targets[k][i] = op.merge(targets[k][i], ir);
        } else {
          // Each target reads the op's bytes again: re-reading a few numbers beats allocating the IR.
          const at = input.pos;
          for (let k = 0; k < count; k++) {
            input.pos = at;
            targets[k][i] = op.mergeDecoded(targets[k][i], input);
          }
        }
      }
      checkDone(input, to);
    },

    finalize: (irs, i) => ops[i].finalize(irs[i]),
    emptyValue: (i) => specs[i].emptyValue(),
  };
  return agg;
}
