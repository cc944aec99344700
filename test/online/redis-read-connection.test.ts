import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/online/open-store.ts';
import { MGET_CONNECTION_NAME } from '../../src/online/redis-mget.ts';
import { partitionTags } from '../../src/online/redis-store.ts';
import { clusterSlot } from '../../src/online/redis-client.ts';
import type { OnlineStore, StoredTile, TileRequest } from '../../src/online/store.ts';
import { StoreUnavailableError } from '../../src/online/store-unavailable.ts';
import { rng } from '../support/rng.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';

/**
 * The Redis store sends reads on a connection of its own (`MgetConnection`, named tessera-read) once it is
 * ready, parsing MGET replies in place. Against real servers: it reads what was written (values
 * spanning socket chunks, thousands of keys), in the URL's database with its credentials, names a corrupt
 * value's key, times out a read of a hung Redis, survives its connection being killed, and on a Cluster
 * reads every master and follows a slot that moved (MOVED, sent again through ioredis).
 */
const redis = await startRedis();
const cluster = await startRedisCluster();
const admins: Redis[] = [];
afterAll(async () => {
  for (const a of admins) a.disconnect();
  if (redis) process.kill(redis.pid, 'SIGCONT');
  await redis?.stop();
  await cluster?.stop();
});

function admin(port: number, password?: string): Redis {
  const a = new Redis({ port, host: '127.0.0.1', password, lazyConnect: false });
  admins.push(a);
  return a;
}

/** The CLIENT LIST line of the store's read connection on a server, if there is one. */
async function readLine(a: Redis): Promise<string | undefined> {
  const list = (await a.client('LIST')) as string;
  return list.split('\n').find((l) => l.includes(` name=${MGET_CONNECTION_NAME} `));
}

/** Reads until `server`'s read connection is there, then once more: that read must be its last command. */
async function untilReadConnection(store: OnlineStore, a: Redis, request: TileRequest): Promise<void> {
  for (let i = 0; (await readLine(a)) === undefined; i++) {
    if (i === 200) throw new Error('the read connection never came up');
    await store.readTiles([request]);
    await new Promise((r) => setTimeout(r, 10));
  }
  await store.readTiles([request]);
  expect(await readLine(a)).toMatch(/ cmd=mget /);
}

const tile = (key: string, level: number, bytes: Uint8Array) => ({
  groupBy: 'g',
  key,
  level,
  start: 0,
  bytes,
});

/** What `readEntities` visits, as `readTiles` returns it (bytes copied). */
async function entities(store: OnlineStore, requests: TileRequest[]): Promise<StoredTile[][]> {
  const out: StoredTile[][] = [];
  await store.readEntities!(requests, (i, t) => {
    out[i] = Array.from({ length: t.length }, (_, j) => ({
      level: t.level[j],
      start: t.start[j],
      bytes: Uint8Array.from(t.bytes(j)),
    }));
  });
  return out;
}

/** Tiles with their bytes as hex (deep equality of big byte arrays is slow). */
const compact = (tiles: StoredTile[][]) =>
  tiles.map((list) => list.map((t) => [t.level, t.start, Buffer.from(t.bytes).toString('hex')]));

describe.skipIf(!redis)('Redis store reads on its own connection', () => {
  it('reads what was written: big values across chunks, thousands of keys, absent ones', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'rc1:' });
    const a = admin(redis!.port);
    const random = rng(5);
    const model = new Map<string, StoredTile[]>();
    try {
      const writes = [];
      for (let k = 0; k < 3000; k++) {
        if (random() < 0.2) continue; // absent
        const size = random() < 0.01 ? 100_000 + Math.floor(random() * 100_000) : Math.floor(random() * 300);
        const bytes = Uint8Array.from({ length: size }, () => Math.floor(random() * 256));
        writes.push(tile(`k${k}`, 1000, bytes));
        model.set(`k${k}`, [{ level: 1000, start: 0, bytes }]);
      }
      await store.commit({ tiles: writes });
      await untilReadConnection(store, a, { groupBy: 'g', key: 'k0' });
      const requests = Array.from({ length: 3000 }, (_, k) => ({ groupBy: 'g', key: `k${k}` }));
      const expected = compact(requests.map((r) => model.get(r.key) ?? []));
      await store.readCounters(); // the last command of the store's ioredis connection
      expect(compact(await store.readTiles(requests))).toEqual(expected);
      expect(compact(await entities(store, requests))).toEqual(expected);
      const list = (await a.client('LIST')) as string;
      expect(list).toMatch(new RegExp(` name=${MGET_CONNECTION_NAME} .* cmd=mget `));
      expect(list).toMatch(/ name= .* cmd=hgetall /); // not the ioredis connection
    } finally {
      await store.close();
    }
  }, 30_000);

  it('reads non-ASCII keys and group-bys among ASCII ones (the MGET is sent as latin1 only when all ASCII)', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'rc0:' });
    const requests = [
      ...['a', 'b'].map((key) => ({ groupBy: 'g', key })),
      { groupBy: 'g', key: 'café' },
      { groupBy: 'gé', key: 'a' },
      { groupBy: 'g', key: '日本' },
    ];
    try {
      await store.commit({
        tiles: requests
          .map((r, i) => tile(r.key, 1000, Uint8Array.of(i)))
          .map((t, i) => ({ ...t, groupBy: requests[i].groupBy })),
      });
      for (const list of [
        requests,
        requests.slice(0, 3),
        [requests[0], requests[3]],
        [requests[4], requests[0]],
      ])
        expect((await store.readTiles(list)).map((t) => t[0]?.bytes[0])).toEqual(
          list.map((r) => requests.indexOf(r)),
        );
    } finally {
      await store.close();
    }
  });

  it('names the key of a corrupt value', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'rc2:' });
    const a = admin(redis!.port);
    try {
      await store.commit({ tiles: [tile('ok', 1000, Uint8Array.of(1))] });
      await untilReadConnection(store, a, { groupBy: 'g', key: 'ok' });
      const key = (await a.keys('rc2:e{*}g:ok'))[0]!;
      await a.set(key.replace(':ok', ':bad'), 'not a value');
      const requests = [
        { groupBy: 'g', key: 'ok' },
        { groupBy: 'g', key: 'bad' },
      ];
      const message = `Redis store: value ${key.replace(':ok', ':bad')} is corrupt (11 bytes, not Tessera layout 3); re-upload its group-by`;
      await expect(store.readTiles(requests)).rejects.toThrow(message);
      await expect(entities(store, requests)).rejects.toThrow(message);
      expect(await readLine(a)).toMatch(/ cmd=mget /);
    } finally {
      await store.close();
    }
  });

  it('fails a read of a hung Redis within the timeout; a killed connection is replaced', async () => {
    const store = openStore({ kind: 'redis', url: redis!.url, prefix: 'rc3:', commandTimeoutMs: 300 });
    const a = admin(redis!.port);
    const request = { groupBy: 'g', key: 'k' };
    const bytes = Uint8Array.of(7);
    try {
      await store.commit({ tiles: [tile('k', 1000, bytes)] });
      await untilReadConnection(store, a, request);
      process.kill(redis!.pid, 'SIGSTOP');
      const t = Date.now();
      const failed = await store.readTiles([request]).catch((e: Error) => e);
      process.kill(redis!.pid, 'SIGCONT');
      expect(Date.now() - t).toBeLessThan(1300);
      expect(failed).toBeInstanceOf(StoreUnavailableError);
      expect((failed as Error).message).toMatch(
        /readTiles of 1 keys failed: Command timed out \(no reply within 300 ms/,
      );
      expect(await store.readTiles([request])).toEqual([[{ level: 1000, start: 0, bytes }]]);

      const line = (await readLine(a))!;
      await a.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]);
      // (A read sent before the store sees the link closed is lost, and fails at its timeout, as through ioredis.)
      await new Promise((r) => setTimeout(r, 100));
      // Reads go on (through ioredis until the read connection is back), and it comes back.
      for (let i = 0; i < 5; i++)
        expect(await store.readTiles([request])).toEqual([[{ level: 1000, start: 0, bytes }]]);
      await untilReadConnection(store, a, request);
      expect(await readLine(a)).not.toBe(line);
    } finally {
      process.kill(redis!.pid, 'SIGCONT');
      await store.close();
    }
  }, 20_000);

  it("uses the URL's credentials and database (password, ACL user)", async () => {
    const a = admin(redis!.port);
    await a.call('ACL', 'SETUSER', 'reader', 'on', '>pw2', '~*', '&*', '+@all');
    await a.config('SET', 'requirepass', 'pw1');
    try {
      for (const [url, db] of [
        [`redis://:pw1@127.0.0.1:${redis!.port}/3`, 3],
        [`redis://reader:pw2@127.0.0.1:${redis!.port}/5`, 5],
      ] as const) {
        const store = openStore({ kind: 'redis', url, prefix: 'rc4:' });
        const authed = admin(redis!.port, 'pw1');
        try {
          const bytes = Uint8Array.of(db);
          await store.commit({ tiles: [tile('k', 1000, bytes)] });
          await untilReadConnection(store, authed, { groupBy: 'g', key: 'k' });
          expect(await readLine(authed)).toMatch(
            new RegExp(` db=${db} .* user=${db === 3 ? 'default' : 'reader'} `),
          );
          expect(await store.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([
            [{ level: 1000, start: 0, bytes }],
          ]);
        } finally {
          await store.close();
        }
      }
    } finally {
      const authed = admin(redis!.port, 'pw1');
      await authed.config('SET', 'requirepass', '');
      await authed.call('ACL', 'DELUSER', 'reader');
    }
  }, 20_000);
  it('runs as the user ioredis runs as: a user name without password, a password Redis does not want', async () => {
    const a = admin(redis!.port);
    await a.call('ACL', 'SETUSER', 'nopw', 'on', 'nopass', '~*', '&*', '+@all');
    try {
      // ioredis sends AUTH nopw '' (runs as nopw); a password to a `default` user that wants none is
      // refused by AUTH but ioredis goes on (as default), so the read connection must too.
      for (const [url, user] of [
        [`redis://nopw@127.0.0.1:${redis!.port}`, 'nopw'],
        [`redis://:unwanted@127.0.0.1:${redis!.port}`, 'default'],
      ] as const) {
        const store = openStore({ kind: 'redis', url, prefix: 'rc7:' });
        try {
          const bytes = Uint8Array.of(7);
          await store.commit({ tiles: [tile('k', 1000, bytes)] });
          await untilReadConnection(store, a, { groupBy: 'g', key: 'k' });
          expect(await readLine(a)).toMatch(new RegExp(` user=${user} `));
          // So does the store's ioredis connection (unnamed; not this admin connection).
          const me = String(await a.client('ID'));
          const others = ((await a.client('LIST')) as string)
            .split('\n')
            .filter((l) => / name= /.test(l) && !l.startsWith(`id=${me} `));
          expect(others.map((l) => / user=(\S+) /.exec(l)![1])).toContain(user);
          expect(await store.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([
            [{ level: 1000, start: 0, bytes }],
          ]);
        } finally {
          await store.close();
        }
      }
    } finally {
      await a.call('ACL', 'DELUSER', 'nopw');
    }
  }, 20_000);

  it('reads through ioredis when the handshake is refused, retrying it 1 s, 2 s, 4 s ... apart', async () => {
    const a = admin(redis!.port);
    await a.call('ACL', 'SETUSER', 'noping', 'on', '>pw3', '~*', '&*', '+@all', '-ping');
    const store = openStore({
      kind: 'redis',
      url: `redis://noping:pw3@127.0.0.1:${redis!.port}`,
      prefix: 'rc6:',
    });
    const connections = async () =>
      Number(/total_connections_received:(\d+)/.exec(await a.info('stats'))![1]);
    const bytes = Uint8Array.of(6);
    try {
      await store.commit({ tiles: [tile('k', 1000, bytes)] });
      const before = await connections();
      const until = Date.now() + 3500;
      while (Date.now() < until) {
        expect(await store.readTiles([{ groupBy: 'g', key: 'k' }])).toEqual([
          [{ level: 1000, start: 0, bytes }],
        ]);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await readLine(a)).toBeUndefined();
      // Attempts at ~0, 1 and 3 s (a fixed 1 s would make 4, none at all one per read).
      expect((await connections()) - before).toBe(3);
    } finally {
      await store.close();
      await a.call('ACL', 'DELUSER', 'noping');
    }
  }, 20_000);
});

describe.skipIf(!cluster)('Redis Cluster store reads on its own connections', () => {
  it('reads every master, and a slot moved to another master through ioredis (MOVED), then there', async () => {
    const store = openStore({ kind: 'redis', url: cluster!.url, prefix: 'rc5:', partitions: 6 });
    const nodes = cluster!.masters.map((m) => admin(m.port));
    const keys = Array.from({ length: 200 }, (_, k) => `k${k}`);
    const bytes = (k: number) => Uint8Array.of(k % 256, 1, 2);
    const requests = keys.map((key) => ({ groupBy: 'g', key }));
    const expected = keys.map((_, k) => [{ level: 1000, start: 0, bytes: bytes(k) }]);
    try {
      await store.commit({ tiles: keys.map((key, k) => tile(key, 1000, bytes(k))) });
      for (let i = 0; i < 200 && (await Promise.all(nodes.map(readLine))).some((l) => l === undefined); i++) {
        await store.readTiles(requests);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(await store.readTiles(requests)).toEqual(expected);
      for (const n of nodes) expect(await readLine(n)).toMatch(/ cmd=mget /);

      // Move the slot of store partition 0 (with its keys) to another master.
      const slot = clusterSlot(partitionTags(6)[0]);
      const ids = await Promise.all(nodes.map(async (n) => (await n.call('CLUSTER', 'MYID')) as string));
      const owner = (
        await Promise.all(nodes.map((n) => n.call('CLUSTER', 'COUNTKEYSINSLOT', slot)))
      ).findIndex((c) => Number(c) > 0);
      const to = (owner + 1) % nodes.length;
      await nodes[to].call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[owner]);
      await nodes[owner].call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[to]);
      const moving = (await nodes[owner].call('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as string[];
      expect(moving.length).toBeGreaterThan(0);
      await nodes[owner].call(
        'MIGRATE',
        '127.0.0.1',
        cluster!.masters[to].port,
        '',
        0,
        5000,
        'KEYS',
        ...moving,
      );
      for (const n of nodes) await n.call('CLUSTER', 'SETSLOT', slot, 'NODE', ids[to]);

      // The read connection to the old owner gets MOVED; ioredis follows it and learns the new slot map.
      expect(await store.readTiles(requests)).toEqual(expected);
      expect(await entities(store, requests)).toEqual(expected);
      // Then that slot's reads go to the new owner's read connection (CLIENT LIST's idle counts seconds).
      const moved = requests.filter((r) => moving.some((m) => m.endsWith(`}g:${r.key}`)));
      expect(moved).toHaveLength(moving.length);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await store.readTiles(moved)).toEqual(moved.map((r) => expected[keys.indexOf(r.key)]));
      expect(await readLine(nodes[to])).toMatch(/ idle=0 .* cmd=mget /);
      expect(await readLine(nodes[owner])).toMatch(/ idle=[1-9]/);
    } finally {
      await store.close();
    }
  }, 60_000);
});
