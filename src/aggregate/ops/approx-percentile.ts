import type { ColumnType, OpParams } from '../../define/types.ts';
import type { AggOp, OpSpec } from '../agg-op.ts';
import {
  ddAdd,
  ddClone,
  ddDecode,
  ddEncode,
  ddInit,
  ddMerge,
  ddQuantiles,
  type DdIr,
} from '../sketch/ddsketch.ts';
import { numeric } from './accepts.ts';

function requirePercentiles(percentiles: readonly number[] | undefined): readonly number[] {
  if (!percentiles || percentiles.length === 0 || percentiles.some((q) => !(q >= 0 && q <= 1))) {
    throw new Error(
      `approx_percentile: parameter percentiles must be a non-empty list of numbers in [0, 1] (got ${JSON.stringify(percentiles)}); e.g. { percentiles: [0.5, 0.95] }`,
    );
  }
  return percentiles.slice();
}

/**
 * approx_percentile(percentiles): one estimate per requested percentile, in the order requested, from a
 * DDSketch with relative accuracy 1% (see sketch/ddsketch.ts for the rank rule); null for an empty window.
 */
export function approxPercentileOp(percentiles: readonly number[]): AggOp<number, DdIr, number[] | null> {
  return {
    name: 'approx_percentile',
    init: ddInit,
    update: (ir, value) => ddAdd(ir, value),
    merge: ddMerge,
    finalize: (ir) => ddQuantiles(ir, percentiles),
    clone: ddClone,
    encode: ddEncode,
    decode: ddDecode,
  };
}

export const approxPercentile: OpSpec = {
  name: 'approx_percentile',
  accepts: numeric,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'percentiles',
  factory: (params: OpParams, _input: ColumnType | null) =>
    approxPercentileOp(requirePercentiles(params.percentiles)),
};
