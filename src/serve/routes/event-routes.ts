import type { FastifyInstance } from 'fastify';
import type { SourceDef } from '../../define/types.ts';
import type { ServeMetrics } from '../metrics.ts';
import { RequestError } from '../request-rows.ts';
import { parseEventsBody } from '../request-schema.ts';

/** What ingest reports back; `offsets` lets callers (and freshness benchmarks) wait for their events. */
export interface IngestOutcome {
  readonly accepted: number;
  readonly offsets?: readonly { partition: number; first: number; count: number }[];
}

/**
 * Appends events to a source's log after validating them against the source schema. It throws an error
 * with `statusCode` 400 (or any error whose name ends in `ValidationError`) for bad events.
 */
export type IngestFn = (
  source: SourceDef,
  events: readonly Record<string, unknown>[],
) => Promise<IngestOutcome>;

/**
 * `POST /v1/events/:source` with `{ events: [...] }` or a bare JSON array → `{ source, accepted, offsets }`.
 * A batch is all-or-nothing: one invalid event rejects the batch with 400 naming the event and column, so a
 * client can fix and resend it without duplicating the valid part. A broker that does not answer gives
 * 503 `unavailable` (the error's `statusCode`, log-unavailable.ts), within about its reply timeout: the
 * message says whether nothing was appended (resend) or the outcome is unknown (`AppendOutcomeUnknownError`:
 * the batch may be in the log, so resending it may duplicate events).
 */
export function registerEventRoutes(
  app: FastifyInstance,
  sources: readonly SourceDef[],
  ingest: IngestFn | undefined,
  metrics: ServeMetrics,
): void {
  const byName = new Map(sources.map((s) => [s.name, s]));
  app.post<{ Params: { source: string } }>('/v1/events/:source', async (req) => {
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
    const body = parseEventsBody(req.body);
    if (!body.ok) throw new RequestError(`invalid events for source '${source.name}': ${body.message}`);
    try {
      const outcome = await ingest(source, body.events);
      metrics.eventsIngested.labels(source.name).inc(outcome.accepted);
      return { source: source.name, ...outcome };
    } catch (error) {
      if (isClientError(error)) {
        metrics.eventsRejected.labels(source.name).inc(body.events.length);
        const issues = (error as { issues?: unknown }).issues;
        throw new RequestError((error as Error).message, 400, Array.isArray(issues) ? issues : undefined);
      }
      throw error;
    }
  });
}

function isClientError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const status = (error as { statusCode?: unknown }).statusCode;
  return status === 400 || /ValidationError$|BadInputError$|BadEventError$/.test(error.name);
}
