import type { ColumnBuilder, InferColumn } from './col.ts';
import { deepFreeze } from './deep-freeze.ts';
import { finishDefinition } from './definition-context.ts';
import { IssueCollector, requireSpecObject } from './issues.ts';
import { normalizeSource } from './normalize-source.ts';
import { probeSourceFunctions } from './probe-reads.ts';
import type { Row, SourceDef, SourceFormat } from './types.ts';

export { sourceColumns } from './normalize-source.ts';

/** A source schema as written by users: column name → `col.*()` builder. */
export type SchemaInput = Readonly<Record<string, ColumnBuilder>>;

/** The typed row of a schema: `{ amount: number; ip: string | null; ... }`. */
export type InferSchemaRow<S extends SchemaInput> = { -readonly [K in keyof S]: InferColumn<S[K]> };

/** A derived column: its type and a function of the typed raw row. */
export interface DeriveInput<R, C extends ColumnBuilder = ColumnBuilder> {
  readonly type: C;
  readonly fn: (row: R) => InferColumn<C> | undefined;
}

/**
 * A normalized source that also carries its row type (raw plus derived columns) and its schema as written
 * (which columns an event must send) for inference (`_` is type-only, absent at runtime).
 */
export type EventSource<
  N extends string = string,
  R = Row,
  S extends SchemaInput = SchemaInput,
> = SourceDef & {
  readonly name: N;
  readonly _?: { readonly row: R; readonly schema: S };
};

/** The typed row of an event source (raw plus derived columns). */
export type InferRow<T> = T extends { readonly _?: { readonly row: infer R } } ? R : never;

export interface EventSourceSpec<
  N extends string,
  S extends SchemaInput,
  D extends Record<string, ColumnBuilder>,
> {
  /** Unique source name (letters, digits, underscores). */
  readonly name: N;
  /** A file or glob of Parquet/CSV/JSONL files; relative paths resolve against `baseDir`. */
  readonly path: string;
  /** Defaults to `auto` (by file extension). */
  readonly format?: SourceFormat;
  /** The schema column holding event time (timestamp, epoch-ms int or ISO text). */
  readonly timeColumn: keyof S & string;
  readonly schema: S;
  /** Derived columns computed from each raw row before the filter, in declaration order. */
  readonly derive?: { readonly [K in keyof D]: DeriveInput<InferSchemaRow<S>, D[K]> };
  /** Rows for which this returns false are not events. Sees raw and derived columns. */
  readonly filter?: (row: InferSchemaRow<S> & { -readonly [K in keyof D]: InferColumn<D[K]> }) => boolean;
  readonly owner?: string;
  readonly description?: string;
  /** Overrides the directory relative paths resolve against (default: the feature repo dir, else cwd). */
  readonly baseDir?: string;
}

/**
 * Declares a source of events: files with a schema and an event-time column, optional derived columns
 * and a row filter. Returns a frozen `SourceDef`; throws `TesseraDefinitionError` listing every problem
 * (under `loadRepo`, with the whole repo's).
 *
 * @example
 * export const charges = eventSource({
 *   name: 'charges', path: 'data/charges/*.parquet', timeColumn: 'ts',
 *   schema: { card_id: col.string(), amount: col.float(), ts: col.timestamp() },
 *   derive: { is_large: { type: col.bool(), fn: (r) => r.amount > 500 } },
 *   filter: (r) => r.amount > 0,
 * });
 * // charges.derived.is_large → { kind: 'derived', type: 'bool', ... }
 */
export function eventSource<
  const N extends string,
  const S extends SchemaInput,
  const D extends Record<string, ColumnBuilder> = {},
>(
  spec: EventSourceSpec<N, S, D>,
): EventSource<N, InferSchemaRow<S> & { -readonly [K in keyof D]: InferColumn<D[K]> }, S> {
  const c = new IssueCollector(`eventSource '${String((spec as { name?: unknown })?.name ?? '?')}'`);
  requireSpecObject(c, spec, 'eventSource', 'name, path, timeColumn, schema');
  const def = normalizeSource(spec as unknown as Record<string, unknown>, c);
  // Only once the columns the functions may read are all known.
  if (!c.issues.some((i) => i.path[0] === 'schema' || i.path[0] === 'derive')) probeSourceFunctions(def, c);
  return finishDefinition(deepFreeze(def), c) as EventSource<N, any, S>;
}
