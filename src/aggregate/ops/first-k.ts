import type { ColumnType, OpParams } from '../../define/types.ts';
import type { OpSpec } from '../agg-op.ts';
import { anyType } from './accepts.ts';
import { boundedKOp } from './bounded-k.ts';
import { requireK } from './bounded-sorted.ts';
import { timedEntry } from './k-entries.ts';

/** first_k(k): the first k values by (ts, seq), oldest first; an empty window gives null. */
export const firstKOp = (k: number) => boundedKOp('first_k', k, 'smallest', timedEntry);

export const firstK: OpSpec = {
  name: 'first_k',
  accepts: anyType,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => firstKOp(requireK('first_k', params.k)),
};
