import { isColumnBuilder, toColumnDef, type ColumnBuilder } from './col.ts';
import { brokenFields, definitionBaseDir } from './definition-context.ts';
import type { IssueCollector } from './issues.ts';
import { checkName, quoteList } from './names.ts';
import type { ColumnDef, DerivedColumnDef, Row, Scalar, SourceDef, SourceFormat } from './types.ts';

const FORMATS: readonly SourceFormat[] = ['parquet', 'csv', 'jsonl', 'auto'];
const TIME_TYPES = new Set(['timestamp', 'int', 'string']);

/** @internal Validates a user source spec into a `SourceDef`, recording issues. */
export function normalizeSource(spec: Record<string, unknown>, c: IssueCollector): SourceDef {
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
      if (!checkName(c, ['schema', name], name, 'column name') || !notReserved(c, ['schema', name], name))
        continue;
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
      if (!checkName(c, path, name, 'derived column name') || !notReserved(c, path, name)) continue;
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

/**
 * @internal The columns of `source` to check references against, or undefined (skip those checks) when it is
 * not a source or, under loadRepo, its schema or derive is broken: columns dropped from them would show up
 * as unknown-column errors that only repeat the source's own.
 */
export function checkableColumns(source: unknown): ReturnType<typeof sourceColumns> | undefined {
  if (typeof source !== 'object' || source === null || (source as { kind?: unknown }).kind !== 'source')
    return undefined;
  const broken = brokenFields(source);
  return broken.has('schema') || broken.has('derive') ? undefined : sourceColumns(source as SourceDef);
}

/** Staging adds columns named `__...` (`__seq`, `__t`, `__file`, `__bad`, ...) next to a source's own. */
function notReserved(c: IssueCollector, path: readonly (string | number)[], name: string): boolean {
  if (!name.startsWith('__')) return true;
  c.add(
    'invalid_name',
    path,
    `column name '${name}' starts with '__', which Tessera reserves for the columns it adds when reading files`,
    `rename the column (e.g. '${name.replace(/^_+/, '') || 'col'}'), in the definition and the files`,
  );
  return false;
}
