import type { GroupByDef, Row, SourceDef } from '../define/types.ts';
import type { AppendResult, EventLog, LogEntry } from './log/event-log.ts';
import {
  IdempotencyCapacityError,
  IdempotencyConflictError,
  idempotencyKeyProblem,
  IdempotencyUnsupportedError,
} from './log/idempotency.ts';
import { AppendOutcomeUnknownError, unknownAppendAdvice } from './log/log-unavailable.ts';
import { partitionKeyOf, streamTopics } from './topics.ts';
import {
  CheckedRows,
  formatEventIssue,
  validateEvent,
  type EventIssue,
  type UnknownColumns,
} from './validate-event.ts';

export interface IngestResult {
  /** Events appended to the log. */
  readonly accepted: number;
  /** Events rejected (only with `onBadRow: 'skip'`; with 'fail' a bad batch throws and appends nothing). */
  readonly skipped: number;
  /** The problems found, at most `maxIssues` of them. */
  readonly issues: readonly EventIssue[];
  /** How many problems were found in all (`issues` lists the first `maxIssues`). */
  readonly issueCount: number;
  /** Where the events are: per topic and partition, first offset and count (the original ones if replayed). */
  readonly offsets: readonly IngestOffsets[];
  /**
   * With an idempotency key: the key had been used for this batch before, so some or all of it was in the
   * log already and was not appended again (all of it when every range in `offsets` is `replayed`).
   */
  readonly replayed: boolean;
  /**
   * Events this call appended (the most over the source's topics); `accepted` less the replayed ones, e.g.
   * for counting ingested events once.
   */
  readonly appended: number;
}

/** One range of an ingested batch in the log. */
export interface IngestOffsets {
  readonly topic: string;
  readonly partition: number;
  readonly first: number;
  readonly count: number;
  /** Appended by an earlier request with the same idempotency key. */
  readonly replayed?: true;
}

/**
 * Thrown when a batch has bad events and `onBadRow` is 'fail'; `issues` lists the first of them for 4xx
 * responses, and the message says how many there are in all when it is more.
 */
export class EventValidationError extends Error {
  constructor(
    readonly issues: readonly EventIssue[],
    readonly badRows: number,
    /** Problems found in all; `issues` may hold only the first ones. */
    readonly issueCount = Math.max(issues.length, badRows),
  ) {
    const listed =
      issueCount > issues.length ? `; the first ${issues.length} of ${issueCount} issues are listed` : '';
    super(
      `${badRows} invalid event(s); nothing was appended${listed}:\n` +
        issues.map((i) => `  - ${formatEventIssue(i)}`).join('\n') +
        (issueCount > issues.length
          ? `\n  … and ${issueCount - issues.length} more issue(s): fix these and resend to see them`
          : ''),
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
 * events (ingest is at-least-once). Any other error means nothing was appended, except a keyed batch's
 * `IdempotencyConflictError` or `IdempotencyCapacityError` on a later topic (a race the log's
 * `checkKeyedAppend` leaves open), whose message names the topics appended.
 *
 * With `idempotencyKey` (1-200 printable ASCII characters; idempotency.ts), each (topic, partition) of the
 * batch is appended at most once per key within the log's dedupe window, so resending the batch with the key
 * after an unknown outcome is safe: it appends only what is missing and reports the original offsets
 * (`replayed`). Other events under a used key reject with `IdempotencyConflictError` (422); a log that cannot
 * dedupe (Kafka) rejects the key with `IdempotencyUnsupportedError` (400) before appending anything. Logs
 * without `appendTopics` are first asked whether every topic can take the keyed batch (`checkKeyedAppend`),
 * so a lasting refusal (422, or `IdempotencyCapacityError` 503 naming the setting) appends nowhere.
 *
 * @example
 * const res = await ingestEvents(log, charges, groupBys, req.body.events, { origin: 'request body' });
 * // { accepted: 100, skipped: 0, issues: [] }
 *
 * `events` may be `CheckedRows` of this source (validate-event.ts): rows checked already, appended as they are.
 */
export async function ingestEvents(
  log: EventLog,
  source: SourceDef,
  groupBys: readonly GroupByDef[],
  events: readonly unknown[] | CheckedRows,
  opts: {
    origin?: string;
    onBadRow?: 'fail' | 'skip';
    /** Fields that are not schema columns: dropped (default) or rejected as issues (HTTP ingest). */
    unknownColumns?: UnknownColumns;
    maxIssues?: number;
    firstRow?: number;
    idempotencyKey?: string;
  } = {},
): Promise<IngestResult> {
  const key = opts.idempotencyKey;
  if (key !== undefined) {
    const problem = idempotencyKeyProblem(key);
    if (problem !== null) throw Object.assign(new Error(problem), { statusCode: 400 });
    if (log.idempotentAppends !== true) throw new IdempotencyUnsupportedError(log.kind);
  }
  const appendOpts = key === undefined ? undefined : { idempotencyKey: key };
  const origin = opts.origin ?? 'batch';
  const maxIssues = opts.maxIssues ?? 20;
  const checked = events instanceof CheckedRows && events.source === source;
  const rows: Row[] = checked ? [...events.rows] : [];
  const issues: EventIssue[] = [];
  const unknownColumns = opts.unknownColumns ?? 'drop';
  let bad = 0;
  let issueCount = 0;
  const unchecked = checked ? [] : events instanceof CheckedRows ? events.rows : events;
  for (let i = 0; i < unchecked.length; i++) {
    // The remaining budget: issues past the first `maxIssues` are counted, not built.
    const r = validateEvent(
      source,
      unchecked[i],
      (opts.firstRow ?? 0) + i,
      origin,
      unknownColumns,
      maxIssues - issues.length,
    );
    if (r.row) rows.push(r.row);
    else {
      bad++;
      issueCount += r.issueCount;
      for (const issue of r.issues) issues.push(issue);
    }
  }
  if (bad > 0 && (opts.onBadRow ?? 'fail') === 'fail')
    throw new EventValidationError(issues, bad, issueCount);
  const results: AppendResult[] = [];
  let parts: { topic: string; entries: LogEntry[] }[] = [];
  if (rows.length > 0) {
    parts = streamTopics(source, groupBys, log.partitions).map((topic) => ({
      topic: topic.name,
      entries: rows.map((event): LogEntry => ({ partitionKey: partitionKeyOf(topic, event), event })),
    }));
    // All topics of the source or none (the file log journals multi-topic batches; event-log.ts).
    if (log.appendTopics) results.push(...(await log.appendTopics(parts, appendOpts)));
    else {
      if (appendOpts !== undefined && log.checkKeyedAppend) await log.checkKeyedAppend(parts, appendOpts);
      for (let i = 0; i < parts.length; i++) {
        try {
          results.push(await log.append(parts[i].topic, parts[i].entries, appendOpts));
        } catch (cause) {
          if (i === 0) throw cause;
          const done = parts.slice(0, i).map((p) => `'${p.topic}'`);
          const rest = `'${parts[i].topic}'${i + 1 < parts.length ? ' or the topics after it' : ''}`;
          const reached = `the batch of ${rows.length} events of source '${source.name}' had been appended to topic(s) ${done.join(', ')}`;
          const why = `the log refused it after the check made before the first topic's append had passed (e.g. another batch took the key meanwhile)`;
          // Lasting refusals: a resend would fail the same way, so they are not "resend" outcomes. Their own
          // "nothing was appended" is true of this topic only.
          if (cause instanceof IdempotencyConflictError)
            throw new IdempotencyConflictError(
              cause.key,
              cause.where,
              `${reached}, nothing to ${rest}: ${why}`,
              { cause },
            );
          if (cause instanceof IdempotencyCapacityError)
            throw new IdempotencyCapacityError(
              `${cause.message.replace(/nothing was appended/g, `nothing was appended to ${rest}`).replace(/\.?$/, '.')} But ${reached}: ${why}.`,
              { cause },
            );
          const message = (cause as Error).message.replace(/\.?$/, '.');
          // Every AppendOutcomeUnknownError carries the advice already; a plain failure needs it here.
          const advice =
            cause instanceof AppendOutcomeUnknownError ? '' : ` ${unknownAppendAdvice(key !== undefined)}.`;
          throw new AppendOutcomeUnknownError(
            `the batch of ${rows.length} events of source '${source.name}' was appended to topic(s) ${done.join(', ')}, but not (or not surely) to '${parts[i].topic}'${i + 1 < parts.length ? ' and the topics after it' : ''}: ${message}${advice}`,
            { cause },
          );
        }
      }
    }
  }
  const offsets = results.flatMap((ranges, i) =>
    ranges.map((r): IngestOffsets => ({ topic: parts[i].topic, ...r })),
  );
  const replayed = offsets.some((r) => r.replayed === true);
  const appended = replayed
    ? Math.max(0, ...results.map((ranges) => ranges.reduce((n, r) => n + (r.replayed ? 0 : r.count), 0)))
    : rows.length;
  return { accepted: rows.length, skipped: bad, issues, issueCount, offsets, replayed, appended };
}
