import type { OpName } from '../../define/types.ts';
import type { OpSpec } from '../agg-op.ts';
import { approxPercentile } from './approx-percentile.ts';
import { approxUniqueCount } from './approx-unique-count.ts';
import { avg } from './avg.ts';
import { bottomK } from './bottom-k.ts';
import { count } from './count.ts';
import { first } from './first.ts';
import { firstK } from './first-k.ts';
import { histogram } from './histogram.ts';
import { last } from './last.ts';
import { lastK } from './last-k.ts';
import { max } from './max.ts';
import { min } from './min.ts';
import { stddev } from './stddev.ts';
import { sum } from './sum.ts';
import { topK } from './top-k.ts';
import { uniqueCount } from './unique-count.ts';
import { variance } from './variance.ts';

/**
 * Every op by name: validation (`accepts`, `needs`, `outputType`), empty-window values and runtime factories.
 *
 * @example
 * const op = opSpecs.top_k.factory({ k: 3 }, 'float');
 * let ir = op.init(); ir = op.update(ir, 4.5, ts, seq); op.finalize(ir); // [4.5]
 */
export const opSpecs: Readonly<Record<OpName, OpSpec>> = Object.freeze({
  count,
  sum,
  avg,
  min,
  max,
  variance,
  stddev,
  first,
  last,
  first_k: firstK,
  last_k: lastK,
  top_k: topK,
  bottom_k: bottomK,
  unique_count: uniqueCount,
  approx_unique_count: approxUniqueCount,
  approx_percentile: approxPercentile,
  histogram,
});

/** All op names, in the order DESIGN §1 lists them. */
export const OP_NAMES = Object.keys(opSpecs) as OpName[];
