/**
 * A TCP proxy for tests that must lose a reply: the server runs a command, but the link fails before its
 * reply reaches the client (what a resend after reconnect gets wrong: it runs the command twice).
 *
 * @example
 * const proxy = await startCuttingProxy(redis.port);
 * const client = new Redis(proxy.port, '127.0.0.1');
 * proxy.cutNextReply('evalsha'); // the next script runs in Redis; its reply is dropped and the link cut
 */
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { freePort } from './servers.ts';

export interface CuttingProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /**
   * Arms a cut: the next data the server sends is dropped and both connections are closed. With `after`
   * (ASCII, matched case-insensitively, e.g. a Redis command name), the cut waits until the client has
   * sent data containing it, so earlier commands get their replies. Meant for a client that waits for
   * each reply before sending more: with pipelining the dropped data could be an earlier reply. With
   * `times` > 1 and `after`, each cut arms the next one (a client that resends on another link).
   */
  cutNextReply(after?: string, times?: number): void;
  /** Closes every connection through the proxy now (the client sees its link fail and reconnects). */
  dropLinks(): void;
  /** Closes the next `count` connections as soon as they are accepted (reconnect attempts that fail). */
  refuseNext(count: number): void;
  /**
   * Holds the connections accepted from now on: each stays open but is not forwarded (the client's
   * handshake goes unanswered, as with a server that accepts but is stuck) until `release()`.
   */
  holdNew(): void;
  /** Forwards the held connections (and new ones) from now on. */
  release(): void;
  /** Replies dropped so far. */
  readonly cuts: number;
  /** Closes the proxy and every connection through it. */
  close(): Promise<void>;
}

/** Starts a `CuttingProxy` to 127.0.0.1:`port` on a free port. */
export async function startCuttingProxy(port: number): Promise<CuttingProxy> {
  // null: no cut armed; '': cut the next reply; else: arm once the client sends data containing it.
  let waitingFor: string | null = null;
  let armed = false;
  /** What the cut after this one waits for, and how many such cuts are left. */
  let rearm = { after: '', left: 0 };
  let cuts = 0;
  let refuse = 0;
  let held: (() => void)[] | null = null;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (refuse > 0) {
      refuse--;
      return void client.destroy();
    }
    if (held === null) return forward(client);
    client.pause();
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    held.push(() => {
      if (client.destroyed) return;
      forward(client);
      client.resume();
    });
  });
  const forward = (client: Socket) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => {
      if (waitingFor !== null && d.toString('latin1').toLowerCase().includes(waitingFor)) {
        waitingFor = null;
        armed = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!armed) return void client.write(d);
      armed = false;
      cuts++;
      if (rearm.left > 0) {
        rearm.left--;
        waitingFor = rearm.after;
      }
      client.destroy();
      upstream.destroy();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  const proxyPort = await freePort();
  await new Promise<void>((r) => server.listen(proxyPort, '127.0.0.1', r));
  return {
    port: proxyPort,
    cutNextReply(after?: string, times = 1) {
      rearm = { after: (after ?? '').toLowerCase(), left: after ? times - 1 : 0 };
      if (after === undefined || after === '') {
        waitingFor = null;
        armed = true;
      } else waitingFor = after.toLowerCase();
    },
    dropLinks() {
      for (const s of sockets) s.destroy();
    },
    holdNew() {
      held ??= [];
    },
    release() {
      const starts = held ?? [];
      held = null;
      for (const start of starts) start();
    },
    refuseNext(count: number) {
      refuse = count;
    },
    get cuts() {
      return cuts;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
