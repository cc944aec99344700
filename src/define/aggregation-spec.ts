import type { OpName, OpParams } from './types.ts';

/** A window as written: `'1h'`, `'lifetime'`, or `{ size: '1d', hop: '10m' }` to override the default hop. */
export type WindowInput = string | { readonly size: string; readonly hop?: string };

/**
 * An aggregation as written by users, before it belongs to a group-by. `groupBy` turns it into an
 * `AggregationDef` (parsed windows, feature names). The type parameters drive feature-name inference.
 */
export interface AggSpec<
  Op extends OpName = OpName,
  In extends string | null = string | null,
  W extends readonly WindowInput[] = readonly WindowInput[],
  N extends readonly string[] | undefined = readonly string[] | undefined,
> {
  readonly kind: 'aggSpec';
  readonly op: Op;
  readonly input: In;
  readonly params: OpParams;
  readonly windows: W;
  /** Feature-name overrides, one per window. */
  readonly names: N;
}

/** Options every aggregation takes. */
export interface AggOptions<W extends readonly WindowInput[], N extends readonly string[] | undefined> {
  /** One feature per window: `'5m'`, `'7d'`, `'lifetime'`, or `{ size, hop }`. */
  readonly windows: W;
  /** Override the generated feature names, one per window. */
  readonly names?: N;
}

/** @internal */
export function aggSpec<
  Op extends OpName,
  In extends string | null,
  W extends readonly WindowInput[],
  N extends readonly string[] | undefined,
>(op: Op, input: In, params: OpParams, options: AggOptions<W, N> | undefined): AggSpec<Op, In, W, N> {
  const windows = (options?.windows ?? []) as W;
  return Object.freeze({
    kind: 'aggSpec' as const,
    op,
    input,
    // Absent params are dropped (not kept as undefined) so canonical plans and hashes see one shape.
    params: Object.freeze(Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined))),
    windows: Object.freeze([...windows]) as unknown as W,
    names: (options?.names ? Object.freeze([...options.names]) : undefined) as N,
  });
}
