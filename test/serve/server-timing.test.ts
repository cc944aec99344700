import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyGroupValues } from '../../src/online/fetch-group-bys.ts';
import { createServeApp } from '../../src/serve/app.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import { repo } from './fixtures.ts';

/**
 * Feature responses carry `Server-Timing: fetch;dur=<ms>, recv;dur=<ms>`: `fetch` from the handler's start to
 * the response body being ready, `recv` from the request's arrival to the handler's start (bench:serve reports
 * their sum next to client latency). The store here answers after STORE_MS (SLOW_MS for key 'slow', and
 * throws for key 'fail'), so a duration that does not cover the fetch, or that covers more than the client
 * saw, fails.
 */
const STORE_MS = 15;
const SLOW_MS = 60;
const TIMING = /^(?:fetch;dur=(\d+\.\d{3}), )?recv;dur=(\d+\.\d{3})$/;

function makeApp(token?: string): FastifyInstance {
  const service = createFeatureService({
    repo,
    groupById: (g) => g.name,
    fetchGroups: async (groups) => {
      const keys = JSON.stringify(groups.map((g) => g.keys));
      await sleep(keys.includes('"slow"') ? SLOW_MS : STORE_MS);
      if (keys.includes('"fail"')) throw new Error('the store failed');
      return groups.map((g) => g.keys.map(() => emptyGroupValues(g.groupBy)));
    },
    emptyValues: emptyGroupValues,
  });
  return createServeApp({ service, token });
}

/** A response's Server-Timing parts (`fetch` undefined when the handler never ran); fails unless well-formed. */
function timings(headers: Record<string, unknown>): { fetch: number | undefined; recv: number } {
  const value = headers['server-timing'];
  expect(value).toMatch(TIMING);
  const m = TIMING.exec(value as string)!;
  return { fetch: m[1] === undefined ? undefined : Number(m[1]), recv: Number(m[2]) };
}

/** The handler's time (`fetch`), which must be there. */
function fetchMs(headers: Record<string, unknown>): number {
  const { fetch } = timings(headers);
  expect(fetch).toBeDefined();
  return fetch!;
}

/** A POST of `body` to the listening app whose body is sent `delayMs` after the server has the request. */
function postLate(url: string, body: string, delayMs: number): Promise<{ status: number; timing: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', (r) => {
      r.resume();
      r.on('end', () => resolve({ status: r.statusCode!, timing: r.headers['server-timing'] }));
    });
    req.on('error', reject);
    // fastify's own 'request' listener, added first, has stamped the request when this one runs.
    app.server.once('request', () => setTimeout(() => req.end(body), delayMs));
    req.flushHeaders();
  });
}

let app: FastifyInstance;
beforeAll(async () => {
  app = makeApp();
  await app.ready();
});
afterAll(() => app.close());

const rows = [{ card_id: 'c1', merchant_id: 'm1' }];

describe('Server-Timing on feature routes', () => {
  let url = '';
  beforeAll(async () => {
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });

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
      const { fetch, recv } = timings(res.headers);
      // Timers may fire up to a millisecond early (they round); the client saw at least the server's time.
      expect(fetch, f.url).toBeGreaterThanOrEqual(STORE_MS - 1);
      expect(fetch! + recv, f.url).toBeLessThanOrEqual(client);
    }
  });

  it('counts the wait for the body in recv, not in fetch', async () => {
    const res = await postLate(`${url}/v1/features/model_a`, JSON.stringify({ rows }), 40);
    expect(res.status).toBe(200);
    const { fetch, recv } = timings({ 'server-timing': res.timing });
    expect(recv).toBeGreaterThanOrEqual(40 - 2);
    expect(fetch).toBeGreaterThanOrEqual(STORE_MS - 1);
  });

  it('times each request from its own stamps while others are in flight', async () => {
    for (let i = 0; i < 20; i++)
      await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows } });
    const slow = app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      payload: { rows: [{ card_id: 'slow', merchant_id: 'm1' }] },
    });
    await sleep(20);
    const fast = await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows } });
    expect(fetchMs(fast.headers)).toBeGreaterThanOrEqual(STORE_MS - 1);
    expect(fetchMs((await slow).headers)).toBeGreaterThanOrEqual(SLOW_MS - 1);
  });

  it('keeps failed fetches well-formed, timed, and the server serving', async () => {
    const bad = await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('bad_request');
    expect(fetchMs(bad.headers)).toBeGreaterThanOrEqual(0);
    // Malformed JSON fails in the body parser, before the handler: recv only.
    const badJson = await app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      headers: { 'content-type': 'application/json' },
      payload: '{"rows": [',
    });
    expect(badJson.statusCode).toBe(400);
    expect(timings(badJson.headers).fetch).toBeUndefined();
    const unknown = await app.inject({ method: 'POST', url: '/v1/features/nope', payload: { rows } });
    expect(unknown.statusCode).toBe(404);
    timings(unknown.headers);
    // A store that fails after its wait: the failed fetch's time covers that wait.
    const t0 = performance.now();
    const failed = await app.inject({
      method: 'POST',
      url: '/v1/features/model_a',
      payload: { rows: [{ card_id: 'fail', merchant_id: 'm1' }] },
    });
    const client = performance.now() - t0;
    expect(failed.statusCode).toBe(500);
    const t = timings(failed.headers);
    expect(t.fetch).toBeGreaterThanOrEqual(STORE_MS - 1);
    expect(t.fetch! + t.recv).toBeLessThanOrEqual(client);
    const ok = await app.inject({ method: 'POST', url: '/v1/features/model_a', payload: { rows } });
    expect(ok.statusCode).toBe(200);
    expect(fetchMs(ok.headers)).toBeGreaterThanOrEqual(STORE_MS - 1);
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
      expect(fetchMs(ok.headers)).toBeGreaterThanOrEqual(STORE_MS - 1);
    } finally {
      await secured.close();
    }
  });
});
