import { parseEventTime } from '../aggregate/event-time.ts';
import type { ColumnType, JoinDef, Row, Scalar } from '../define/types.ts';
import { shortName } from '../online/validate-event.ts';

/** A request problem the HTTP layer answers with 400 and this message. */
export class RequestError extends Error {
  readonly statusCode: number;
  /** Structured problems (e.g. one per bad event) returned alongside the message. */
  readonly issues: readonly unknown[] | undefined;
  /** How many problems there are in all when `issues` lists only the first ones (its length otherwise). */
  readonly issueCount: number | undefined;
  constructor(message: string, statusCode = 400, issues?: readonly unknown[], issueCount?: number) {
    super(message);
    this.name = 'RequestError';
    this.statusCode = statusCode;
    this.issues = issues;
    this.issueCount = issues === undefined ? undefined : (issueCount ?? issues.length);
  }
}

/** Left columns a join's rows must carry: the columns its parts' key mappings read. */
export function requiredColumns(join: JoinDef): string[] {
  const out = new Set<string>();
  for (const part of join.parts) for (const k of part.groupBy.keys) out.add(part.keyMapping[k]!);
  return [...out];
}

interface LeftShape {
  readonly types: ReadonlyMap<string, ColumnType>;
  readonly required: readonly string[];
}

const shapes = new WeakMap<JoinDef, LeftShape>();

/** Left column types and required key columns of a join, computed once per definition. */
function shapeOf(join: JoinDef): LeftShape {
  let shape = shapes.get(join);
  if (shape === undefined) {
    const types = new Map<string, ColumnType>();
    for (const [name, c] of Object.entries(join.left.schema)) types.set(name, c.type);
    for (const [name, d] of Object.entries(join.left.derived)) types.set(name, d.type);
    shape = { types, required: requiredColumns(join) };
    shapes.set(join, shape);
  }
  return shape;
}

/**
 * Turns raw request rows into left rows for a set of joins (DESIGN §1: an online fetch at `at` answers
 * like the backfill for a left row with `ts = at`):
 * 1. every key column any join needs must be present (null is allowed and means "no entity");
 * 2. values must fit the left column type; with `fromQuery` strings are converted (`?amount=12.5`);
 * 3. columns unknown to every join's left source are rejected, so a typo never silently reads nothing;
 * 4. the left time column is set to `at` (derivations see `row.ts === at`, as the backfill's left row).
 *
 * @example
 * toLeftRows([fraudModel], [{ card_id: 'c1', merchant_id: 'm1' }], 1_700_000_000_000, false);
 * // [{ card_id: 'c1', merchant_id: 'm1', ts: 1700000000000 }]
 */
export function toLeftRows(
  joins: readonly JoinDef[],
  raw: readonly Record<string, unknown>[],
  at: number,
  fromQuery: boolean,
): Row[] {
  let types: ReadonlyMap<string, ColumnType>;
  let required: Iterable<string>;
  if (joins.length === 1) {
    ({ types, required } = shapeOf(joins[0]!));
  } else {
    const merged = new Map<string, ColumnType>();
    const all = new Set<string>();
    for (const join of joins) {
      const shape = shapeOf(join);
      for (const [name, type] of shape.types) merged.set(name, type);
      for (const c of shape.required) all.add(c);
    }
    types = merged;
    required = all;
  }
  const rows: Row[] = new Array(raw.length);
  // Messages are built only on failure (no closure or string per row or value on the way).
  for (let i = 0; i < raw.length; i++) {
    const input = raw[i]!;
    const row: Row = {};
    for (const column of required) {
      if (!(column in input)) {
        throw new RequestError(
          `missing key column '${column}'${rowOf(raw, i)}: ${joinNames(joins)} needs ${[...required].map((c) => `'${c}'`).join(', ')}; send it (${NULL_HINT})`,
        );
      }
    }
    // for-in over own keys: Object.entries built an array of pairs per row.
    for (const column in input) {
      if (!Object.hasOwn(input, column)) continue;
      const value = input[column];
      const type = types.get(column);
      if (type === undefined) {
        throw new RequestError(
          `unknown column '${shortName(column)}'${rowOf(raw, i)}: the left source of ${joinNames(joins)} has ${[...types.keys()].map((c) => `'${c}'`).join(', ')}; remove it or fix its name`,
        );
      }
      const v = coerce(value, type, fromQuery);
      if (v === BAD) throw badValue(column, rowOf(raw, i), value, type);
      row[column] = v;
    }
    for (const join of joins) row[join.left.timeColumn] = at;
    rows[i] = row;
  }
  return rows;
}

/** How to send a null key (no entity), in every syntax a request row can arrive in. */
const NULL_HINT =
  "null if unknown: JSON null; in a GET query the bare name without '=' (`?card_id=c1&ip`, while `ip=` is the empty string); `tessera fetch --key ip`";

/**
 * Splits a GET query into a row of key columns and `at`. A parameter given without `=` (`?card_id=c1&ip`) is
 * null, i.e. no entity; `ip=` stays the empty string and `ip=null` the text "null", so no real value can be
 * mistaken for a null. `query` is fastify's parse of `url` (it reads `ip` and `ip=` alike as ''), so the
 * bare names are found in the raw query string.
 *
 * @example
 * queryRow({ card_id: 'c1', ip: '' }, '/v1/features/fraud_model?card_id=c1&ip');
 * // { row: { card_id: 'c1', ip: null }, at: undefined }
 */
export function queryRow(query: unknown, url: string): { row: Record<string, unknown>; at: unknown } {
  const { at, ...row } = (query ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(row)) {
    if (Array.isArray(v))
      throw new RequestError(`query parameter '${k}' is repeated; send one value per column`);
  }
  const q = url.indexOf('?');
  if (q < 0) return { row, at };
  for (const part of url.slice(q + 1).split('&')) {
    if (part === '' || part.includes('=')) continue;
    const name = decodeQueryName(part);
    if (Object.hasOwn(row, name)) row[name] = null; // a bare `at` stays '' (now)
  }
  return { row, at };
}

/** A query parameter name as fastify's parser decodes it ('+' is a space, then percent-decoding). */
function decodeQueryName(raw: string): string {
  const spaced = raw.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** Where a request row is, for messages: nothing when the request has one row. */
const rowOf = (raw: readonly unknown[], i: number): string => (raw.length === 1 ? '' : ` in row ${i}`);

/** The joins a request names, as the caller named them (direct group-by fetches run as `groupby:<name>`). */
function joinNames(joins: readonly JoinDef[]): string {
  return joins.length === 1 && joins[0]!.name.startsWith('groupby:')
    ? `group-by '${joins[0]!.name.slice('groupby:'.length)}'`
    : `join ${joins.map((j) => `'${j.name}'`).join(', ')}`;
}

/** `coerce`'s answer for a value that does not fit its column. */
const BAD: unique symbol = Symbol('bad value');

/** A value of a left column, as the column type wants it, or BAD. */
function coerce(value: unknown, type: ColumnType, fromQuery: boolean): Scalar | null | typeof BAD {
  if (value === null) return null;
  switch (type) {
    case 'string':
      if (typeof value === 'string') return value;
      // Keys are addressed by their string form, so a numeric id sent as a number still finds its entity.
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      return BAD;
    case 'int':
    case 'float': {
      const n = typeof value === 'string' && fromQuery && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) return BAD;
      if (type === 'int' && !Number.isInteger(n)) return BAD;
      return n;
    }
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (fromQuery && (value === 'true' || value === 'false')) return value === 'true';
      return BAD;
    case 'timestamp':
      return parseEventTime(value as Scalar) ?? BAD;
  }
}

const EXPECTED: Readonly<Record<ColumnType, string>> = {
  string: 'a string',
  int: 'an integer',
  float: 'a number',
  bool: 'true or false',
  timestamp: 'epoch milliseconds or ISO-8601 text',
};

function badValue(column: string, where: string, value: unknown, type: ColumnType): RequestError {
  return new RequestError(
    `column '${column}'${where} must be ${EXPECTED[type]}, got ${JSON.stringify(value)}`,
  );
}

/**
 * Resolves the `at` of a request: absent means now; epoch ms or ISO-8601 text otherwise.
 *
 * @example
 * resolveAt(undefined, () => 5); // 5
 * resolveAt('2024-01-01T00:00:00Z', Date.now); // 1704067200000
 */
export function resolveAt(at: unknown, now: () => number): number {
  if (at === undefined || at === null || at === '') return now();
  const t = typeof at === 'number' || typeof at === 'string' ? parseEventTime(at) : null;
  if (t === null) {
    throw new RequestError(`'at' must be epoch milliseconds or ISO-8601 text, got ${JSON.stringify(at)}`);
  }
  return t;
}
