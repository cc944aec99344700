import { parseEventTime } from '../aggregate/event-time.ts';
import { closestName } from '../define/closest-name.ts';
import type { ColumnDef, Row, SourceDef } from '../define/types.ts';

/** One problem with one ingested event, located by its index in the batch (or log offset when replaying). */
export interface EventIssue {
  readonly source: string;
  /** Where the event came from, e.g. `request body` or `file events.jsonl`. */
  readonly origin: string;
  /** 0-based index of the event in its batch or file. */
  readonly row: number;
  readonly column: string | null;
  readonly message: string;
  readonly fix: string;
}

/** Renders an issue as one line: thing, problem, fix. */
export function formatEventIssue(i: EventIssue): string {
  const col = i.column === null ? '' : `, column '${i.column}'`;
  return `source '${i.source}', ${i.origin}, row ${i.row}${col}: ${i.message}. ${i.fix}`;
}

const describe = (v: unknown) =>
  typeof v === 'string' ? `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"` : String(v);

function normalizeValue(
  def: ColumnDef,
  v: unknown,
  isTime: boolean,
): { value: Row[string] } | { error: [string, string] } {
  if (isTime || def.type === 'timestamp') {
    const ms = parseEventTime(v);
    if (ms === null)
      return {
        error: [
          `cannot parse time ${describe(v)}`,
          'Send epoch milliseconds (integer) or ISO-8601 text such as "2024-05-01T12:00:00Z".',
        ],
      };
    return { value: ms };
  }
  switch (def.type) {
    case 'string':
      if (typeof v === 'string') return { value: v };
      return { error: [`expected a string, got ${describe(v)} (${typeof v})`, 'Send a JSON string.'] };
    case 'int':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return { value: v };
      if (typeof v === 'number' && Number.isInteger(v))
        return {
          error: [
            `integer ${describe(v)} is beyond ±(2^53 − 1), where JSON numbers lose precision`,
            'Send a smaller integer, or declare the column col.string() and send it as a string.',
          ],
        };
      return {
        error: [`expected an integer, got ${describe(v)} (${typeof v})`, 'Send a whole JSON number.'],
      };
    case 'float':
      if (typeof v === 'number' && Number.isFinite(v)) return { value: v };
      return { error: [`expected a number, got ${describe(v)} (${typeof v})`, 'Send a finite JSON number.'] };
    case 'bool':
      if (typeof v === 'boolean') return { value: v };
      return { error: [`expected a boolean, got ${describe(v)} (${typeof v})`, 'Send true or false.'] };
  }
}

/**
 * What to do with an event's fields that are not schema columns: `drop` them (log records and replay files,
 * whose producers may carry more than the schema) or `reject` them (HTTP ingest, where such a field is a
 * typo or a derived column the producer should not send).
 */
export type UnknownColumns = 'drop' | 'reject';

/**
 * Fields an event may carry beyond its source's columns (schema and derived) before 'reject' mode reports
 * the count in one issue instead of one issue per field: naming each of a million stray fields took 13 s
 * and 900 MB for one event.
 */
export const MAX_EXTRA_FIELDS = 32;

/** Longest field name an issue echoes (then `…`): a client's megabyte-long name must not come back whole. */
const MAX_NAME = 60;

/** A client-sent name cut to `MAX_NAME` characters. */
export const shortName = (name: string): string =>
  name.length > MAX_NAME ? `${name.slice(0, MAX_NAME)}…` : name;

/** What 'reject' mode says of any stray field of a source, built once per source. */
interface SourceFacts {
  readonly columns: readonly string[];
  /** `'a', 'b', …` (the first 30 columns). */
  readonly listed: string;
  /** The most fields an event may have before it gets one "too many fields" issue. */
  readonly maxFields: number;
}
const factsOf = new WeakMap<SourceDef, SourceFacts>();
function sourceFacts(source: SourceDef): SourceFacts {
  let facts = factsOf.get(source);
  if (facts === undefined) {
    const columns = Object.keys(source.schema);
    const more = columns.length > 30 ? `, … (${columns.length} in all)` : '';
    const listed = `${columns
      .slice(0, 30)
      .map((c) => `'${c}'`)
      .join(', ')}${more}`;
    const maxFields = columns.length + Object.keys(source.derived).length + MAX_EXTRA_FIELDS;
    facts = { columns, listed, maxFields };
    factsOf.set(source, facts);
  }
  return facts;
}

/**
 * Validates one JSON event against a source schema and normalizes it: the time column (and every timestamp
 * column) becomes epoch ms via the shared `parseEventTime`; an absent nullable column becomes null. Fields
 * not in the schema are dropped, or with `unknownColumns: 'reject'` reported, each naming the closest
 * schema column (a typo of a nullable column would otherwise store null silently) or saying that a derived
 * column is computed, not sent; an event with more than `MAX_EXTRA_FIELDS` fields beyond the source's
 * columns gets one issue giving the count instead. Returns the row, or the issues found: the first
 * `maxIssues` of them (the caller's remaining budget; none are built past it) and `issueCount`, all of them.
 * Client-sent field names are cut to 60 characters (`shortName`) in issues.
 *
 * @example
 * validateEvent(charges, { card_id: 'c1', amount: 12.5, ts: '2024-05-01T12:00:00Z' }, 0, 'request body');
 * // { row: { card_id: 'c1', amount: 12.5, ts: 1714564800000, ip: null } }
 * validateEvent(charges, { ...event, ipp: '10.0.0.1' }, 0, 'request body', 'reject').issues?.[0].fix;
 * // "Did you mean 'ip'? Rename the field, or remove it."
 */
export function validateEvent(
  source: SourceDef,
  raw: unknown,
  row: number,
  origin: string,
  unknownColumns: UnknownColumns = 'drop',
  maxIssues = Infinity,
):
  | { row: Row; issues?: undefined; issueCount?: undefined }
  | { row?: undefined; issues: EventIssue[]; issueCount: number } {
  const issue = (column: string | null, message: string, fix: string): EventIssue => ({
    source: source.name,
    origin,
    row,
    column,
    message,
    fix,
  });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return {
      issues:
        maxIssues < 1
          ? []
          : [
              issue(
                null,
                `expected a JSON object, got ${Array.isArray(raw) ? 'an array' : describe(raw)}`,
                'Send one object per event.',
              ),
            ],
      issueCount: 1,
    };
  const input = raw as Record<string, unknown>;
  const out: Row = {};
  const issues: EventIssue[] = [];
  let count = 0;
  let present = 0;
  for (const name in source.schema) {
    const def = source.schema[name];
    const v = input[name];
    const isTime = name === source.timeColumn;
    if (v !== undefined) present++;
    if (v === undefined || v === null) {
      if (isTime) {
        if (count++ < maxIssues)
          issues.push(issue(name, 'event time is missing', `Add '${name}' as epoch ms or ISO-8601 text.`));
      } else if (!def.nullable && count++ < maxIssues)
        issues.push(
          issue(
            name,
            'required column is missing or null',
            `Add '${name}', or declare it nullable in the source schema.`,
          ),
        );
      out[name] = null;
      continue;
    }
    const r = normalizeValue(def, v, isTime);
    if ('error' in r) {
      if (count++ < maxIssues) issues.push(issue(name, r.error[0], r.error[1]));
    } else out[name] = r.value;
  }
  // Counting the fields first costs ~50 ns an event of the fraud charges (13 columns); a lookup of each
  // field cost ~275 ns (validation is ~1.6 µs).
  const fields = unknownColumns === 'reject' ? Object.keys(input).length : present;
  if (fields !== present) {
    const facts = sourceFacts(source);
    if (fields > facts.maxFields) {
      if (count++ < maxIssues) issues.push(issue(null, ...tooManyFields(source, facts, fields)));
    } else
      for (const name in input)
        if (!Object.hasOwn(source.schema, name) && count++ < maxIssues)
          issues.push(issue(shortName(name), ...unknownColumnProblem(source, facts, name, input)));
  }
  return count > 0 ? { issues, issueCount: count } : { row: out };
}

/**
 * Rows of `source` checked and normalized as `validateEvent` does, by a caller that had to check them
 * anyway: a replay's staged rows, typed by the source schema and with every row ingest would refuse left
 * out in SQL (replay-file.ts). `ingestEvents` appends them as they are instead of validating each a second
 * time (~1 µs an event). Only code can build one: a request body is plain JSON and always validated.
 * @internal
 */
export class CheckedRows {
  constructor(
    readonly source: SourceDef,
    /** Each `validateEvent(source, event).row` of its event: schema columns in schema order, normalized. */
    readonly rows: readonly Row[],
  ) {}
}

/** Problem and fix for an event with far more fields than its source has columns. */
function tooManyFields(source: SourceDef, facts: SourceFacts, fields: number): [string, string] {
  const derived = Object.keys(source.derived).length;
  return [
    `event has ${fields} fields, more than ${MAX_EXTRA_FIELDS} beyond the ${facts.columns.length} columns of source '${source.name}'${derived > 0 ? ` (and its ${derived} derived columns, computed, not sent)` : ''}; its fields were not checked one by one`,
    `Send only the source's columns: ${facts.listed}.`,
  ];
}

/** Problem and fix for a field that is not a schema column: a derived column, a near miss or a stray. */
function unknownColumnProblem(
  source: SourceDef,
  facts: SourceFacts,
  name: string,
  input: Record<string, unknown>,
): [string, string] {
  if (Object.hasOwn(source.derived, name))
    return [
      `'${name}' is a derived column: Tessera computes it from the event's schema columns (the source's derive), so it cannot be sent`,
      `Remove '${name}' from the event.`,
    ];
  const shown = shortName(name);
  const message = `unknown column '${shown}': source '${source.name}' has no such column`;
  // A column the event carries already is no suggestion (the field is then a stray, not a typo of it).
  const close = closestName(
    name,
    facts.columns.filter((c) => input[c] === undefined),
  );
  if (close !== null) return [message, `Did you mean '${close}'? Rename the field, or remove it.`];
  return [message, `Remove it, or add it to the source schema; its columns are ${facts.listed}.`];
}
