import { describe, expect, it } from 'vitest';
import { createServeApp } from '../../src/serve/app.ts';
import { bearerCheck } from '../../src/serve/auth.ts';
import { emptyService } from './fixtures.ts';

describe('bearerCheck', () => {
  it('accepts exactly the token, whatever the guess length', () => {
    const allowed = bearerCheck('s3cret');
    expect(allowed('Bearer s3cret')).toBe(true);
    expect(allowed('bearer   s3cret ')).toBe(true);
    for (const wrong of ['Bearer s3cre', 'Bearer s3cretX', 'Bearer s3cres', 'Bearer ssssss', 'Bearer S3cret'])
      expect(allowed(wrong)).toBe(false);
    expect(allowed('Bearer s3cret s3cret')).toBe(false);
    expect(allowed('Bearer ')).toBe(false);
    expect(allowed('Basic s3cret')).toBe(false);
    expect(allowed(undefined)).toBe(false);
    expect(bearerCheck('é✓')('Bearer é✓')).toBe(true);
    expect(bearerCheck('é✓')('Bearer é✔')).toBe(false);
    expect(bearerCheck(undefined)('anything')).toBe(true);
    expect(bearerCheck('')(undefined)).toBe(true);
  });
});

describe('token on every route but the probes', () => {
  const app = createServeApp({
    service: emptyService(),
    token: 'tok',
  });
  app.get('/later', async () => ({ ok: true }));
  const auth = { authorization: 'Bearer tok' };

  it('answers 401 without it on routes, HEAD routes, routes added later and unknown paths', async () => {
    for (const [method, url] of [
      ['GET', '/metrics'],
      ['HEAD', '/metrics'],
      ['GET', '/later'],
      ['GET', '/nope'],
      ['POST', '/nope'],
      ['GET', '/v1/joins'],
    ] as const) {
      const r = await app.inject({ method, url });
      expect(r.statusCode, `${method} ${url}`).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
    }
    expect((await app.inject({ url: '/later', headers: auth })).statusCode).toBe(200);
    expect((await app.inject({ method: 'HEAD', url: '/metrics', headers: auth })).statusCode).toBe(200);
    expect((await app.inject({ url: '/nope', headers: auth })).statusCode).toBe(404);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    expect((await app.inject({ method: 'HEAD', url: '/readyz' })).statusCode).toBe(200);
  });

  it('rejects an unknown path before reading its body', async () => {
    // A body fastify cannot parse: with the check after parsing this would be a 400.
    const r = await app.inject({
      method: 'POST',
      url: '/nope',
      headers: { 'content-type': 'application/json' },
      payload: '{not json',
    });
    expect(r.statusCode).toBe(401);
  });

  it('counts 401s by route', async () => {
    const text = (await app.inject({ url: '/metrics', headers: auth })).body;
    expect(text).toContain('tessera_http_errors_total{route="/metrics",code="401"} 2');
    expect(text).toContain('tessera_http_errors_total{route="unknown",code="401"} 3');
  });
});
