import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRepo } from '../../src/cli/load-repo.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openFileLog } from '../../src/online/log/file-log.ts';
import { createServeApp } from '../../src/serve/app.ts';
import { createClient, TesseraClientError } from '../../src/serve/client.ts';
import { startEmbedded } from '../../src/serve/embedded.ts';
import { MAX_EVENTS, parseEventsBody } from '../../src/serve/request-schema.ts';
import { emptyService, tx } from './fixtures.ts';

/** `POST /v1/events/:source` body errors say what to send, as the feature routes' do (not zod's wording). */
describe('parseEventsBody', () => {
  const event = { user: 'u1', ts: 1 };

  it('accepts { events } and a bare array', () => {
    expect(parseEventsBody({ events: [event] })).toEqual({ ok: true, events: [event] });
    expect(parseEventsBody([event, event])).toEqual({ ok: true, events: [event, event] });
  });

  it.each([
    [
      'an oversize batch',
      { events: Array(MAX_EVENTS + 1).fill(event) },
      'at most 100000 events per request; split the batch',
    ],
    ['an empty batch', { events: [] }, 'send at least one event'],
    [
      'a misspelt events field',
      { evnts: [event] },
      'expected "events": an array of 1 to 100000 event objects',
    ],
    [
      'events that are not objects',
      { events: [event, 5] },
      '[1]: expected an event: an object of column values',
    ],
  ])('names the fix for %s', (_name, body, message) => {
    const r = parseEventsBody(body);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toContain(message);
  });
});

describe('parseEventsBody: fields beside "events"', () => {
  it('rejects them, naming the field and the shapes the body takes', () => {
    const r = parseEventsBody({ events: [{ ts: 1 }], x: 1 });
    expect(r).toEqual({
      ok: false,
      message:
        'unknown field "x": the body takes only "events" (e.g. {"events": [{"ts": 1700000000000, ...}]}; an Idempotency-Key goes in a header), or is a bare JSON array of events',
    });
  });

  it('says to send a body when there is none', () => {
    const r = parseEventsBody(undefined);
    expect(!r.ok && r.message).toMatch(/^no request body; send \{"events": \[/);
  });
});

/** A serve app whose ingest appends to a file log through `ingestEvents`, as `tessera serve` wires them. */
function ingestApp(prefix: string, ingestUnknownColumns?: 'reject' | 'drop') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const log = openFileLog(join(dir, 'log'));
  const app = createServeApp({
    service: emptyService(() => 1_700_000_000_000),
    ...(ingestUnknownColumns ? { ingestUnknownColumns } : {}),
    ingest: async (source, events, o) => {
      const r = await ingestEvents(log, source, [], events, { origin: 'request body', ...o });
      return { accepted: r.accepted };
    },
  });
  afterAll(async () => {
    await app.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return app;
}

/** Through the route and `ingestEvents` as `tessera serve` wires them: HTTP ingest is strict about fields. */
describe('POST /v1/events/:source', () => {
  const app = ingestApp('tessera-events-body-');
  const good = { card_id: 'c1', merchant_id: 'm1', amount: 1, ts: 1000 };
  const post = (payload: unknown) =>
    app.inject({ method: 'POST', url: '/v1/events/tx', payload: payload as object });

  it('accepts events of schema columns', async () => {
    const res = await post({ events: [good] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ source: 'tx', accepted: 1 });
  });

  it('rejects an unknown event column with 400, naming the closest column', async () => {
    const { amount: _, ...noAmount } = good;
    const res = await post([good, { ...noAmount, amout: 2 }, { ...good, bogus: 1 }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().issues).toEqual([
      {
        source: 'tx',
        origin: 'request body',
        row: 1,
        column: 'amount',
        message: 'required column is missing or null',
        fix: "Add 'amount', or declare it nullable in the source schema.",
      },
      {
        source: 'tx',
        origin: 'request body',
        row: 1,
        column: 'amout',
        message: "unknown column 'amout': source 'tx' has no such column",
        fix: "Did you mean 'amount'? Rename the field, or remove it.",
      },
      {
        source: 'tx',
        origin: 'request body',
        row: 2,
        column: 'bogus',
        message: "unknown column 'bogus': source 'tx' has no such column",
        fix: "Remove it, or add it to the source schema; its columns are 'card_id', 'merchant_id', 'amount', 'ts'.",
      },
    ]);
    expect(res.json().message).toMatch(/^2 invalid event\(s\); nothing was appended:\n/);
  });

  it('rejects a body field beside "events" with 400', async () => {
    const res = await post({ events: [good], x: 1 });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain('unknown field "x": the body takes only "events"');
  });

  it('says how many issues there are when it lists the first 20', async () => {
    const res = await post(Array.from({ length: 25 }, () => ({ ...good, amount: 'x' })));
    expect(res.statusCode).toBe(400);
    expect(res.json().issues).toHaveLength(20);
    expect(res.json().message).toMatch(
      /^25 invalid event\(s\); nothing was appended; the first 20 of 25 issues are listed:\n[^]*\n {2}… and 5 more issue\(s\)/,
    );
  });
});

/** A client controls an event's fields and their names: the 400 stays small and says how many issues there are. */
describe('POST /v1/events/:source?unknownColumns=', () => {
  const good = { card_id: 'c1', merchant_id: 'm1', amount: 1, ts: 1000 };
  const strict = ingestApp('tessera-events-mode-');
  const lenient = ingestApp('tessera-events-drop-', 'drop');
  const post = (app: typeof strict, query: string) =>
    app.inject({ method: 'POST', url: `/v1/events/tx${query}`, payload: [{ ...good, upstream_id: 'u1' }] });

  it('drops fields that are not columns with drop, on a strict server', async () => {
    expect((await post(strict, '')).statusCode).toBe(400);
    const res = await post(strict, '?unknownColumns=drop');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ source: 'tx', accepted: 1 });
  });

  it('takes the server default, which a request may make strict', async () => {
    expect((await post(lenient, '')).statusCode).toBe(200);
    const res = await post(lenient, '?unknownColumns=reject');
    expect(res.statusCode).toBe(400);
    expect(res.json().issues).toMatchObject([{ column: 'upstream_id' }]);
  });

  it('refuses an unknown server default instead of taking it for drop', () => {
    expect(() =>
      createServeApp({
        service: emptyService(() => 1),
        ingestUnknownColumns: 'Reject' as 'reject',
      }),
    ).toThrow(`ingestUnknownColumns must be 'reject' or 'drop', got "Reject"`);
  });

  it('keeps a body field besides "events" a 400 with drop', async () => {
    const res = await strict.inject({
      method: 'POST',
      url: '/v1/events/tx?unknownColumns=drop',
      payload: { events: [good], extra: 1 },
    });
    expect(res.statusCode).toBe(400);
  });

  it.each([
    ['?unknownColumns=ignore', /unknownColumns must be reject or drop \(once\), got "ignore"/],
    ['?unknownColumns=drop&unknownColumns=drop', /got \["drop","drop"\]/],
    ['?unknowncolumns=drop', /unknown query parameter 'unknowncolumns'.*unknownColumns=reject\|drop/],
  ])('rejects %s with 400', async (query, message) => {
    const res = await post(strict, query);
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(message);
  });
});

describe('POST /v1/events/:source: bounded answers', () => {
  const app = ingestApp('tessera-events-bounded-');
  const good = { card_id: 'c1', merchant_id: 'm1', amount: 1, ts: 1000 };
  const post = (payload: unknown) =>
    app.inject({
      method: 'POST',
      url: '/v1/events/tx',
      payload: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    });

  it('gives an event of 100k stray fields one issue', async () => {
    const event: Record<string, unknown> = { ...good };
    for (let i = 0; i < 100_000; i++) event[`f${i}`] = i;
    const res = await post([event, { ...good, bogus: 1 }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().issues.map((i: { row: number; column: string | null }) => [i.row, i.column])).toEqual([
      [0, null],
      [1, 'bogus'],
    ]);
    expect(res.json().issues[0].message).toMatch(
      /^event has 100004 fields, more than 32 beyond the 4 columns/,
    );
    expect(res.json().issueCount).toBe(2);
    expect(res.payload.length).toBeLessThan(4096);
  });

  it('cuts long field names and lists 20 issues of many, with their count', async () => {
    const event: Record<string, unknown> = { ...good };
    for (let i = 0; i < 20; i++) event[`${i}${'x'.repeat(200_000)}`] = 1;
    const res = await post(Array(5).fill(event));
    expect(res.statusCode).toBe(400);
    expect(res.json().issues).toHaveLength(20);
    expect(res.json().issues[0].column).toBe(`0${'x'.repeat(59)}…`);
    expect(res.json().issueCount).toBe(100);
    expect(res.json().message).toMatch(/; the first 20 of 100 issues are listed:\n/);
    expect(res.payload.length).toBeLessThan(64 * 1024);
  });

  it("reports a field named 'constructor' as an unknown column", async () => {
    const res = await post([{ ...good, constructor: 'x' }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().issues).toMatchObject([
      {
        row: 0,
        column: 'constructor',
        message: "unknown column 'constructor': source 'tx' has no such column",
      },
    ]);
  });
});

describe('typed client ingest', () => {
  it('gets the 400 and its issues for an unknown column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-events-client-'));
    const log = openFileLog(join(dir, 'log'));
    const app = createServeApp({
      service: emptyService(() => 1_700_000_000_000),
      ingest: async (source, events, o) => ({
        accepted: (await ingestEvents(log, source, [], events, { origin: 'request body', ...o })).accepted,
      }),
    });
    try {
      const client = createClient({ url: await app.listen({ port: 0, host: '127.0.0.1' }) });
      const err = await client
        // @ts-expect-error: 'merchant' is no column of tx; the server's answer to it is under test
        .ingest(tx, [{ card_id: 'c1', merchant_id: 'm1', amount: 1, ts: 1, merchant: 'm1' }])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TesseraClientError);
      expect(err).toMatchObject({
        statusCode: 400,
        issues: [{ row: 0, column: 'merchant', fix: expect.stringMatching(/^Remove it/) }],
      });
      const upstream = { card_id: 'c1', merchant_id: 'm1', amount: 1, ts: 1, merchant: 'm1' };
      await expect(client.ingest('tx', [upstream], { unknownColumns: 'drop' })).resolves.toEqual({
        source: 'tx',
        accepted: 1,
      });
    } finally {
      await app.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** `tessera serve` wires its ingest through `ingestEvents`: the route's strictness must reach it. */
describe('POST /v1/events/:source on an embedded server', () => {
  it('rejects an unknown column, with and without an Idempotency-Key', async () => {
    const repo = await loadRepo(new URL('./fixture-repo', import.meta.url).pathname, { checkFiles: false });
    const dir = mkdtempSync(join(tmpdir(), 'tessera-events-embedded-'));
    const server = await startEmbedded({ repo, dataDir: join(dir, 'state'), port: 0, workers: false });
    try {
      const post = (events: unknown[], key?: string) =>
        fetch(`${server.url}/v1/events/payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
          body: JSON.stringify({ events }),
        });
      const event = { user_id: 'u1', amount: 1, ts: Date.now() };
      for (const key of [undefined, 'batch-1']) {
        const res = await post([{ ...event, userid: 'u2' }], key);
        expect(res.status).toBe(400);
        expect((await res.json()).issues).toMatchObject([
          {
            row: 0,
            column: 'userid',
            fix: "Remove it, or add it to the source schema; its columns are 'user_id', 'amount', 'ts'.",
          },
        ]);
      }
      expect((await post([event])).status).toBe(200);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops unknown columns with ingestUnknownColumns: drop (serve --ingest-unknown-columns drop)', async () => {
    const repo = await loadRepo(new URL('./fixture-repo', import.meta.url).pathname, { checkFiles: false });
    const dir = mkdtempSync(join(tmpdir(), 'tessera-events-embedded-'));
    const server = await startEmbedded({
      repo,
      dataDir: join(dir, 'state'),
      port: 0,
      workers: false,
      ingestUnknownColumns: 'drop',
    });
    try {
      const res = await fetch(`${server.url}/v1/events/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events: [{ user_id: 'u1', amount: 1, ts: Date.now(), userid: 'u2' }] }),
      });
      expect(res.status).toBe(200);
      // One partition: the topic is the source's name; the logged event has the schema columns only.
      const records = await server.log.read('payments', 0, 0, 10);
      expect(records.map((r) => Object.keys(r.event).sort())).toEqual([['amount', 'ts', 'user_id']]);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
