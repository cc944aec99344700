import { createServer, type Server, type Socket } from 'node:net';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MgetConnection, MgetConnections, MgetLinkError } from '../../src/online/redis-mget.ts';
import { onCommands } from '../support/resp-command.ts';

/**
 * The life of an `MgetConnection`, against a fake server whose answer to each command a test chooses:
 * once no reply can come (a protocol error, or the server ended the link) it is closed at once, so reads
 * go elsewhere rather than being written to a dead link and failing only at their timeout.
 */
type Handler = (args: string[], socket: Socket) => void;

interface FakeServer {
  readonly port: number;
  /** Commands received (each as its arguments), in order. */
  readonly commands: string[][];
  /** How the server answers commands from now on (default: +PONG to PING, +OK to anything else). */
  handle(handler: Handler): void;
  close(): Promise<void>;
}

const standard: Handler = (args, socket) => {
  socket.write(args[0].toUpperCase() === 'PING' ? '+PONG\r\n' : '+OK\r\n');
};

async function startFakeServer(): Promise<FakeServer> {
  const commands: string[][] = [];
  let handler = standard;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onCommands(socket, (args) => {
      commands.push(args);
      handler(args, socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    commands,
    handle: (h) => void (handler = h),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const MGET = Buffer.from('*2\r\n$4\r\nMGET\r\n$1\r\nk\r\n');

const fake = await startFakeServer();
afterAll(() => fake.close());
afterEach(() => fake.handle(standard));

/** A connection to the fake server, once ready (or once its handshake failed: status 'closed'). */
async function connect(
  options: { username?: string; password?: string } = {},
  onClose: (wasReady: boolean) => void = () => {},
): Promise<MgetConnection> {
  const c = new MgetConnection({ host: '127.0.0.1', port: fake.port, ...options }, 2000, onClose);
  for (let i = 0; c.status === 'connecting' && i < 400; i++) await new Promise((r) => setTimeout(r, 5));
  return c;
}

/** Its socket (private), to act at the moment of one of its events. */
const socketOf = (c: MgetConnection) => (c as unknown as { socket: Socket }).socket;

/** A single-node client as `MgetConnections` sees it (ready, with the fake server's address). */
const fakeClient = () => ({ status: 'ready', options: { host: '127.0.0.1', port: fake.port } }) as Redis;

/** Asks `connections` for the read connection until it is there (it opens in the background). */
async function readyConnection(connections: MgetConnections, slot = 0): Promise<MgetConnection> {
  for (let i = 0; i < 400; i++) {
    const c = connections.connection(slot);
    if (c !== null) return c;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('the read connection never got ready');
}

describe('MgetConnection once no reply can come', () => {
  it('is closed at once after a protocol error: a read sent next fails now, not at its timeout', async () => {
    const connections = new MgetConnections(fakeClient(), 2000);
    try {
      const c = await readyConnection(connections);
      fake.handle((args, socket) => {
        if (args[0] === 'MGET') socket.write('!not RESP\r\n');
      });
      await expect(c.mget(MGET, 1, 2000)).rejects.toThrow(/unexpected reply type '!'/);
      // 'close' has not come yet (the socket closes a loop turn later), but the connection is done.
      expect(c.status).toBe('closed');
      expect(connections.connection(0)).toBeNull();
      const t = performance.now();
      await expect(c.mget(MGET, 1, 2000)).rejects.toThrow('Connection is closed.');
      expect(performance.now() - t).toBeLessThan(500);
    } finally {
      connections.close();
    }
  });

  it('is closed when the server ends the link, before its socket closes', async () => {
    const connections = new MgetConnections(fakeClient(), 2000);
    try {
      const c = await readyConnection(connections);
      const socket = socketOf(c);
      type Gap = { status: string; listed: MgetConnection | null; read: Promise<[Error, number]> };
      const inGap = new Promise<Gap>((resolve) =>
        // Runs after the connection's own 'end' listener, before 'close'.
        socket.once('end', () => {
          const sent = performance.now();
          resolve({
            status: c.status,
            listed: connections.connection(0),
            read: c.mget(MGET, 1, 2000).then(
              () => [new Error('no error'), performance.now() - sent],
              (e: Error) => [e, performance.now() - sent],
            ),
          });
        }),
      );
      fake.handle((args, s) => {
        if (args[0] === 'MGET') s.end();
      });
      // The server ends the link on this read, which fails at once too, for its sender to send again.
      const sentFirst = performance.now();
      const first = c.mget(MGET, 1, 2000).then(
        () => [new Error('no error'), 0] as const,
        (e: Error) => [e, performance.now() - sentFirst] as const,
      );
      const gap = await inGap;
      expect(gap.status).toBe('closed');
      expect(gap.listed).toBeNull();
      const [error, ms] = await gap.read;
      expect(error.message).toBe('Connection is closed.');
      expect(ms).toBeLessThan(250);
      const [firstError, firstMs] = await first;
      expect(firstError).toBeInstanceOf(MgetLinkError);
      expect(firstMs).toBeLessThan(250);
    } finally {
      connections.close();
    }
  });
});

describe('MgetConnection whose link drops under its reads', () => {
  it('fails every read in flight at once with MgetLinkError when the link is reset mid-reply', async () => {
    const connections = new MgetConnections(fakeClient(), 2000);
    try {
      const c = await readyConnection(connections);
      let mgets = 0;
      fake.handle((args, socket) => {
        // Half of the first reply, then a reset (an 'error', then 'close'), with the second read sent.
        if (args[0] === 'MGET' && ++mgets === 2) {
          socket.write('*1\r\n$10\r\nabcde');
          setTimeout(() => socket.resetAndDestroy(), 20);
        }
      });
      const sent = performance.now();
      const reads = [1, 2].map(() =>
        c.mget(MGET, 1, 5000).then(
          () => [new Error('no error'), 0] as const,
          (e: Error) => [e, performance.now() - sent] as const,
        ),
      );
      for (const [error, ms] of await Promise.all(reads)) {
        expect(error).toBeInstanceOf(MgetLinkError);
        expect(ms).toBeLessThan(1000); // not the 5 s timeout
      }
      expect(c.status).toBe('closed');
    } finally {
      connections.close();
    }
  });
});

/**
 * A Cluster client as `MgetConnections` sees it: ready, `slots` naming each slot's master, and `nodes`
 * listing the masters that serve a slot (ioredis' pool after its last CLUSTER SLOTS).
 */
function fakeCluster(slots: string[][]): Cluster {
  const client = Object.create(Cluster.prototype) as Cluster;
  const masters = () =>
    [...new Set(slots.map((s) => s[0]))].map((key) => {
      const [host, port] = key.split(':');
      return { options: { host, port: Number(port) } };
    });
  return Object.assign(client, { status: 'ready', slots, nodes: masters });
}

describe('MgetConnections when a Cluster master loses all its slots', () => {
  it('retires its connection on refresh: no new reads, the read in flight answered, then closed', async () => {
    const other = await startFakeServer();
    const slots = [[`127.0.0.1:${fake.port}`], [`127.0.0.1:${other.port}`]];
    const cluster = fakeCluster(slots);
    const connections = new MgetConnections(cluster, 2000);
    try {
      const [first, second] = await Promise.all([0, 1].map((s) => readyConnection(connections, s)));
      let answer: (() => void) | null = null;
      fake.handle((args, socket) => {
        if (args[0] === 'MGET') answer = () => socket.write('*1\r\n$2\r\nok\r\n');
      });
      const read = first.mget(MGET, 1, 2000);
      for (let i = 0; answer === null && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
      // Slot 0 moved to the other master, so the first serves none; the client refreshed its map.
      slots[0] = slots[1];
      cluster.emit('refresh');
      expect(connections.connection(0)).toBe(second);
      expect(first.usable).toBe(false);
      expect(first.status).toBe('ready'); // its read in flight still gets its reply
      answer!();
      expect((await read).value(0)?.toString()).toBe('ok');
      for (let i = 0; first.status !== 'closed' && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
      expect(first.status).toBe('closed');
      expect(second.usable).toBe(true);
    } finally {
      connections.close();
      await other.close();
    }
  });

  it('closes a retired connection once its last read times out, or at once when the store closes', async () => {
    const other = await startFakeServer();
    for (const closeStore of [false, true]) {
      const slots = [[`127.0.0.1:${fake.port}`], [`127.0.0.1:${other.port}`]];
      const cluster = fakeCluster(slots);
      const connections = new MgetConnections(cluster, 2000);
      try {
        const c = await readyConnection(connections, 0);
        fake.handle(() => {}); // reads go unanswered
        const sent = performance.now();
        const read = c.mget(MGET, 1, closeStore ? 10_000 : 200).then(
          () => [new Error('no error'), 0] as const,
          (e: Error) => [e, performance.now() - sent] as const,
        );
        slots[0] = slots[1];
        cluster.emit('refresh');
        if (closeStore) connections.close();
        const [error, ms] = await read;
        expect(error.message).toBe(closeStore ? 'Connection is closed.' : 'Command timed out');
        expect(ms).toBeLessThan(1000);
        expect(c.status).toBe('closed');
      } finally {
        connections.close();
        fake.handle(standard);
      }
    }
    await other.close();
  });
});

describe('MgetConnection closed by its store', () => {
  it('fails the reads in flight at once, not at their timeouts', async () => {
    const connections = new MgetConnections(fakeClient(), 2000);
    const c = await readyConnection(connections);
    fake.handle(() => {}); // reads go unanswered
    const sent = performance.now();
    const reads = [1, 2].map(() =>
      c.mget(MGET, 1, 10_000).then(
        () => [new Error('no error'), 0] as const,
        (e: Error) => [e, performance.now() - sent] as const,
      ),
    );
    await new Promise((r) => setTimeout(r, 50));
    connections.close();
    for (const [error, ms] of await Promise.all(reads)) {
      expect(error.message).toBe('Connection is closed.');
      expect(ms).toBeLessThan(1000);
    }
    expect(c.status).toBe('closed');
  });
});

describe('MgetConnection AUTH, as ioredis sends it', () => {
  const authAnswering = (reply: string): Handler => {
    return (args, socket) => {
      if (args[0] === 'AUTH') socket.write(reply);
      else standard(args, socket);
    };
  };

  it('sends AUTH with the user name even without a password, and none without either', async () => {
    for (const [options, auth] of [
      [{ username: 'u' }, ['AUTH', 'u', '']],
      [{ username: 'u', password: 'p' }, ['AUTH', 'u', 'p']],
      [{ password: 'p' }, ['AUTH', 'p']],
      [{ password: '' }, null],
      [{}, null],
    ] as const) {
      const from = fake.commands.length;
      const c = await connect(options);
      c.close();
      expect(c.status).toBe('closed');
      const sent = fake.commands.slice(from);
      expect(sent.filter((a) => a[0] === 'AUTH')).toEqual(auth === null ? [] : [auth]);
      expect(sent.at(-1)).toEqual(['PING']); // it got ready
    }
  });

  it('goes on after the refusals ioredis goes on after, and fails on any other (reads stay on ioredis)', async () => {
    for (const [reply, ready] of [
      [
        '-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n',
        true,
      ],
      ['-ERR Client sent AUTH, but no password is set\r\n', true],
      ["-ERR wrong number of arguments for 'auth' command\r\n", true],
      ['-WRONGPASS invalid username-password pair or user is disabled.\r\n', false],
      ['-NOPERM this user has no permissions\r\n', false],
    ] as const) {
      fake.handle(authAnswering(reply));
      let closedReady: boolean | null = null;
      const c = await connect({ username: 'u', password: 'p' }, (wasReady) => (closedReady = wasReady));
      expect(c.status).toBe(ready ? 'ready' : 'closed');
      c.close();
      for (let i = 0; closedReady === null && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
      expect(closedReady).toBe(ready);
    }
  });
});
