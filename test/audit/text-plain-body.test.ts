/**
 * Outside-check finding (H3): a well-formed JSON body sent as `content-type: text/plain` (curl's `-H` typo,
 * some HTTP clients' default for a string body) reached the routes as a string, so the answer blamed the
 * body's shape ("expected \"events\": an array ...", "expected object, received string") although the body
 * was right. It now gets the 415 that names the header to send, like any other non-JSON content-type.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import { createServeApp } from '../../src/serve/app.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import { repo } from '../serve/fixtures.ts';

let app: FastifyInstance;
beforeAll(async () => {
  const service = createFeatureService({
    repo,
    groupById: (g) => g.name,
    fetchGroups: async (groups) => groups.map((g) => g.keys.map(() => emptyGroupValues(g.groupBy))),
    emptyValues: emptyGroupValues,
    now: () => 1_700_000_000_000,
  });
  app = createServeApp({ service, ingest: async (_source, events) => ({ accepted: events.length }) });
  await app.ready();
});
afterAll(() => app.close());

describe('a JSON body sent as text/plain', () => {
  it.each([
    ['/v1/events/tx', '{"events": [{"user_id": "u1", "amount": 1, "ts": 1}]}'],
    ['/v1/features/model_a', '{"keys": {"user_id": "u1"}}'],
  ])('%s answers 415 naming the content-type to send', async (url, payload) => {
    const res = await app.inject({ method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: 'unsupported_media_type',
      message:
        "content-type 'text/plain' is not supported; send the JSON body with 'content-type: application/json'",
    });
  });
});
