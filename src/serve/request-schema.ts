import { z } from 'zod';

/** The most rows one feature request may carry; larger batches should be split by the caller. */
export const MAX_ROWS = 1000;

const keyValue = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: 'expected a string, number, boolean or null column value',
});
const row = z.record(z.string(), keyValue);
/** `at`: epoch ms, or ISO-8601 text (timezone-less text means UTC, as for event times). */
const at = z
  .union([z.number().int(), z.string().min(1)], {
    error: 'expected epoch milliseconds (integer) or ISO-8601 text',
  })
  .optional();

/** A batch of rows; the messages say what to send, not only what zod saw. */
const rows = z
  .array(row, {
    error: `expected "rows": an array of 1 to ${MAX_ROWS} objects of key columns, e.g. {"rows": [{"card_id": "c1"}]}, or a single row as {"keys": {"card_id": "c1"}}`,
  })
  .min(1, { error: 'Too small: send at least one row' })
  .max(MAX_ROWS, { error: `Too big: at most ${MAX_ROWS} rows per request; split the batch` });

/** `POST /v1/features/:join` and `POST /v1/groupbys/:name` with a batch of rows. */
export const rowsBody = z.strictObject({ rows, at });
/** The same routes with a single row of keys. */
export const keysBody = z.strictObject({ keys: row, at });

/** `POST /v1/features`: several joins for the same rows; shared group-bys are read once. */
export const multiFeaturesBody = z.strictObject({
  joins: z.array(z.string().min(1)).min(1).max(100),
  rows,
  at,
});

/** The most events one ingest request may carry (each batch is validated and appended whole). */
export const MAX_EVENTS = 100_000;

/** `POST /v1/events/:source`: `{ events: [...] }` or a bare JSON array of events. */
export const eventsBody = z
  .array(z.record(z.string(), z.unknown(), { error: 'expected an event: an object of column values' }), {
    error: `expected "events": an array of 1 to ${MAX_EVENTS} event objects, e.g. {"events": [{"ts": 1700000000000, ...}]}, or a bare JSON array of events`,
  })
  .min(1, { error: 'Too small: send at least one event' })
  .max(MAX_EVENTS, { error: `Too big: at most ${MAX_EVENTS} events per request; split the batch` });

/** A parsed feature request body: `single` tells whether to answer in the single-row shape. */
export interface ParsedFeaturesBody {
  readonly rows: Record<string, string | number | boolean | null>[];
  readonly at: number | string | undefined;
  readonly single: boolean;
}

/**
 * Validates a feature request body, choosing the single-row shape when `keys` is present so errors
 * point into the shape the caller meant (a zod union would only say "Invalid input").
 *
 * @example
 * parseFeaturesBody({ keys: { card_id: 'c1' } }); // { ok: true, value: { rows: [{ card_id: 'c1' }], at: undefined, single: true } }
 * parseFeaturesBody({ rows: [] });                 // { ok: false, message: 'rows: Too small: send at least one row' }
 */
export function parseFeaturesBody(
  body: unknown,
): { ok: true; value: ParsedFeaturesBody } | { ok: false; message: string } {
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && 'keys' in body) {
    const r = keysBody.safeParse(body);
    if (!r.success) return { ok: false, message: describeIssues(r.error) };
    return { ok: true, value: { rows: [r.data.keys], at: r.data.at, single: true } };
  }
  const r = rowsBody.safeParse(body);
  if (!r.success) return { ok: false, message: describeIssues(r.error) };
  return { ok: true, value: { rows: r.data.rows, at: r.data.at, single: false } };
}

/** Accepts `{ events: [...] }` or a bare array; returns the events or a message. */
export function parseEventsBody(
  body: unknown,
): { ok: true; events: Record<string, unknown>[] } | { ok: false; message: string } {
  const list =
    body !== null && typeof body === 'object' && !Array.isArray(body) && 'events' in body
      ? body.events
      : body;
  const r = eventsBody.safeParse(list);
  if (!r.success) return { ok: false, message: describeIssues(r.error) };
  return { ok: true, events: r.data };
}

/**
 * Renders a zod error as one line per issue with its path, e.g. `rows[3].card_id: Invalid input`.
 *
 * @example
 * const r = featuresBody.safeParse({ rows: [] });
 * if (!r.success) describeIssues(r.error); // "rows: Too small: send at least one row"
 */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path
        .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
        .join('');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}
