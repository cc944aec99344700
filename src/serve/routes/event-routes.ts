import type { FastifyInstance } from 'fastify';
import type { SourceDef } from '../../define/types.ts';
import { IDEMPOTENCY_HEADER, idempotencyKeyProblem } from '../../online/log/idempotency.ts';
import type { UnknownColumns } from '../../online/validate-event.ts';
import type { ServeMetrics } from '../metrics.ts';
import { RequestError } from '../request-rows.ts';
import { parseEventsBody } from '../request-schema.ts';

/** Where an ingested batch is in the log: one range per topic and partition it went to. */
export interface IngestRange {
  readonly topic?: string;
  readonly partition: number;
  readonly first: number;
  readonly count: number;
  /** Appended by an earlier request with the same `Idempotency-Key`, not now. */
  readonly replayed?: true;
}

/** What ingest reports back; `offsets` lets callers (and freshness benchmarks) wait for their events. */
export interface IngestOutcome {
  readonly accepted: number;
  /** Per topic and partition: first offset and count (the original ones when `replayed`). */
  readonly offsets?: readonly IngestRange[];
  /** The request's `Idempotency-Key` was used for this batch before: some or all of it was not appended now. */
  readonly replayed?: boolean;
  /** Events appended now (`accepted` less replayed ones; default `accepted`): counted, not answered. */
  readonly appended?: number;
}

/**
 * Appends events to a source's log after validating them against the source schema. It throws an error
 * with `statusCode` 400 (or any error whose name ends in `ValidationError`) for bad events. The route asks
 * for `unknownColumns: 'reject'` (`ingestEvents`'s option): a field that is not a schema column is then a
 * bad event, not dropped.
 */
export type IngestFn = (
  source: SourceDef,
  events: readonly Record<string, unknown>[],
  opts?: { readonly idempotencyKey?: string; readonly unknownColumns?: UnknownColumns },
) => Promise<IngestOutcome>;

/**
 * `POST /v1/events/:source` with `{ events: [...] }` or a bare JSON array → `{ source, accepted, offsets }`.
 * A batch is all-or-nothing: one invalid event rejects the batch with 400 naming the event and column, so a
 * client can fix and resend it without duplicating the valid part; the 400's `issues` lists the first 20
 * problems and `issueCount` counts them all (an event with more than 32 fields beyond the source's columns
 * is one problem, not one per field; field names are cut to 60 characters). Fields that are not schema columns are
 * invalid here (a typo of a nullable column would otherwise store null; a derived column is computed, not
 * sent), unlike in log records and replay files, where they are dropped; so are body fields besides
 * `events`. A broker that does not answer gives 503 `unavailable` (the error's `statusCode`,
 * log-unavailable.ts), within about its reply timeout: the message says whether nothing was appended
 * (resend) or the outcome is unknown (`AppendOutcomeUnknownError`: the batch may be in the log, so resending
 * it may duplicate events).
 *
 * `?unknownColumns=drop` (or the server's `unknownColumns` default, `tessera serve --ingest-unknown-columns
 * drop`) drops such fields instead, as the log does: for producers that forward whole upstream records.
 * `?unknownColumns=reject` asks for the strict check whatever the server's default.
 *
 * An `Idempotency-Key` header (1-200 printable ASCII characters, else 400) makes resending safe: the batch
 * is appended at most once per (source, key) within the log's dedupe window; a resend answers 200 with the
 * original offsets and `replayed: true` (appending only what an interrupted attempt left out), one with other
 * events 422, and a log that cannot dedupe (Kafka) refuses the header with 400, as it does two
 * `Idempotency-Key` headers (Node would join them into one value with ', ').
 */
export function registerEventRoutes(
  app: FastifyInstance,
  sources: readonly SourceDef[],
  ingest: IngestFn | undefined,
  metrics: ServeMetrics,
  defaultUnknownColumns: UnknownColumns = 'reject',
): void {
  // From code (createServeApp, startEmbedded), not the CLI's checked option: 'Reject' must not mean drop.
  if (!UNKNOWN_COLUMNS_MODES.includes(defaultUnknownColumns))
    throw new Error(
      `ingestUnknownColumns must be 'reject' or 'drop', got ${JSON.stringify(defaultUnknownColumns)}`,
    );
  const byName = new Map(sources.map((s) => [s.name, s]));
  app.post<{ Params: { source: string }; Querystring: Record<string, unknown> }>(
    '/v1/events/:source',
    async (req) => {
      const source = byName.get(req.params.source);
      if (source === undefined) {
        const known = [...byName.keys()].map((n) => `'${n}'`).join(', ') || 'none';
        throw new RequestError(`unknown source '${req.params.source}'; this server ingests ${known}`, 404);
      }
      if (ingest === undefined) {
        throw new RequestError(
          'this server has no event log; start it with `tessera serve` to ingest events',
          501,
        );
      }
      const key = idempotencyKeyOf(req.raw.rawHeaders);
      if (key !== undefined) {
        const problem = idempotencyKeyProblem(key);
        if (problem !== null) throw new RequestError(problem);
      }
      const unknownColumns = unknownColumnsOf(req.query, defaultUnknownColumns);
      const body = parseEventsBody(req.body);
      if (!body.ok) throw new RequestError(`invalid events for source '${source.name}': ${body.message}`);
      try {
        const { appended, ...outcome } = await ingest(
          source,
          body.events,
          key === undefined ? { unknownColumns } : { idempotencyKey: key, unknownColumns },
        );
        // Replayed events were counted by the request that appended them (if it got an answer).
        const counted = appended ?? outcome.accepted;
        if (counted > 0) metrics.eventsIngested.labels(source.name).inc(counted);
        return { source: source.name, ...outcome };
      } catch (error) {
        if (isClientError(error)) {
          metrics.eventsRejected.labels(source.name).inc(body.events.length);
          const { issues, issueCount } = error as { issues?: unknown; issueCount?: unknown };
          throw new RequestError(
            (error as Error).message,
            400,
            Array.isArray(issues) ? issues : undefined,
            typeof issueCount === 'number' ? issueCount : undefined,
          );
        }
        throw error;
      }
    },
  );
}

const UNKNOWN_COLUMNS_MODES: readonly UnknownColumns[] = ['reject', 'drop'];

/** The `unknownColumns` query parameter (the only one this route takes), else the server's default. */
function unknownColumnsOf(query: Record<string, unknown>, fallback: UnknownColumns): UnknownColumns {
  for (const name of Object.keys(query))
    if (name !== 'unknownColumns')
      throw new RequestError(
        `unknown query parameter '${name.slice(0, 60)}' for POST /v1/events/:source; the only one is unknownColumns=reject|drop`,
      );
  const mode = query.unknownColumns;
  if (mode === undefined) return fallback;
  if (typeof mode === 'string' && (UNKNOWN_COLUMNS_MODES as readonly string[]).includes(mode))
    return mode as UnknownColumns;
  throw new RequestError(
    `unknownColumns must be reject or drop (once), got ${JSON.stringify(mode).slice(0, 60)}; drop ignores fields that are not source columns, reject refuses the batch`,
  );
}

/**
 * The request's `Idempotency-Key` from its raw headers; a RequestError (400) if it has several (Node joins
 * them into `a, b`, which would be taken for one key).
 */
function idempotencyKeyOf(rawHeaders: readonly string[]): string | undefined {
  const name = IDEMPOTENCY_HEADER.toLowerCase();
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i].toLowerCase() === name) values.push(rawHeaders[i + 1]);
  if (values.length > 1)
    throw new RequestError(
      `${IDEMPOTENCY_HEADER} was sent ${values.length} times; send it once, with one key per batch`,
    );
  return values[0];
}

function isClientError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const status = (error as { statusCode?: unknown }).statusCode;
  return status === 400 || /ValidationError$|BadInputError$|BadEventError$/.test(error.name);
}
