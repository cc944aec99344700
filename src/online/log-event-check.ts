import type { Row, SourceDef } from '../define/types.ts';
import { validateEvent } from './validate-event.ts';

/**
 * What a log adapter returns for a record that holds no JSON (see `decodeLogEvent`): the stream worker
 * counts it as invalid and skips it (`logEventCheck`) instead of every read of its partition failing.
 */
export class UndecodableEvent {
  constructor(
    /** What is wrong, completing "the record …", e.g. `has no value`. */
    readonly problem: string,
  ) {}
}

/**
 * Decodes one log record's JSON text (null: a record without a value, e.g. a Kafka tombstone) for
 * `LogRecord.event`. A record that is not JSON, written to Kafka, NATS or Redis Streams by another producer
 * than ingest, becomes an `UndecodableEvent`, which the stream worker counts and skips, so one bad record
 * cannot fail every read of its partition.
 *
 * @example
 * out.push({ offset, event: decodeLogEvent(m.value?.toString() ?? null) });
 */
export function decodeLogEvent(text: string | null): Row {
  if (text === null) return new UndecodableEvent('has no value') as unknown as Row;
  try {
    return JSON.parse(text) as Row;
  } catch (cause) {
    const head = text.length > 80 ? text.slice(0, 80) + '…' : text;
    return new UndecodableEvent(
      `is not JSON (${(cause as Error).message}; it starts ${JSON.stringify(head)})`,
    ) as unknown as Row;
  }
}

/**
 * A stream worker's check of each log event, built once per source. Ingest appends only rows that
 * `validateEvent` accepted, normalized (event-log.ts contract 3), but producers writing to the broker
 * directly skip it, and an event the worker cannot apply must not stop its partition (every later event
 * would wait behind it for good): the worker counts such events as invalid and skips them.
 *
 * `check(event, offset)` returns null for an event to apply, or why it is invalid (column, problem and fix,
 * from `validateEvent`). A valid event that is not normalized yet (e.g. ISO-8601 time text) is normalized
 * in place, as ingest would have stored it. Only events that are not already normalized pay for
 * `validateEvent`: a row whose every schema column holds its normalized type (or null/absent where
 * nullable) is one `validateEvent` returns unchanged, so the fast path accepts nothing it would refuse.
 *
 * @example
 * const check = logEventCheck(charges);
 * check({ card_id: 'c1', amount: 'x', ts: 1 }, 42);
 * // "offset 42, column 'amount': expected a number, got \"x\" (string). Send a finite JSON number."
 */
export function logEventCheck(source: SourceDef): (event: Row, offset: number) => string | null {
  const names = Object.keys(source.schema);
  const isNormalized = normalizedCheck(source);
  return (event, offset) => {
    if (isNormalized(event)) return null;
    if (event instanceof UndecodableEvent)
      return `offset ${offset}: the record ${event.problem}. Have its producer write one JSON object per event, as POST /v1/events does`;
    const r = validateEvent(source, event, offset, 'log');
    if (r.issues !== undefined) {
      const shown = r.issues.slice(0, 3).map((i) => {
        const col = i.column === null ? '' : `, column '${i.column}'`;
        return `offset ${offset}${col}: ${i.message}. ${i.fix}`;
      });
      return shown.join('; ') + (r.issues.length > 3 ? ` (and ${r.issues.length - 3} more issues)` : '');
    }
    for (const name of names) event[name] = r.row[name];
    return null;
  };
}

/**
 * Whether a row is already normalized: each schema column holds its normalized type (time columns
 * epoch-ms integers, as `parseEventTime` returns them), or null/absent where nullable (never the time
 * column, which `validateEvent` requires). Generated per source with one constant property name per load:
 * a loop over the column names made every load megamorphic (~110 ns/event on the fraud charges' 13
 * columns against ~17 ns; names are embedded as JSON string literals).
 */
function normalizedCheck(source: SourceDef): (row: Row) => boolean {
  const lines = Object.entries(source.schema).map(([name, def]) => {
    const time = name === source.timeColumn || def.type === 'timestamp';
    const test =
      time || def.type === 'int'
        ? 'Number.isSafeInteger(v)'
        : def.type === 'float'
          ? "typeof v === 'number' && v - v === 0" // finite
          : def.type === 'bool'
            ? "typeof v === 'boolean'"
            : "typeof v === 'string'";
    const ifNull = name !== source.timeColumn && def.nullable ? '' : 'return false;';
    return `v = row[${JSON.stringify(name)}]; if (v === null || v === undefined) {${ifNull}} else if (!(${test})) return false;`;
  });
  return new Function(
    'row',
    `if (typeof row !== 'object' || row === null) return false;\nlet v;\n${lines.join('\n')}\nreturn true;`,
  ) as (row: Row) => boolean;
}
