import type { ColumnBuilder, ColumnValue } from './col.ts';
import type { GroupBy } from './group-by.ts';

/** Features of a group-by or join: `InferFeatures<typeof fraudModel>`. */
export type InferFeatures<T> = T extends { readonly _?: { readonly features: infer F } } ? F : never;

type Prettify<T> = { [K in keyof T]: T[K] } & {};
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;

/** A join part as written: a group-by, the left column for each of its keys, and an optional name prefix. */
export interface JoinPartSpec {
  readonly groupBy: GroupBy<string, string, any>;
  /** group-by key column → left column, e.g. `{ card_id: 'card_id' }`. */
  readonly keys: Readonly<Record<string, string>>;
  /** Prepended to every feature name of this part: `m` → `m_merchant_stats_...`. */
  readonly prefix?: string;
}

type PartFeatures<P> = P extends { readonly groupBy: infer G; readonly prefix: infer Pre extends string }
  ? { [K in keyof InferFeatures<G> as `${Pre}_${K & string}`]: InferFeatures<G>[K] }
  : P extends { readonly groupBy: infer G }
    ? InferFeatures<G>
    : never;

/** Feature name → value type of all parts of a join, prefixes applied. */
export type PartsFeatures<Ps extends readonly unknown[]> = Prettify<
  UnionToIntersection<{ [I in keyof Ps]: PartFeatures<Ps[I]> }[number]>
>;

/** Left columns the parts' key mappings read: the key columns every fetch row must carry. */
export type PartsKeyColumns<Ps extends readonly unknown[]> = {
  [I in keyof Ps]: Ps[I] extends { readonly keys: infer M } ? M[keyof M] : never;
}[number] &
  string;

/** Value types of derivations: their column type, or null. */
export type DerivedFeatures<D> = {
  -readonly [K in keyof D]: D[K] extends ColumnBuilder<infer T> ? ColumnValue<T> | null : never;
};

type GroupByKeys<G> = G extends { readonly _?: { readonly keys: infer K } } ? K : never;

/** Compile-time check of a part's key mapping: every group-by key mapped, to a column of the left row. */
export type CheckPart<P, L> = P extends {
  readonly groupBy: infer G extends GroupBy<string, string, any>;
  readonly keys: infer M;
}
  ? [Exclude<GroupByKeys<G>, keyof M>] extends [never]
    ? [Exclude<keyof M, GroupByKeys<G>>] extends [never]
      ? [M[keyof M]] extends [keyof L]
        ? P
        : `Error: key mapping of '${G['name']}' names a column the left source lacks: ${Exclude<M[keyof M], keyof L> & string}`
      : `Error: key mapping of '${G['name']}' has keys the group-by does not: ${Exclude<keyof M, GroupByKeys<G>> & string}`
    : `Error: key mapping of '${G['name']}' must map every group-by key; missing: ${Exclude<GroupByKeys<G>, keyof M> & string}`
  : P;

/** @internal Element-wise `CheckPart`. */
export type CheckParts<Ps extends readonly unknown[], L> = { readonly [I in keyof Ps]: CheckPart<Ps[I], L> };
