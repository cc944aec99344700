import type { AggSpec, WindowInput } from './aggregation-spec.ts';
import type { OpName } from './types.ts';

/** Ops whose input must be numeric. */
export type NumericOp = 'sum' | 'avg' | 'variance' | 'stddev' | 'approx_percentile';

/** Ops whose input needs a total order (not booleans). */
export type OrderedOp = 'min' | 'max' | 'top_k' | 'bottom_k';

type WindowLabel<W> = W extends string ? W : W extends { readonly size: infer S extends string } ? S : never;

/** Generated feature names of one aggregation in group-by `G`: `{G}_{input}_{op}_{window}` (or the overrides). */
export type AggFeatureNames<G extends string, A> =
  A extends AggSpec<infer Op, infer In, infer W extends readonly WindowInput[], infer N>
    ? [N] extends [readonly string[]]
      ? N[number]
      : `${G}_${In extends string ? `${In}_` : ''}${Op}_${WindowLabel<W[number]>}`
    : never;

type InputValue<R, In> = In extends keyof R ? NonNullable<R[In]> : never;

/** The value type a feature of `op` over input `In` of row `R` takes (DESIGN §1 empty-window values included). */
export type OpValue<Op extends OpName, R, In> = Op extends 'count' | 'unique_count'
  ? number
  : Op extends 'histogram'
    ? Record<string, number>
    : Op extends 'sum' | 'avg' | 'variance' | 'stddev' | 'approx_unique_count'
      ? number | null
      : Op extends 'min' | 'max' | 'first' | 'last'
        ? InputValue<R, In> | null
        : Op extends 'first_k' | 'last_k' | 'top_k' | 'bottom_k'
          ? InputValue<R, In>[] | null
          : Op extends 'approx_percentile'
            ? number[] | null
            : never;

type FeatureEntry<G extends string, A, R> =
  A extends AggSpec<infer Op, infer In> ? [AggFeatureNames<G, A>, OpValue<Op, R, In>] : never;

/** Feature name → value type of a group-by named `G` with aggregations `A` over rows `R`. */
export type GroupByFeatures<G extends string, A extends readonly AggSpec[], R> = {
  [E in FeatureEntry<G, A[number], R> as E[0]]: E[1];
};

type TypeName<V> = V extends string
  ? 'a string'
  : V extends boolean
    ? 'a boolean'
    : V extends number
      ? 'a number'
      : 'unknown';

/** Compile-time check of one aggregation against the source row: unknown columns and non-numeric inputs. */
export type CheckAgg<A, R> =
  A extends AggSpec<infer Op, infer In>
    ? In extends null
      ? A
      : In extends keyof R
        ? Op extends NumericOp
          ? NonNullable<R[In]> extends number
            ? A
            : `Error: ${Op} needs a numeric column, but '${In & string}' is ${TypeName<NonNullable<R[In]>>}`
          : Op extends OrderedOp
            ? NonNullable<R[In]> extends boolean
              ? `Error: ${Op} needs an ordered column, but '${In & string}' is a boolean`
              : A
            : A
        : `Error: column '${In & string}' is not in the source`
    : A;

/** @internal Element-wise `CheckAgg` over a tuple of aggregations. */
export type CheckAggs<As extends readonly unknown[], R> = { readonly [I in keyof As]: CheckAgg<As[I], R> };
