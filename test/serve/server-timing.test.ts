import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import { createServeApp } from '../../src/serve/app.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import { repo } from './fixtures.ts';

/**
 * Feature responses carry `Server-Timing: fetch;dur=<ms>`, the server's own time from the request's arrival to
 * its response body being ready (bench:serve reports it next to client latency). The store here answers
 * after STORE_MS, so a duration that does not cover the fetch, or that covers more than the client saw, fails.
 */
const STORE_MS = 15;
const TIMING = /^fetch;dur=(\d+\.\d{3})$/;

function makeApp(token?: string): FastifyInstance {
  const service = createFeatureService({
    repo,
    groupById: (g) => g.name,
    fetchGroups: async (groups) => {
      await sleep(STORE_MS);
      return groups.map((g) => g.keys.map(() => emptyGroupValues(g.groupBy)));
    },
    emptyValues: emptyGroupValues,
  });
  return createServeApp({ service, token });
}

/** The duration in a response's Server-Timing header; fails the test unless the header is well-formed. */
function duration(headers: Record<string, unknown>): number {
  const value = headers['server-timing'];
  expect(value).toMatch(TIMING);
  return Number(TIMING.exec(value as string)![1]);
}

let app: FastifyInstance;
beforeAll(async () => {
  app = makeApp();
  await app.ready();
});
afterAll(() => app.close());

const rows = [{ card_id: 'c1', merchant_id: 'm1' }];

describe('Server-Timing on feature routes', () => {
  it('reports the server time of every feature fetch route, covering the store read', async () => {
    const fetches = [
      { method: 'POST' as const, url: '/v1/features/model_a', payload: { rows } },
      { method: 'POST' as const, url: '/v1/features/model_a', payload: { keys: rows[0] } },
      { method: 'GET' as const, url: '/v1/features/model_a?card_id=c1&merchant_id=m1' },
      { method: 'POST' as const, url: '/v1/features', payload: { joins: ['model_a', 'model_b'], rows } },
      { method: 'POST' as const, url: '/v1/groupbys/card_stats', payload: { rows: [{ card_id: 'c1' }] } },
      { method: 'GET' as const, url: '/v1/groupbys/card_stats?card_id=c1' },
    ];
    for (const f of fetches) {
      const t0 = performance.now();
      const res = await app.inject(f);
      const client = performance.now() - t0;
      expect(res.statusCode, f.url).toBe(200);
      const ms = duration(res.headers);
      // Timers may fire up to a millisecond early (they round); the client saw at least the server's time.
      expect(ms, f.url).toBeGreaterThanOrEqual(STORE_MS - 1);
      expect(ms, f.url).toBeLessThanOrEqual(client);
    }
  });

  it('times from arrival, before the body is read', async () => {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const body = JSON.stringify({ rows });
    const res = await new Promise<{ status: number; timing: unknown }>((resolve, reject) => {
      const req = request(`${url}/v1/features/model_a`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.on('response', (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode!, timing: r.headers['server-timing'] }));
      });
      req.on('error', reject);
      // Headers now, the body 40 ms after the server has the request (fastify's own 'request' listener, added
      // first, has stamped it by then): the server's time includes the wait for the body.
      app.server.once('request', () => setTimeout(() => req.end(body), 40));
      req.flushHeaders();
    });
    expect(res.status).toBe(200);
    expect(duration({ 'server-timing': res.timing })).toBeGreaterThanOrEqual(40 + STORE_MS - 2);
  });

  it('keeps failed fetches well-formed and the server serving', async () => {
    const bad = await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('bad_request');
    expect(duration(bad.headers)).toBeGreaterThanOrEqual(0);
    const badJson = await app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      headers: { 'content-type': 'application/json' },
      payload: '{"rows": [',
    });
    expect(badJson.statusCode).toBe(400);
    duration(badJson.headers);
    const unknown = await app.inject({ method: 'POST', url: '/v1/features/nope', payload: { rows } });
    expect(unknown.statusCode).toBe(404);
    duration(unknown.headers);
    const ok = await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows } });
    expect(ok.statusCode).toBe(200);
    expect(duration(ok.headers)).toBeGreaterThanOrEqual(STORE_MS - 1);
  });

  it('leaves other routes and unauthorized requests without it', async () => {
    for (const url of ['/healthz', '/v1/joins', '/metrics', '/v1/nope']) {
      const res = await app.inject(url);
      expect(res.headers['server-timing'], url).toBeUndefined();
    }
    const secured = makeApp('secret');
    try {
      const denied = await secured.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows } });
      expect(denied.statusCode).toBe(401);
      expect(denied.headers['server-timing']).toBeUndefined();
      const ok = await secured.inject({
        method: 'POST',
        url: '/v1/features/model_a',
        payload: { rows },
        headers: { authorization: 'Bearer secret' },
      });
      expect(ok.statusCode).toBe(200);
      expect(duration(ok.headers)).toBeGreaterThanOrEqual(STORE_MS - 1);
    } finally {
      await secured.close();
    }
  });
});
