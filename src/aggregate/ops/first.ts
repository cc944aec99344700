import type { OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { timeExtremeOp } from './time-extreme.ts';

/** first: the value of the earliest event by (ts, seq); ties in ts go to the later source position. */
export const firstOp = timeExtremeOp('first', 'earliest');

export const first: OpSpec = {
  name: 'first',
  accepts: anyType,
  outputType: (input) => input ?? 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => firstOp,
};
