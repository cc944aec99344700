import type { ColumnType, OpParams } from '../../define/types.ts';
import type { OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { boundedKOp } from './bounded-k.ts';
import { requireK } from './bounded-sorted.ts';
import { timedEntry } from './k-entries.ts';

/** last_k(k): the last k values by (ts, seq), newest first; an empty window gives null. */
export const lastKOp = (k: number) => boundedKOp('last_k', k, 'largest', timedEntry);

export const lastK: OpSpec = {
  name: 'last_k',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => lastKOp(requireK('last_k', params.k)),
};
