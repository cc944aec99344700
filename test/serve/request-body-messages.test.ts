import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createServeApp } from '../../src/serve/app.ts';
import { MAX_BODY_ISSUES, parseEventsBody } from '../../src/serve/request-schema.ts';
import { emptyService } from './fixtures.ts';

/**
 * Feature request bodies of the wrong shape: each 400 says what was wrong and what to send instead, not
 * zod's wording ("Unrecognized key", "expected object, received array", "expected int to be <9007199254740991").
 */
let app: FastifyInstance;
beforeAll(async () => {
  app = createServeApp({ service: emptyService(() => 1_700_000_000_000) });
  await app.ready();
});
afterAll(() => app.close());

const row = { card_id: 'c1', merchant_id: 'm1' };

describe('feature request body messages', () => {
  it.each<[string, string, unknown, string]>([
    [
      'keys and rows together',
      '/v1/features/model_a',
      { keys: row, rows: [row] },
      `invalid request body for join 'model_a': the body has both "keys" and "rows"; send either "keys" for one row ({"keys": {"card_id": "c1"}}) or "rows" for a batch ({"rows": [{"card_id": "c1"}]}), not both`,
    ],
    [
      'keys sent to the multi-join route',
      '/v1/features',
      { joins: ['model_a'], keys: row },
      `invalid request body: POST /v1/features takes a batch: send "rows" (one row as a one-element array), not "keys", e.g. {"joins": ["fraud_model"], "rows": [{"card_id": "c1"}]}; POST /v1/features/:join takes "keys" for one row`,
    ],
    [
      'the multi-join route without joins',
      '/v1/features',
      { rows: [row] },
      `invalid request body: joins: expected "joins": an array of 1 to 100 join names, e.g. {"joins": ["fraud_model"], "rows": [{"card_id": "c1"}]}`,
    ],
    [
      'a bare array of rows',
      '/v1/features/model_a',
      [row],
      `invalid request body for join 'model_a': the body is a JSON array; wrap the rows in an object: {"rows": [...]} (or send one row as {"keys": {"card_id": "c1"}})`,
    ],
    [
      'a body that is a JSON string',
      '/v1/groupbys/card_stats',
      '"c1"',
      `invalid request body for group-by 'card_stats': the body is JSON string, not an object; send a JSON object such as {"rows": [{"card_id": "c1"}]}`,
    ],
    [
      'an unknown field',
      '/v1/features/model_a',
      { rows: [row], limit: 1 },
      `invalid request body for join 'model_a': unknown field "limit": the body takes "rows" (or "keys" for one row) and optionally "at", e.g. {"rows": [{"card_id": "c1"}]}`,
    ],
    [
      'an unknown field beside keys',
      '/v1/features/model_a',
      { keys: row, as_of: 1 },
      `invalid request body for join 'model_a': unknown field "as_of": the body takes "keys" (or "rows" for a batch) and optionally "at", e.g. {"keys": {"card_id": "c1"}}`,
    ],
    [
      'a huge at',
      '/v1/features/model_a',
      '{"keys": {"card_id": "c1", "merchant_id": "m1"}, "at": 1e300}',
      `invalid request body for join 'model_a': at: 1e+300 is beyond ±(2^53 − 1), not a time in epoch milliseconds; send epoch milliseconds (an integer such as 1700000000000) or ISO-8601 text such as "2024-05-01T12:00:00Z"`,
    ],
    [
      'an empty at',
      '/v1/features',
      { joins: ['model_a'], rows: [row], at: '' },
      `invalid request body: at: is empty; send epoch milliseconds (an integer such as 1700000000000) or ISO-8601 text such as "2024-05-01T12:00:00Z", or leave "at" out for now`,
    ],
  ])('%s', async (_name, url, payload, message) => {
    const res = await app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'bad_request', message });
  });

  it.each(['/v1/features/model_a', '/v1/features'])('no body at all to %s says to send one', async (url) => {
    const res = await app.inject({ method: 'POST', url });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(
      /: no request body; send a JSON object such as \{.*\} with 'content-type: application\/json'$/,
    );
  });
});

/** A client controls a body's keys and entries: the 400 names a few of them, cut short, and counts the rest. */
describe('bounded body messages', () => {
  const post = (url: string, payload: unknown) =>
    app.inject({
      method: 'POST',
      url,
      payload: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    });

  it('lists the first 20 of many body issues and the total', () => {
    const r = parseEventsBody(Array(100_000).fill(1));
    const message = !r.ok ? r.message : '';
    expect(message.match(/expected an event: an object of column values/g)).toHaveLength(MAX_BODY_ISSUES);
    expect(message).toMatch(/^\[0\]: expected an event/);
    expect(message).toMatch(/; … and 99980 more \(100000 issues in all; the first 20 are listed\)$/);
    expect(message.length).toBeLessThan(2000);
  });

  it('names 5 unknown body fields, each cut to 60 characters, and counts them', async () => {
    const long = (i: number) => `${i}${'k'.repeat(1_000_000)}`;
    const body: Record<string, unknown> = { events: [{ ts: 1 }] };
    for (let i = 0; i < 20; i++) body[long(i)] = 1;
    const r = parseEventsBody(body);
    const cut = (i: number) => JSON.stringify(`${long(i).slice(0, 60)}…`);
    expect(!r.ok && r.message).toBe(
      `unknown fields ${[0, 1, 2, 3, 4].map(cut).join(', ')} and 15 more (20 in all): the body takes only "events" (e.g. {"events": [{"ts": 1700000000000, ...}]}; an Idempotency-Key goes in a header), or is a bare JSON array of events`,
    );
  });

  it('cuts a long key in a row issue path', async () => {
    const res = await post('/v1/features/model_a', { keys: { ['k'.repeat(100_000)]: [1] } });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe(
      `invalid request body for join 'model_a': keys.${'k'.repeat(60)}…: expected a string, number, boolean or null column value`,
    );
  });

  it("takes a field named 'constructor' for a column, not for a sign the row is no object", async () => {
    expect(parseEventsBody([{ constructor: 'x', ts: 1 }])).toEqual({
      ok: true,
      events: [{ constructor: 'x', ts: 1 }],
    });
    const res = await post('/v1/features/model_a', { keys: { ...row, constructor: 'x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/unknown column 'constructor'/);
    const rows = await post('/v1/features/model_a', { rows: [row, { ...row, constructor: 1 }] });
    expect(rows.json().message).toMatch(/unknown column 'constructor'/);
  });
});
