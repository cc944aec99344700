/**
 * Run by test/online/redis-read-tls.test.ts in a process of its own, whose NODE_EXTRA_CA_CERTS names the
 * test's CA (Node reads it at startup only, for every TLS connection without a `ca` option: the store's
 * ioredis client and its read connection alike). Opens a Redis store at the `rediss://` URL in argv[2],
 * writes values, reads until the store's read connection serves reads, then reads them back, and prints
 * one JSON line: whether the values came back as written, and the server's CLIENT LIST right after.
 */
import { Redis } from 'ioredis';
import { openStore } from '../../src/online/open-store.ts';
import { MGET_CONNECTION_NAME } from '../../src/online/redis-mget.ts';
import type { StoredTile } from '../../src/online/store.ts';
import { rng } from './rng.ts';

const url = process.argv[2];
const store = openStore({ kind: 'redis', url, prefix: 'tls:' });
const admin = new Redis(url);
const random = rng(11);
// Values bigger than a TLS record (16 KB): a reply comes in many decrypted chunks.
const requests = Array.from({ length: 40 }, (_, k) => ({ groupBy: 'g', key: `k${k}` }));
const values = requests.map((_, k) =>
  Uint8Array.from({ length: k % 4 === 0 ? 40_000 : 300 }, () => Math.floor(random() * 256)),
);
const hex = (tiles: StoredTile[][]) =>
  tiles.map((list) => list.map((t) => [t.level, t.start, Buffer.from(t.bytes).toString('hex')]));
try {
  await store.commit({
    tiles: requests.map((r, k) => ({ groupBy: 'g', key: r.key, level: 1000, start: 0, bytes: values[k] })),
  });
  const line = async () =>
    ((await admin.client('LIST')) as string)
      .split('\n')
      .find((l) => l.includes(` name=${MGET_CONNECTION_NAME} `));
  for (let i = 0; !/ cmd=mget /.test((await line()) ?? ''); i++) {
    if (i === 300) throw new Error(`the read connection never served a read: ${await line()}`);
    await store.readTiles(requests.slice(0, 1));
    await new Promise((r) => setTimeout(r, 10));
  }
  await store.readCounters(); // the last command of the store's ioredis connection: HGETALL
  const expected = JSON.stringify(hex(values.map((bytes) => [{ level: 1000, start: 0, bytes }])));
  const same = JSON.stringify(hex(await store.readTiles(requests))) === expected;
  process.stdout.write(`${JSON.stringify({ same, list: await admin.client('LIST') })}\n`);
} finally {
  admin.disconnect();
  await store.close();
}
