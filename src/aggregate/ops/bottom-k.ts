import type { ColumnType, OpParams } from '../../define/types.ts';
import type { OpSpec } from '../agg-op.ts';
import { ordered } from './accepts.ts';
import { boundedKOp } from './bounded-k.ts';
import { requireK } from './bounded-sorted.ts';
import { scalarEntry } from './k-entries.ts';

/** bottom_k(k): the k smallest values, smallest first (duplicates kept); an empty window gives null. */
export const bottomKOp = (k: number) => boundedKOp('bottom_k', k, 'smallest', scalarEntry);

export const bottomK: OpSpec = {
  name: 'bottom_k',
  accepts: ordered,
  outputType: () => 'json',
  emptyValue: () => null,
  needs: 'k',
  factory: (params: OpParams, _input: ColumnType | null) => bottomKOp(requireK('bottom_k', params.k)),
};
