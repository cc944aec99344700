import type { GroupByDef, Row, SourceDef } from '../define/types.ts';
import type { EventLog, LogEntry } from './log/event-log.ts';
import { AppendOutcomeUnknownError, UNKNOWN_APPEND_ADVICE } from './log/log-unavailable.ts';
import { partitionKeyOf, streamTopics } from './topics.ts';
import { formatEventIssue, validateEvent, type EventIssue } from './validate-event.ts';

export interface IngestResult {
  /** Events appended to the log. */
  readonly accepted: number;
  /** Events rejected (only with `onBadRow: 'skip'`; with 'fail' a bad batch throws and appends nothing). */
  readonly skipped: number;
  /** The problems found, at most `maxIssues` of them. */
  readonly issues: readonly EventIssue[];
}

/** Thrown when a batch has bad events and `onBadRow` is 'fail'; `issues` lists them for 4xx responses. */
export class EventValidationError extends Error {
  constructor(
    readonly issues: readonly EventIssue[],
    readonly badRows: number,
  ) {
    super(
      `${badRows} invalid event(s); nothing was appended:\n` +
        issues.map((i) => `  - ${formatEventIssue(i)}`).join('\n') +
        (badRows > issues.length ? `\n  … and more` : ''),
    );
    this.name = 'EventValidationError';
  }
}

/**
 * Validates a batch of JSON events against a source's schema and appends them to the log (to every topic
 * of the source, see topics.ts; all-or-nothing where the log supports `appendTopics`). With `onBadRow: 'fail'` (default) a batch with any bad event is rejected
 * whole; with 'skip' bad events are counted, reported in `issues` and left out.
 *
 * A failed append rejects with the log's error: `AppendOutcomeUnknownError` (log-unavailable.ts) when the
 * batch may be in the log in part or whole, e.g. the broker did not answer in time, or a later topic's append
 * failed after an earlier topic's succeeded (logs without `appendTopics`); resending it may then duplicate
 * events (ingest is at-least-once). Any other error means nothing was appended.
 *
 * @example
 * const res = await ingestEvents(log, charges, groupBys, req.body.events, { origin: 'request body' });
 * // { accepted: 100, skipped: 0, issues: [] }
 */
export async function ingestEvents(
  log: EventLog,
  source: SourceDef,
  groupBys: readonly GroupByDef[],
  events: readonly unknown[],
  opts: { origin?: string; onBadRow?: 'fail' | 'skip'; maxIssues?: number; firstRow?: number } = {},
): Promise<IngestResult> {
  const origin = opts.origin ?? 'batch';
  const maxIssues = opts.maxIssues ?? 20;
  const rows: Row[] = [];
  const issues: EventIssue[] = [];
  let bad = 0;
  for (let i = 0; i < events.length; i++) {
    const r = validateEvent(source, events[i], (opts.firstRow ?? 0) + i, origin);
    if (r.row) rows.push(r.row);
    else {
      bad++;
      for (const issue of r.issues) if (issues.length < maxIssues) issues.push(issue);
    }
  }
  if (bad > 0 && (opts.onBadRow ?? 'fail') === 'fail') throw new EventValidationError(issues, bad);
  if (rows.length > 0) {
    const parts = streamTopics(source, groupBys, log.partitions).map((topic) => ({
      topic: topic.name,
      entries: rows.map((event): LogEntry => ({ partitionKey: partitionKeyOf(topic, event), event })),
    }));
    // All topics of the source or none (the file log journals multi-topic batches; event-log.ts).
    if (log.appendTopics) await log.appendTopics(parts);
    else
      for (let i = 0; i < parts.length; i++) {
        try {
          await log.append(parts[i].topic, parts[i].entries);
        } catch (cause) {
          if (i === 0) throw cause;
          const done = parts.slice(0, i).map((p) => `'${p.topic}'`);
          const message = (cause as Error).message.replace(/\.?$/, '.');
          // Every AppendOutcomeUnknownError carries the advice already; a plain failure needs it here.
          const advice = cause instanceof AppendOutcomeUnknownError ? '' : ` ${UNKNOWN_APPEND_ADVICE}.`;
          throw new AppendOutcomeUnknownError(
            `the batch of ${rows.length} events of source '${source.name}' was appended to topic(s) ${done.join(', ')}, but not (or not surely) to '${parts[i].topic}'${i + 1 < parts.length ? ' and the topics after it' : ''}: ${message}${advice}`,
            { cause },
          );
        }
      }
  }
  return { accepted: rows.length, skipped: bad, issues };
}
