import type { ColumnType, OpName, OpParams, Scalar } from '../define/types.ts';
import type { ByteReader, ByteWriter } from './bytes.ts';

/**
 * The aggregation algebra (after Chronon's BaseAggregator): every op is init/update/merge/finalize over a
 * typed intermediate representation (IR), plus encode/decode of the IR for tiles in stores.
 *
 * Contract:
 * 1. `update` and `merge` may mutate their first argument and return the result; callers must use the
 *    return value (IRs of scalar ops such as `sum` are plain numbers).
 * 2. `merge(a, b)` never mutates `b`, and the result never aliases mutable parts of `b`
 *    (so one decoded tile can be merged into many windows).
 * 3. `update` is only called with non-null values; null-skipping happens in the caller. `count` without an
 *    input column is updated with `true` once per event.
 * 4. The result of `finalize` depends only on the multiset of (value, ts, seq) updates, never on how they
 *    were split into IRs or in which order IRs were merged. `seq` is source order (offline: row order over
 *    files; online: log offset) and breaks ties in `ts` for first/last/first_k/last_k.
 * 5. `finalize` does not mutate the IR.
 * 6. `decode(encode(ir))` finalizes to the same value as `ir`.
 * 7. Functions never read `this`: callers may call them detached (GroupAggregator keeps them in arrays).
 */
export interface AggOp<In = Scalar, Ir = unknown, Out = unknown> {
  readonly name: OpName;
  init(): Ir;
  update(ir: Ir, value: In, ts: number, seq: number): Ir;
  merge(a: Ir, b: Ir): Ir;
  finalize(ir: Ir): Out;
  clone(ir: Ir): Ir;
  encode(ir: Ir, out: ByteWriter): void;
  decode(input: ByteReader): Ir;
  /**
   * Optional `merge(acc, decode(input))` without building the decoded IR, with the same arithmetic (so the
   * same result): serving merges most stored tiles this way, and the IR objects were most of its garbage.
   */
  mergeDecoded?(acc: Ir, input: ByteReader): Ir;
  /** Optional `init()` that reuses `ir`'s storage (the caller drops `ir`); ops without it get `init()`. */
  reset?(ir: Ir): Ir;
  /**
   * True when tiles must apply every event to every tile with `update` instead of merging a batch's
   * delta IR into them (tiles.ts invariant 13): when `merge` may round differently from the updates it
   * stands for (float sums; int sums past 2^53 split the exact total into (s, c) differently: stored bytes
   * would then depend on how events were batched), or costs more than them (a dense HyperLogLog merges all
   * its registers). Every other op's `merge` of a batch's IR must give exactly the IR (and bytes) that
   * updating with the batch's events one by one gives, ties included (equal values that encode differently,
   * 0 and -0, or equal (ts, seq)): `merge(a, b)` keeps the tie that updating with a's events, then b's, keeps.
   */
  readonly updatePerTile?: boolean;
}

/** Static description of an op used by validation and type inference; `factory` builds the runtime op. */
export interface OpSpec {
  readonly name: OpName;
  /** Whether the op can take this input column type. */
  accepts(type: ColumnType): boolean;
  /** Output type for an input type; `json` for arrays/maps (first_k, histogram, approx_percentile, ...). */
  outputType(input: ColumnType | null): ColumnType | 'json';
  /** Value returned for an empty window (DESIGN §1): 0 for counts, {} for histogram, else null. */
  readonly emptyValue: () => unknown;
  /** Whether the op requires `k` or `percentiles`. */
  readonly needs: 'none' | 'k' | 'percentiles';
  factory(params: OpParams, inputType: ColumnType | null): AggOp<any, any, any>;
}
