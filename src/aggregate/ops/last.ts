import type { OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { timeExtremeOp } from './time-extreme.ts';

/** last: the value of the latest event by (ts, seq); ties in ts go to the later source position. */
export const lastOp = timeExtremeOp('last', 'latest');

export const last: OpSpec = {
  name: 'last',
  accepts: anyType,
  outputType: (input) => input ?? 'int',
  emptyValue: () => null,
  needs: 'none',
  factory: () => lastOp,
};
