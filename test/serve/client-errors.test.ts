import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient, TesseraClientError } from '../../src/serve/client.ts';
import { modelA, tx } from './fixtures.ts';

/** A port nothing listens on (one the OS just handed out and got back). */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A server that accepts connections and never answers. */
const sockets: Socket[] = [];
const silent = createServer((s) => sockets.push(s));
afterAll(() => {
  sockets.forEach((s) => s.destroy());
  silent.close();
});

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as TesseraClientError,
  );

describe('typed client: requests that get no answer', () => {
  it('throws TesseraClientError (statusCode 0) naming the URL, ECONNREFUSED and what to check', async () => {
    const port = await freePort();
    const client = createClient({ url: `http://127.0.0.1:${port}/` });
    const err = await rejection(client.feature(modelA, { card_id: 'c1', merchant_id: 'm1' }));
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.statusCode).toBe(0);
    expect(err.message).toMatch(
      new RegExp(
        `^POST http://127.0.0.1:${port}/v1/features/model_a: no answer: connection refused \\(ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}\\); is \`tessera serve\` running there, and is the URL right\\?$`,
      ),
    );
    expect((err.cause as Error).message).toBe('fetch failed');
    const ingest = await rejection(client.ingest(tx, [{ card_id: 'c', merchant_id: 'm', amount: 1, ts: 1 }]));
    expect(ingest.message).toContain(
      `POST http://127.0.0.1:${port}/v1/events/tx: no answer: connection refused`,
    );
  });

  it('names a URL without scheme as the problem', async () => {
    const err = await rejection(
      createClient({ url: '127.0.0.1:8080' }).features(modelA, [{ card_id: 'c', merchant_id: 'm' }]),
    );
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.message).toMatch(
      /no answer: .*; give the URL with its scheme and port, e.g. http:\/\/127.0.0.1:8080$/,
    );
  });

  it('gives up after timeoutMs on a server that does not answer', async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const client = createClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 200 });
    const started = Date.now();
    const err = await rejection(client.groupBy(modelA.parts[0]!.groupBy, [{ card_id: 'c' }]));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.statusCode).toBe(0);
    expect(err.message).toBe(
      `POST http://127.0.0.1:${port}/v1/groupbys/card_stats: no answer: timed out after 200 ms (the client's timeoutMs); is the server overloaded or stuck? raise timeoutMs or send fewer rows per call`,
    );
  });
});
