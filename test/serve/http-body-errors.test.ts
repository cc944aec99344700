import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createServeApp } from '../../src/serve/app.ts';
import { emptyService } from './fixtures.ts';

/**
 * Bodies fastify rejects before a route runs (too large, wrong content-type, broken JSON): the answer must
 * carry a kind matching its status and a message naming the fix, like the route's own errors.
 */
let app: FastifyInstance;
beforeAll(async () => {
  const service = emptyService(() => 1_700_000_000_000);
  app = createServeApp({ service, ingest: async (_source, events) => ({ accepted: events.length }) });
  await app.ready();
});
afterAll(() => app.close());

describe('body errors raised by fastify', () => {
  it('413 for an oversize batch names the limit and says to split it', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/events/tx',
      headers: { 'content-type': 'application/json' },
      payload: `{"events": ["${'x'.repeat(64 * 1024 * 1024)}"]}`,
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      error: 'payload_too_large',
      message: expect.stringMatching(/over the 64 MiB limit; split it/),
    });
  });

  it('415 for a form-encoded body names the content-type to send', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'rows=1',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: 'unsupported_media_type',
      message:
        "content-type 'application/x-www-form-urlencoded' is not supported; send the JSON body with 'content-type: application/json'",
    });
  });

  // A well-formed JSON body sent as text/plain (curl's `-H` typo, some clients' default for a string body)
  // reached the routes as a string, and the 400 blamed the body's shape although the body was right.
  it.each([
    ['/v1/events/tx', '{"events": [{"user_id": "u1", "amount": 1, "ts": 1}]}'],
    ['/v1/features/model_a', '{"keys": {"user_id": "u1"}}'],
  ])('415 for a JSON body sent as text/plain to %s names the content-type to send', async (url, payload) => {
    const res = await app.inject({ method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: 'unsupported_media_type',
      message:
        "content-type 'text/plain' is not supported; send the JSON body with 'content-type: application/json'",
    });
  });

  it('400 for malformed or empty JSON says what to fix', async () => {
    const broken = await app.inject({
      method: 'POST',
      url: '/v1/events/tx',
      headers: { 'content-type': 'application/json' },
      payload: '{"events": [1,',
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error).toBe('bad_request');
    // The JSON parser's own reason, not only fastify's "Body is not valid JSON".
    expect(broken.json().message).toMatch(
      /^body is not valid JSON: [^;]*JSON[^;]*; fix the JSON \(e\.g\. check it with `jq \. < body\.json`\)$/,
    );
    expect(broken.json().message).not.toContain("content-type is set to 'application/json'");
    const empty = await app.inject({
      method: 'POST',
      url: '/v1/events/tx',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().message).toMatch(/cannot be empty.*; send a JSON body, or drop the header/);
  });

  it('400 for a __proto__ key names it (the parser refuses such bodies)', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      headers: { 'content-type': 'application/json' },
      payload: '{"keys": {"card_id": "c1"}, "__proto__": {"x": 1}}',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/^body is not valid JSON: it has a "__proto__" or "constructor"/);
  });

  it('a JSON body with a charset parameter is parsed as JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/events/tx',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: '{"events": [{"card_id": "c1", "merchant_id": "m1", "amount": 1, "ts": 1}]}',
    });
    expect(res.statusCode).toBe(200);
  });
});
