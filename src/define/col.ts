import type { ColumnDef, ColumnType } from './types.ts';

/** The JS value a column type reads as (ints, floats and timestamps are numbers; timestamps are epoch ms). */
export type ColumnValue<T extends ColumnType> = T extends 'string'
  ? string
  : T extends 'bool'
    ? boolean
    : number;

/**
 * A column declaration in a source schema or a derived column. Immutable: `nullable()` returns a new builder.
 * Normalized to a plain `ColumnDef` by `eventSource`.
 */
export interface ColumnBuilder<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly kind: 'column';
  readonly type: T;
  readonly isNullable: N;
  /** Returns a copy of this column that may hold null. */
  nullable(): ColumnBuilder<T, true>;
}

/** The value type of a column builder, including `null` when it is nullable. */
export type InferColumn<C> =
  C extends ColumnBuilder<infer T, infer N> ? ColumnValue<T> | (N extends true ? null : never) : never;

function column<T extends ColumnType, N extends boolean>(type: T, isNullable: N): ColumnBuilder<T, N> {
  return Object.freeze({
    kind: 'column' as const,
    type,
    isNullable,
    nullable: () => column(type, true),
  });
}

/**
 * Column type builders for source schemas and derived columns.
 *
 * @example
 * const schema = { card_id: col.string(), amount: col.float(), ip: col.string().nullable(), ts: col.timestamp() };
 */
export const col = Object.freeze({
  string: () => column('string', false),
  int: () => column('int', false),
  float: () => column('float', false),
  bool: () => column('bool', false),
  /** Event time: a timestamp type, epoch-ms integer or ISO-8601 text in files; epoch ms once read. */
  timestamp: () => column('timestamp', false),
});

/** @internal Whether a value is a column builder made by `col`. */
export function isColumnBuilder(value: unknown): value is ColumnBuilder {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'column';
}

/** @internal The plain, frozen `ColumnDef` of a builder. */
export function toColumnDef(builder: ColumnBuilder): ColumnDef {
  return Object.freeze({ kind: 'column', type: builder.type, nullable: builder.isNullable });
}
