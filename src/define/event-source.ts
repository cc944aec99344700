import { isColumnBuilder, toColumnDef, type ColumnBuilder, type InferColumn } from './col.ts';
import { deepFreeze } from './deep-freeze.ts';
import { definitionBaseDir } from './definition-context.ts';
import { IssueCollector } from './issues.ts';
import { checkName, quoteList } from './names.ts';
import type { ColumnDef, DerivedColumnDef, Row, Scalar, SourceDef, SourceFormat } from './types.ts';

/** A source schema as written by users: column name → `col.*()` builder. */
export type SchemaInput = Readonly<Record<string, ColumnBuilder>>;

/** The typed row of a schema: `{ amount: number; ip: string | null; ... }`. */
export type InferSchemaRow<S extends SchemaInput> = { -readonly [K in keyof S]: InferColumn<S[K]> };

/** A derived column: its type and a function of the typed raw row. */
export interface DeriveInput<R, C extends ColumnBuilder = ColumnBuilder> {
  readonly type: C;
  readonly fn: (row: R) => InferColumn<C> | undefined;
}

/** A normalized source that also carries its row type for inference (`_` is type-only, absent at runtime). */
export type EventSource<N extends string = string, R = Row> = SourceDef & {
  readonly name: N;
  readonly _?: { readonly row: R };
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

const FORMATS: readonly SourceFormat[] = ['parquet', 'csv', 'jsonl', 'auto'];
const TIME_TYPES = new Set(['timestamp', 'int', 'string']);

/**
 * Declares a source of events: files with a schema and an event-time column, optional derived columns
 * and a row filter. Returns a frozen `SourceDef`; throws `TesseraDefinitionError` listing every problem.
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
): EventSource<N, InferSchemaRow<S> & { -readonly [K in keyof D]: InferColumn<D[K]> }> {
  const c = new IssueCollector(`eventSource '${String((spec as { name?: unknown })?.name ?? '?')}'`);
  const def = normalizeSource(spec as unknown as Record<string, unknown>, c);
  c.throwIfAny();
  return deepFreeze(def) as EventSource<N, any>;
}

function normalizeSource(spec: Record<string, unknown>, c: IssueCollector): SourceDef {
  checkName(c, ['name'], spec.name, 'source name');
  if (typeof spec.path !== 'string' || spec.path.trim() === '') {
    c.add(
      'missing_field',
      ['path'],
      'path is missing',
      "set path to a file or glob, e.g. 'data/charges/*.parquet'",
    );
  }
  const format = (spec.format ?? 'auto') as SourceFormat;
  if (!FORMATS.includes(format)) {
    c.add(
      'invalid_value',
      ['format'],
      `format '${String(format)}' is not supported`,
      `use one of ${quoteList(FORMATS)}`,
    );
  }

  const schema: Record<string, ColumnDef> = {};
  const rawSchema = spec.schema;
  if (typeof rawSchema !== 'object' || rawSchema === null || Object.keys(rawSchema).length === 0) {
    c.add(
      'missing_field',
      ['schema'],
      'schema is missing or empty',
      'declare columns, e.g. { amount: col.float() }',
    );
  } else {
    for (const [name, column] of Object.entries(rawSchema)) {
      if (!checkName(c, ['schema', name], name, 'column name')) continue;
      if (!isColumnBuilder(column)) {
        c.add(
          'invalid_value',
          ['schema', name],
          'is not a column type',
          'use col.string(), col.int(), col.float(), col.bool() or col.timestamp()',
        );
        continue;
      }
      schema[name] = toColumnDef(column);
    }
  }

  const timeColumn = spec.timeColumn;
  if (typeof timeColumn !== 'string' || timeColumn === '') {
    c.add(
      'missing_field',
      ['timeColumn'],
      'timeColumn is missing',
      'name the schema column holding event time',
    );
  } else if (!(timeColumn in schema)) {
    if (Object.keys(schema).length > 0) {
      c.add(
        'unknown_column',
        ['timeColumn'],
        `column '${timeColumn}' is not in the schema`,
        `use one of ${quoteList(Object.keys(schema))}, or add it to the schema as col.timestamp()`,
      );
    }
  } else if (!TIME_TYPES.has(schema[timeColumn]!.type)) {
    c.add(
      'invalid_value',
      ['timeColumn'],
      `time column '${timeColumn}' has type ${schema[timeColumn]!.type}`,
      'declare it as col.timestamp() (timestamps, epoch-ms integers or ISO-8601 text)',
    );
  }

  const derived: Record<string, DerivedColumnDef> = {};
  const rawDerive = spec.derive ?? {};
  if (typeof rawDerive !== 'object' || rawDerive === null) {
    c.add(
      'invalid_value',
      ['derive'],
      'derive is not an object',
      'use { name: { type: col.float(), fn: (row) => ... } }',
    );
  } else {
    for (const [name, entry] of Object.entries(
      rawDerive as Record<string, { type?: unknown; fn?: unknown }>,
    )) {
      const path = ['derive', name];
      if (!checkName(c, path, name, 'derived column name')) continue;
      if (name in schema) {
        c.add(
          'duplicate_name',
          path,
          `derived column '${name}' has the same name as a schema column`,
          'rename the derived column',
        );
        continue;
      }
      if (!isColumnBuilder(entry?.type)) {
        c.add(
          'invalid_value',
          [...path, 'type'],
          'type is not a column type',
          'set type to col.float(), col.string(), ...',
        );
        continue;
      }
      if (typeof entry.fn !== 'function') {
        c.add('invalid_value', [...path, 'fn'], 'fn is not a function', 'set fn to (row) => value');
        continue;
      }
      const type = entry.type as ColumnBuilder;
      derived[name] = {
        kind: 'derived',
        type: type.type,
        nullable: type.isNullable,
        fn: entry.fn as (row: Row) => Scalar | null | undefined,
        code: entry.fn.toString(),
      };
    }
  }

  if (spec.filter !== undefined && typeof spec.filter !== 'function') {
    c.add(
      'invalid_value',
      ['filter'],
      'filter is not a function',
      'set filter to (row) => boolean, or remove it',
    );
  }
  const filter = typeof spec.filter === 'function' ? (spec.filter as (row: Row) => boolean) : undefined;
  const baseDir = typeof spec.baseDir === 'string' ? spec.baseDir : definitionBaseDir();

  return {
    kind: 'source',
    name: spec.name as string,
    path: spec.path as string,
    format,
    timeColumn: timeColumn as string,
    schema,
    derived,
    ...(filter ? { filter, filterCode: filter.toString() } : {}),
    ...optionalString('owner', spec.owner),
    ...optionalString('description', spec.description),
    ...(baseDir !== undefined ? { baseDir } : {}),
  };
}

function optionalString<K extends string>(key: K, value: unknown): Partial<Record<K, string>> {
  return typeof value === 'string' ? ({ [key]: value } as Record<K, string>) : {};
}

/** All columns of a source (raw and derived) with their types. */
export function sourceColumns(
  source: SourceDef,
): Map<string, { type: ColumnDef['type']; nullable: boolean }> {
  const out = new Map<string, { type: ColumnDef['type']; nullable: boolean }>();
  for (const [name, def] of Object.entries(source.schema))
    out.set(name, { type: def.type, nullable: def.nullable });
  for (const [name, def] of Object.entries(source.derived))
    out.set(name, { type: def.type, nullable: def.nullable });
  return out;
}
