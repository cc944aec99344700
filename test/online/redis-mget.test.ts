import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { MgetConnection, MgetReplyError, type MgetValues } from '../../src/online/redis-mget.ts';
import { rng } from '../support/rng.ts';
import { onCommands } from '../support/resp-command.ts';

/**
 * `MgetConnection` parses MGET replies itself, from whatever socket chunks they arrive in. Against a fake
 * server that answers with chosen bytes, written in random pieces (down to one byte): the values come out
 * as written, nulls in both RESP2 and RESP3 form, error replies as `MgetReplyError`, and a reply that comes
 * after its command timed out is dropped without shifting later replies onto the wrong commands.
 */
interface FakeRedis {
  readonly port: number;
  /** Commands received (each as its arguments), in order. */
  readonly commands: string[][];
  /** The reply to the next MGET (raw bytes), written in pieces split at `cuts`. */
  answer(bytes: Buffer, cuts: number[]): void;
  close(): Promise<void>;
}

async function startFakeRedis(): Promise<FakeRedis> {
  const commands: string[][] = [];
  const answers: { bytes: Buffer; cuts: number[] }[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let writing = Promise.resolve();
    onCommands(socket, (args) => {
      commands.push(args);
      const name = args[0].toUpperCase();
      if (name !== 'MGET') {
        writing = writing.then(() => void socket.write(name === 'PING' ? '+PONG\r\n' : '+OK\r\n'));
        return;
      }
      const { bytes, cuts } = answers.shift()!;
      writing = writing.then(async () => {
        let from = 0;
        for (const cut of [...cuts, bytes.length]) {
          socket.write(bytes.subarray(from, cut));
          from = cut;
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    });
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    commands,
    answer: (bytes, cuts) => void answers.push({ bytes, cuts }),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A reply to MGET of `values` (null: absent; RESP3 form when `resp3`). */
function mgetReply(values: readonly (Buffer | null)[], resp3: boolean): Buffer {
  const parts = [Buffer.from(`*${values.length}\r\n`)];
  for (const v of values)
    parts.push(
      v === null
        ? Buffer.from(resp3 ? '_\r\n' : '$-1\r\n')
        : Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n')]),
    );
  return Buffer.concat(parts);
}

const mgetCommand = (count: number) =>
  Buffer.from(
    `*${count + 1}\r\n$4\r\nMGET\r\n` +
      Array.from({ length: count }, (_, i) => `$${String(i).length}\r\n${i}\r\n`).join(''),
  );

const valuesOf = (got: MgetValues) => Array.from({ length: got.count }, (_, i) => got.value(i));

const fake = await startFakeRedis();
afterAll(() => fake.close());

async function connect(): Promise<MgetConnection> {
  const c = new MgetConnection({ host: '127.0.0.1', port: fake.port }, 2000, () => {});
  for (let i = 0; c.status === 'connecting' && i < 200; i++) await new Promise((r) => setTimeout(r, 5));
  expect(c.status).toBe('ready');
  return c;
}

describe('MgetConnection', () => {
  it('sends the handshake (name, PING) and reads values split across any chunks', async () => {
    const c = await connect();
    try {
      expect(fake.commands.slice(-2)).toEqual([['CLIENT', 'SETNAME', 'tessera-read'], ['PING']]);
      const random = rng(11);
      for (let round = 0; round < 40; round++) {
        const count = 1 + Math.floor(random() * (round < 3 ? 6 : 20));
        const values = Array.from({ length: count }, () => {
          const r = random();
          if (r < 0.2) return null;
          // Small values in the rounds that write each byte apart (a millisecond each).
          const size = r < 0.3 ? 0 : Math.floor(random() ** 3 * (round < 3 ? 40 : 3000));
          return Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256)));
        });
        const bytes = mgetReply(values, round % 2 === 1);
        // Every byte a chunk of its own in the first rounds, then a few random cuts.
        const cuts =
          round < 3
            ? Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)
            : [
                ...new Set(Array.from({ length: 4 }, () => 1 + Math.floor(random() * (bytes.length - 1)))),
              ].sort((a, b) => a - b);
        fake.answer(bytes, cuts);
        const got = await c.mget(mgetCommand(count), count, 5000);
        expect(valuesOf(got)).toEqual(values);
      }
    } finally {
      c.close();
    }
  }, 30_000);

  it('answers an error reply as MgetReplyError and a wrong count as an error, then goes on', async () => {
    const c = await connect();
    try {
      fake.answer(Buffer.from('-MOVED 3999 127.0.0.1:7001\r\n'), [3]);
      const moved = await c.mget(mgetCommand(2), 2, 5000).catch((e: Error) => e);
      expect(moved).toBeInstanceOf(MgetReplyError);
      expect((moved as Error).message).toBe('MOVED 3999 127.0.0.1:7001');
      fake.answer(mgetReply([Buffer.from('a')], false), []);
      await expect(c.mget(mgetCommand(2), 2, 5000)).rejects.toThrow(/1 values in reply to an MGET of 2 keys/);
      fake.answer(mgetReply([Buffer.from('x'), null], false), [5]);
      expect(valuesOf(await c.mget(mgetCommand(2), 2, 5000))).toEqual([Buffer.from('x'), null]);
    } finally {
      c.close();
    }
  });

  it('fails a command with no reply in time and drops its late reply', async () => {
    const c = await connect();
    try {
      // The first reply takes ~60 ms (60 pieces, 1 ms apart): its command times out after 20 ms.
      const slow = mgetReply([Buffer.alloc(100, 1)], false);
      fake.answer(
        slow,
        Array.from({ length: 60 }, (_, i) => i + 1),
      );
      fake.answer(mgetReply([Buffer.from('second')], false), []);
      const first = c.mget(mgetCommand(1), 1, 20).catch((e: Error) => e);
      const second = c.mget(mgetCommand(1), 1, 5000);
      expect(((await first) as Error).message).toBe('Command timed out');
      expect(valuesOf(await second)).toEqual([Buffer.from('second')]);
    } finally {
      c.close();
    }
  });
});
