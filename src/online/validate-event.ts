import { parseEventTime } from '../aggregate/event-time.ts';
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
 * Validates one JSON event against a source schema and normalizes it: the time column (and every timestamp
 * column) becomes epoch ms via the shared `parseEventTime`; fields not in the schema are dropped; an absent
 * nullable column becomes null. Returns the row, or the issues found (all of them, not just the first).
 *
 * @example
 * validateEvent(charges, { card_id: 'c1', amount: 12.5, ts: '2024-05-01T12:00:00Z' }, 0, 'request body');
 * // { row: { card_id: 'c1', amount: 12.5, ts: 1714564800000, ip: null } }
 */
export function validateEvent(
  source: SourceDef,
  raw: unknown,
  row: number,
  origin: string,
): { row: Row; issues?: undefined } | { row?: undefined; issues: EventIssue[] } {
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
      issues: [
        issue(
          null,
          `expected a JSON object, got ${Array.isArray(raw) ? 'an array' : describe(raw)}`,
          'Send one object per event.',
        ),
      ],
    };
  const input = raw as Record<string, unknown>;
  const out: Row = {};
  const issues: EventIssue[] = [];
  for (const name in source.schema) {
    const def = source.schema[name];
    const v = input[name];
    const isTime = name === source.timeColumn;
    if (v === undefined || v === null) {
      if (isTime)
        issues.push(issue(name, 'event time is missing', `Add '${name}' as epoch ms or ISO-8601 text.`));
      else if (!def.nullable)
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
    if ('error' in r) issues.push(issue(name, r.error[0], r.error[1]));
    else out[name] = r.value;
  }
  return issues.length ? { issues } : { row: out };
}
