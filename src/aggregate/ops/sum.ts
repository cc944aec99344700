import type { AggOp, OpSpec } from '../agg-op.ts';
import { numeric } from './accepts.ts';
import {
  sumClone,
  sumDecode,
  sumEncode,
  sumInit,
  sumMerge,
  sumMergeDecoded,
  sumReset,
  sumUpdate,
  sumValue,
  type SumIr,
} from './compensated-sum.ts';

/** sum of a float column: compensated (Neumaier), within ~1 ulp in any merge order; null for an empty window. */
export const sumOp: AggOp<number, SumIr, number | null> = {
  name: 'sum',
  init: sumInit,
  update: (ir, value) => sumUpdate(ir, value),
  merge: sumMerge,
  finalize: (ir) => (ir.n === 0 ? null : sumValue(ir)),
  clone: sumClone,
  encode: sumEncode,
  decode: sumDecode,
  mergeDecoded: sumMergeDecoded,
  reset: sumReset,
  updatePerTile: true,
};

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Marks an integer sum whose exact value the IR can no longer vouch for: `c` becomes NaN, which every later
 * update and merge (in any order) keeps, so the decision depends only on the set of values.
 */
function guard(ir: SumIr): SumIr {
  if (!(Math.abs(ir.c) <= MAX_SAFE)) ir.c = NaN;
  return ir;
}

let warned = false;

/**
 * sum of an int column: exact, or null. Why exact: with integer inputs every Neumaier correction term is an
 * integer computed without rounding, so `s + c` is exactly the true sum (even when partial sums pass 2^53),
 * as long as `c` stays a safe integer and every input is one; otherwise `c` is poisoned (NaN). A result
 * outside ±(2^53 - 1) cannot be a JS number exactly, so it finalizes to null (never a rounded value) and
 * the process gets one warning naming the fix. Same IR and stored format as the float sum.
 */
export const intSumOp: AggOp<number, SumIr, number | null> = {
  name: 'sum',
  init: sumInit,
  update(ir, value) {
    if (!Number.isSafeInteger(value)) {
      ir.n += 1;
      ir.c = NaN;
      return ir;
    }
    return guard(sumUpdate(ir, value));
  },
  merge: (a, b) => guard(sumMerge(a, b)),
  mergeDecoded: (a, input) => guard(sumMergeDecoded(a, input)),
  reset: sumReset,
  finalize(ir) {
    if (ir.n === 0) return null;
    const v = ir.s + ir.c;
    if (Number.isSafeInteger(v)) return v;
    if (!warned) {
      warned = true;
      process.emitWarning(
        'a sum of an int column left the safe-integer range ±(2^53 - 1), so its exact value cannot be a JS number; ' +
          'such features are null instead of a rounded number. Fix: sum a float column (derive one) if an ' +
          'approximate sum is acceptable, or scale the values down.',
        { code: 'TESSERA_INT_SUM_RANGE' },
      );
    }
    return null;
  },
  clone: sumClone,
  encode: sumEncode,
  decode: sumDecode,
  // Once partial sums pass 2^53, merging a batch's (s, c) splits the same exact total differently from
  // updating with its values one by one ([MAX, MAX, 1, 1, -MAX, -MAX]: (2, 0) vs (1, 1)), so tiles' bytes
  // would depend on batching (tiles.ts invariant 13); the finalized value is the same either way.
  updatePerTile: true,
};

export const sum: OpSpec = {
  name: 'sum',
  accepts: numeric,
  outputType: (input) => (input === 'int' ? 'int' : 'float'),
  emptyValue: () => null,
  needs: 'none',
  factory: (_params, inputType) => (inputType === 'int' ? intSumOp : sumOp),
};
