import { z } from 'zod';

/** The most rows one feature request may carry; larger batches should be split by the caller. */
export const MAX_ROWS = 1000;

/**
 * A JSON object whatever its keys: zod's `z.record` refuses one with a `constructor` field that is not a
 * function (its plain-object test reads it), and copies every field (5.4 s for an event of 1M fields).
 */
const isJsonObject = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};
const isKeyValue = (v: unknown): v is string | number | boolean | null =>
  v === null ||
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (typeof v === 'number' && Number.isFinite(v));
const row = z
  .custom<Record<string, string | number | boolean | null>>(isJsonObject, {
    error: 'expected an object of key columns, e.g. {"card_id": "c1"}',
  })
  .superRefine((r, ctx) => {
    for (const k in r)
      if (Object.hasOwn(r, k) && !isKeyValue(r[k]))
        ctx.addIssue({
          code: 'custom',
          path: [k],
          input: r[k],
          message: 'expected a string, number, boolean or null column value',
        });
  });
const AT_HINT =
  'send epoch milliseconds (an integer such as 1700000000000) or ISO-8601 text such as "2024-05-01T12:00:00Z"';
/** `at`: epoch ms, or ISO-8601 text (timezone-less text means UTC, as for event times). */
const at = z
  .union(
    [
      // zod's own range message ("expected int to be <9007199254740991") names no fix.
      z.number().int({
        error: (iss) =>
          iss.code === 'too_big' || iss.code === 'too_small'
            ? `${String(iss.input)} is beyond ±(2^53 − 1), not a time in epoch milliseconds; ${AT_HINT}`
            : `expected an integer; ${AT_HINT}`,
      }),
      z.string().min(1, { error: `is empty; ${AT_HINT}, or leave "at" out for now` }),
    ],
    { error: `expected epoch milliseconds (integer) or ISO-8601 text; ${AT_HINT}` },
  )
  .optional();

const ROWS_EXAMPLE = '{"rows": [{"card_id": "c1"}]}';
const KEYS_EXAMPLE = '{"keys": {"card_id": "c1"}}';
const MULTI_EXAMPLE = '{"joins": ["fraud_model"], "rows": [{"card_id": "c1"}]}';

/** A batch of rows; the messages say what to send, not only what zod saw. */
const rowsOf = (what: string) =>
  z
    .array(row, { error: `expected "rows": an array of 1 to ${MAX_ROWS} objects of key columns, ${what}` })
    .min(1, { error: 'Too small: send at least one row' })
    .max(MAX_ROWS, { error: `Too big: at most ${MAX_ROWS} rows per request; split the batch` });

/** The most unknown body fields a message names (then how many there are), each cut to `MAX_NAME`. */
const MAX_FIELDS_NAMED = 5;
/** Longest client-sent name a message echoes (then `…`): a megabyte-long key must not come back whole. */
const MAX_NAME = 60;
const shortName = (name: string) => (name.length > MAX_NAME ? `${name.slice(0, MAX_NAME)}…` : name);

/** zod's "Unrecognized key" names no fix: say which fields the body takes. */
const unknownFields =
  (takes: string) =>
  (iss: { code?: string; keys?: string[] }): string | undefined => {
    if (iss.code !== 'unrecognized_keys' || iss.keys === undefined) return undefined;
    const n = iss.keys.length;
    const named = iss.keys.slice(0, MAX_FIELDS_NAMED).map((k) => JSON.stringify(shortName(k)));
    const more = n > named.length ? ` and ${n - named.length} more (${n} in all)` : '';
    return `unknown field${n > 1 ? 's' : ''} ${named.join(', ')}${more}: ${takes}`;
  };

/** `POST /v1/features/:join` and `POST /v1/groupbys/:name` with a batch of rows. */
export const rowsBody = z.strictObject(
  { rows: rowsOf(`e.g. ${ROWS_EXAMPLE}, or a single row as ${KEYS_EXAMPLE}`), at },
  {
    error: unknownFields(
      `the body takes "rows" (or "keys" for one row) and optionally "at", e.g. ${ROWS_EXAMPLE}`,
    ),
  },
);
/** The same routes with a single row of keys. */
export const keysBody = z.strictObject(
  { keys: row, at },
  {
    error: unknownFields(
      `the body takes "keys" (or "rows" for a batch) and optionally "at", e.g. ${KEYS_EXAMPLE}`,
    ),
  },
);

/** `POST /v1/features`: several joins for the same rows; shared group-bys are read once. */
export const multiFeaturesBody = z.strictObject(
  {
    joins: z
      .array(
        z
          .string({ error: 'expected a join name (a string)' })
          .min(1, { error: 'a join name cannot be empty' }),
        {
          error: `expected "joins": an array of 1 to 100 join names, e.g. ${MULTI_EXAMPLE}`,
        },
      )
      .min(1, { error: 'Too small: name at least one join, e.g. "joins": ["fraud_model"]' })
      .max(100, { error: 'Too big: at most 100 joins per request' }),
    rows: rowsOf(`e.g. ${MULTI_EXAMPLE} (one row too: this route takes a batch)`),
    at,
  },
  { error: unknownFields(`the body takes "joins", "rows" and optionally "at", e.g. ${MULTI_EXAMPLE}`) },
);

/** The most events one ingest request may carry (each batch is validated and appended whole). */
export const MAX_EVENTS = 100_000;

const EVENTS_EXAMPLE = '{"events": [{"ts": 1700000000000, ...}]}';

/** `POST /v1/events/:source`: `{ events: [...] }` or a bare JSON array of events. */
export const eventsBody = z
  .array(
    z.custom<Record<string, unknown>>(isJsonObject, {
      error: 'expected an event: an object of column values',
    }),
    {
      error: `expected "events": an array of 1 to ${MAX_EVENTS} event objects, e.g. ${EVENTS_EXAMPLE}, or a bare JSON array of events`,
    },
  )
  .min(1, { error: 'Too small: send at least one event' })
  .max(MAX_EVENTS, { error: `Too big: at most ${MAX_EVENTS} events per request; split the batch` });

/** The `{ events }` form: nothing else beside the events. */
const eventsObject = z.strictObject(
  { events: eventsBody },
  {
    error: unknownFields(
      `the body takes only "events" (e.g. ${EVENTS_EXAMPLE}; an Idempotency-Key goes in a header), or is a bare JSON array of events`,
    ),
  },
);

/** A parsed feature request body: `single` tells whether to answer in the single-row shape. */
export interface ParsedFeaturesBody {
  readonly rows: Record<string, string | number | boolean | null>[];
  readonly at: number | string | undefined;
  readonly single: boolean;
}

/**
 * Why a body is not a JSON object at all, naming what to send (zod would say "expected object, received
 * array"); null for an object.
 */
function notAnObject(body: unknown, example: string, arrayFix: string): string | null {
  if (body === undefined)
    return `no request body; send a JSON object such as ${example} with 'content-type: application/json'`;
  if (Array.isArray(body)) return `the body is a JSON array; ${arrayFix}`;
  if (body === null || typeof body !== 'object')
    return `the body is JSON ${body === null ? 'null' : typeof body}, not an object; send a JSON object such as ${example}`;
  return null;
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
  const shape = notAnObject(
    body,
    ROWS_EXAMPLE,
    `wrap the rows in an object: {"rows": [...]} (or send one row as ${KEYS_EXAMPLE})`,
  );
  if (shape !== null) return { ok: false, message: shape };
  if ('keys' in (body as object)) {
    if ('rows' in (body as object))
      return {
        ok: false,
        message: `the body has both "keys" and "rows"; send either "keys" for one row (${KEYS_EXAMPLE}) or "rows" for a batch (${ROWS_EXAMPLE}), not both`,
      };
    const r = keysBody.safeParse(body);
    if (!r.success) return { ok: false, message: describeIssues(r.error) };
    return { ok: true, value: { rows: [r.data.keys], at: r.data.at, single: true } };
  }
  const r = rowsBody.safeParse(body);
  if (!r.success) return { ok: false, message: describeIssues(r.error) };
  return { ok: true, value: { rows: r.data.rows, at: r.data.at, single: false } };
}

/**
 * Validates a `POST /v1/features` body (several joins, a batch of rows); the messages name what to send.
 *
 * @example
 * parseMultiFeaturesBody({ rows: [{ card_id: 'c1' }] });
 * // { ok: false, message: 'joins: expected "joins": an array of 1 to 100 join names, e.g. …' }
 */
export function parseMultiFeaturesBody(
  body: unknown,
): { ok: true; value: z.infer<typeof multiFeaturesBody> } | { ok: false; message: string } {
  const shape = notAnObject(
    body,
    MULTI_EXAMPLE,
    `send an object naming the joins and the rows: ${MULTI_EXAMPLE}`,
  );
  if (shape !== null) return { ok: false, message: shape };
  if ('keys' in (body as object))
    return {
      ok: false,
      message: `POST /v1/features takes a batch: send "rows" (one row as a one-element array), not "keys", e.g. ${MULTI_EXAMPLE}; POST /v1/features/:join takes "keys" for one row`,
    };
  const r = multiFeaturesBody.safeParse(body);
  if (!r.success) return { ok: false, message: describeIssues(r.error) };
  return { ok: true, value: r.data };
}

/** Accepts `{ events: [...] }` (nothing else) or a bare array; returns the events or a message. */
export function parseEventsBody(
  body: unknown,
): { ok: true; events: Record<string, unknown>[] } | { ok: false; message: string } {
  if (body === undefined)
    return {
      ok: false,
      message: `no request body; send ${EVENTS_EXAMPLE} (or a bare JSON array of events) with 'content-type: application/json'`,
    };
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && 'events' in body) {
    const r = eventsObject.safeParse(body);
    if (!r.success) return { ok: false, message: describeIssues(r.error) };
    return { ok: true, events: r.data.events };
  }
  const r = eventsBody.safeParse(body);
  if (!r.success) return { ok: false, message: describeIssues(r.error) };
  return { ok: true, events: r.data };
}

/** The most zod issues a message lists (then how many there are): `[1, 1, …]` has one per entry. */
export const MAX_BODY_ISSUES = 20;

/**
 * Renders a zod error as one part per issue with its path, e.g. `rows[3].card_id: Invalid input`: the
 * first `MAX_BODY_ISSUES`, then how many there are in all; path keys cut to 60 characters.
 *
 * @example
 * const r = rowsBody.safeParse({ rows: [] });
 * if (!r.success) describeIssues(r.error); // "rows: Too small: send at least one row"
 */
export function describeIssues(error: z.ZodError): string {
  const all = error.issues;
  const listed = all.slice(0, MAX_BODY_ISSUES).map((issue) => {
    const path = issue.path
      .map((p, i) =>
        typeof p === 'number' ? `[${p}]` : i === 0 ? shortName(String(p)) : `.${shortName(String(p))}`,
      )
      .join('');
    return path === '' ? issue.message : `${path}: ${issue.message}`;
  });
  const more =
    all.length > listed.length
      ? `; … and ${all.length - listed.length} more (${all.length} issues in all; the first ${listed.length} are listed)`
      : '';
  return listed.join('; ') + more;
}
