import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis-client.ts';

/**
 * The values of one MGET: value `i` is `sources[i][at[i], at[i] + len[i])`, or absent when `len[i] < 0`.
 * A reply read by `MgetConnection` has the few socket chunks it arrived in as sources, so a fetch decodes
 * its values in place with no Buffer object per value; one read through ioredis has a Buffer per value.
 */
export class MgetValues {
  readonly sources: Uint8Array[];
  readonly at: Int32Array;
  readonly len: Int32Array;

  constructor(
    /** How many values (the MGET's keys) it holds; a reader may lower it to drop trailing ones. */
    public count: number,
    sources?: Uint8Array[],
    at?: Int32Array,
    len?: Int32Array,
  ) {
    this.sources = sources ?? new Array<Uint8Array>(count);
    this.at = at ?? new Int32Array(count);
    this.len = len ?? new Int32Array(count);
  }

  /** The values of an MGET as ioredis returns them (a Buffer or null per key). */
  static ofBuffers(list: readonly (Buffer | null)[]): MgetValues {
    const out = new MgetValues(list.length);
    for (let i = 0; i < list.length; i++) {
      const v = list[i];
      if (v === null) out.len[i] = -1;
      else {
        out.sources[i] = v;
        out.len[i] = v.length;
      }
    }
    return out;
  }

  /** Value `i` as a Buffer (a view, no copy), or null when absent. */
  value(i: number): Buffer | null {
    const len = this.len[i];
    if (len < 0) return null;
    const s = this.sources[i];
    return Buffer.from(s.buffer, s.byteOffset + this.at[i], len);
  }

  /** Makes value `i` value `j` of `from`. */
  copy(i: number, from: MgetValues, j: number): void {
    this.sources[i] = from.sources[j];
    this.at[i] = from.at[j];
    this.len[i] = from.len[j];
  }
}

/** An error reply of Redis to a command of an `MgetConnection` (ioredis calls its own `ReplyError`). */
export class MgetReplyError extends Error {
  override readonly name = 'ReplyError';
}

/**
 * An MGET of an `MgetConnection` whose link dropped (the server ended or reset it, or it failed) before its
 * reply came: Redis may or may not have run it, and no reply can come. An MGET is safe to send again.
 */
export class MgetLinkError extends Error {
  override readonly name = 'MgetLinkError';
  constructor() {
    super('Redis read connection: the link dropped before the reply came');
  }
}

/** The connection settings `MgetConnection` takes from an ioredis client (or a Cluster node's). */
export interface MgetConnectOptions {
  readonly host?: string;
  readonly port?: number;
  readonly path?: string | null;
  readonly family?: number;
  readonly username?: string | null;
  readonly password?: string | null;
  readonly db?: number;
  readonly tls?: TlsOptions | boolean | null;
}

/** What `CLIENT LIST` names a store's read connection. */
export const MGET_CONNECTION_NAME = 'tessera-read';

/** A command waiting for its reply: an MGET of `count` keys, or a handshake command (`count` -1). */
interface Waiting {
  readonly count: number;
  resolve(value: MgetValues | string): void;
  reject(error: Error): void;
  /** Failed already (timed out); its reply, when it comes, is dropped. */
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

// Parser states.
const TYPE = 0; // a reply's type byte
const NUMBER = 1; // the digits of a length or count, up to '\r'
const NUMBER_LF = 2; // the '\n' after them
const LINE = 3; // a simple string or error, up to '\r'
const LINE_LF = 4;
const ITEM = 5; // an array element's type byte
const SKIP = 6; // `skip` bytes: an element's and its CRLF (copied to `filling` if split), or a null's CRLF

/**
 * One connection that sends MGETs written as RESP (`RedisStore.mgetBytes`) and parses their replies itself:
 * each value is an offset and length in the socket chunk it arrived in (only a value split between two
 * chunks is copied, into a buffer of its own), where ioredis' decoder builds a Buffer per value (a fifth
 * of a 100-row fetch's read CPU, with its garbage). Nor is a reply copied into one buffer: that copy cost
 * a 100-row fetch (~250 KB over ~5 chunks) more than its few chunk switches cost `TileColumns`. It
 * speaks RESP2 and handles only what MGET and its handshake answer: arrays of bulk strings and nulls,
 * simple strings and errors.
 *
 * The handshake is what ioredis sends for the same options: AUTH (as ioredis: with the user name whenever
 * there is one, with the password alone otherwise, the same refusals tolerated), SELECT db, then
 * CLIENT SETNAME (its failure ignored) and PING; the connection is ready once PING answers. A command
 * with no reply within its timeout fails with "Command timed out", and its reply, if it comes, is dropped.
 * When the link drops (ended, reset or failed, even mid-reply), the reads in flight fail at once with
 * `MgetLinkError`, for their sender to send again (`RedisStore.send`, through ioredis with the time left)
 * rather than wait out a timeout for a reply that cannot come. `close()` fails them at once too;
 * `retire()` lets them finish first.
 */
export class MgetConnection {
  /** 'closed' from the moment no reply can come any more (the link ended or failed), before 'close'. */
  status: 'connecting' | 'ready' | 'closed' = 'connecting';
  /** It got ready (its handshake passed) before it closed: see `onClose`. */
  private wasReady = false;
  /** Takes no more reads, and closes once those in flight are settled (`retire`). */
  private retiring = false;
  private readonly socket: Socket;
  private readonly waiting: Waiting[] = [];
  private handshakeTimer: NodeJS.Timeout | undefined;

  // The reply being parsed.
  private state = TYPE;
  private number = 0;
  private negative = false;
  /** What the number being parsed is: the count of an array, or the length of one of its elements. */
  private numberIsCount = false;
  private line = '';
  private lineIsError = false;
  private skip = 0;
  /** The copy of a value split between chunks, while it fills; `filled` bytes of it are there. */
  private filling: Buffer | null = null;
  private filled = 0;
  private count = 0;
  private item = 0;
  private sources: Uint8Array[] = [];
  private at: Int32Array = new Int32Array(0);
  private len: Int32Array = new Int32Array(0);

  constructor(
    options: MgetConnectOptions,
    handshakeMs: number,
    private readonly onClose: (wasReady: boolean) => void,
  ) {
    const target = options.path
      ? { path: options.path }
      : { host: options.host ?? '127.0.0.1', port: options.port ?? 6379, family: options.family ?? 0 };
    this.socket = options.tls
      ? tlsConnect({ ...target, ...(typeof options.tls === 'object' ? options.tls : {}) })
      : createConnection(target);
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, 30_000);
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    this.socket.on('error', () => {}); // 'close' follows
    // The server ended the link: no reply comes any more, and a read written now would be lost (it would
    // fail only at its timeout). 'close' follows, maybe turns of the event loop later.
    this.socket.on('end', () => this.dropped());
    this.socket.on('close', () => this.closed());
    this.handshakeTimer = setTimeout(() => this.socket.destroy(), handshakeMs);
    const steps: Promise<unknown>[] = [];
    const send = (args: string[]) => {
      this.socket.write(respCommand(args));
      return new Promise<MgetValues | string>((resolve, reject) =>
        this.waiting.push({ count: -1, resolve, reject, settled: false, timer: undefined }),
      );
    };
    // As ioredis (Redis.js `condition.auth`): a user name sends AUTH with it even without a password
    // (`redis://user@host` runs as that user, password ''); else AUTH only with a password.
    const auth = options.username
      ? ['AUTH', options.username, options.password ?? '']
      : options.password
        ? ['AUTH', options.password]
        : null;
    if (auth !== null) steps.push(send(auth).catch(tolerateAuthError));
    if (options.db) steps.push(send(['SELECT', String(options.db)]));
    steps.push(send(['CLIENT', 'SETNAME', MGET_CONNECTION_NAME]).catch(() => {}));
    steps.push(send(['PING']));
    Promise.all(steps).then(
      () => {
        clearTimeout(this.handshakeTimer);
        if (this.status === 'connecting') {
          this.status = 'ready';
          this.wasReady = true;
        }
      },
      () => this.socket.destroy(),
    );
  }

  /** Ready, and its socket still takes writes: a read sent now is written. */
  get usable(): boolean {
    return this.status === 'ready' && !this.retiring && this.socket.writable;
  }

  /**
   * Sends `bytes`, an MGET of `count` keys, and resolves to its values; rejects with `MgetReplyError` if
   * Redis answers an error (e.g. MOVED), or "Command timed out" once `timeoutMs` passes first. Rejects at
   * once ("Connection is closed.") unless `usable`.
   */
  mget(bytes: Buffer, count: number, timeoutMs: number): Promise<MgetValues> {
    if (!this.usable) return Promise.reject(new Error('Connection is closed.'));
    return new Promise<MgetValues>((resolve, reject) => {
      const entry: Waiting = {
        count,
        resolve: resolve as (value: MgetValues | string) => void,
        reject,
        settled: false,
        timer: undefined,
      };
      entry.timer = setTimeout(() => {
        entry.settled = true;
        reject(new Error('Command timed out'));
        if (this.retiring) this.closeIfIdle();
      }, timeoutMs);
      this.waiting.push(entry);
      this.socket.write(bytes);
    });
  }

  /**
   * Closes it now. The commands in flight fail at once ("Connection is closed.", as ioredis' after `quit`),
   * not at their timeouts: their replies can no longer come, and their timers would keep the process alive.
   */
  close(): void {
    this.status = 'closed';
    for (const w of this.waiting)
      if (!w.settled) {
        w.settled = true;
        clearTimeout(w.timer);
        w.reject(new Error('Connection is closed.'));
      }
    this.waiting.length = 0;
    this.socket.destroy();
  }

  /**
   * Takes no more reads (`usable` is false from now on) and closes once every read in flight has its reply
   * or timed out: for a Cluster node that no longer serves any slot, whose reads sent before may still be
   * answered (or answer MOVED, and go through ioredis).
   */
  retire(): void {
    this.retiring = true;
    if (this.status === 'connecting') this.close();
    else this.closeIfIdle();
  }

  private closeIfIdle(): void {
    for (const w of this.waiting) if (!w.settled) return;
    this.close();
  }

  /** No reply can come any more: everything in flight fails now (reads with `MgetLinkError`). */
  private dropped(): void {
    this.status = 'closed';
    for (const w of this.waiting)
      if (!w.settled) {
        w.settled = true;
        clearTimeout(w.timer);
        w.reject(w.count < 0 ? new Error('Connection is closed.') : new MgetLinkError());
      }
    this.waiting.length = 0;
  }

  private closed(): void {
    clearTimeout(this.handshakeTimer);
    this.dropped();
    this.onClose(this.wasReady);
  }

  /** A protocol error: the stream cannot be parsed further, so the connection goes. */
  private fail(error: Error): void {
    for (const w of this.waiting)
      if (!w.settled) {
        w.settled = true;
        clearTimeout(w.timer);
        w.reject(error);
      }
    this.waiting.length = 0;
    // Nothing more can be parsed: reads from now on go elsewhere ('close' comes a turn or more later).
    this.status = 'closed';
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const size = chunk.length;
    let i = 0;
    while (i < size) {
      switch (this.state) {
        case TYPE: {
          const type = chunk[i++];
          if (type === 42 /* * */) {
            this.numberIsCount = true;
            this.startNumber();
          } else if (type === 43 /* + */ || type === 45 /* - */) {
            this.state = LINE;
            this.line = '';
            this.lineIsError = type === 45;
          } else
            throw new Error(`Redis read connection: unexpected reply type '${String.fromCharCode(type)}'`);
          break;
        }
        case NUMBER: {
          const c = chunk[i++];
          if (c >= 48 && c <= 57) this.number = this.number * 10 + (c - 48);
          else if (c === 13) this.state = NUMBER_LF;
          else if (c === 45 && this.number === 0) this.negative = true;
          else throw new Error(`Redis read connection: bad byte ${c} in a length`);
          break;
        }
        case NUMBER_LF: {
          i++;
          const n = this.negative ? -this.number : this.number;
          if (this.numberIsCount) {
            if (n < 0) throw new Error('Redis read connection: a null array in reply to MGET');
            this.count = n;
            this.item = 0;
            this.sources = new Array<Uint8Array>(n);
            this.at = new Int32Array(n);
            this.len = new Int32Array(n);
            if (n === 0) this.complete();
            else this.state = ITEM;
          } else if (n < 0) {
            this.len[this.item] = -1;
            this.nextItem();
          } else {
            this.len[this.item] = n;
            if (i + n <= size) {
              this.sources[this.item] = chunk;
              this.at[this.item] = i;
            } else {
              this.filling = this.sources[this.item] = Buffer.allocUnsafe(n);
              this.filled = 0;
              this.at[this.item] = 0;
            }
            this.skip = n + 2;
            this.state = SKIP;
          }
          break;
        }
        case ITEM: {
          const type = chunk[i++];
          if (type === 36 /* $ */) {
            this.numberIsCount = false;
            this.startNumber();
          } else if (type === 95 /* _ (RESP3 null) */) {
            this.len[this.item] = -1;
            this.at[this.item] = -1; // marks the null's own CRLF, skipped below
            this.skip = 2;
            this.state = SKIP;
          } else
            throw new Error(`Redis read connection: unexpected element type '${String.fromCharCode(type)}'`);
          break;
        }
        case SKIP: {
          const step = Math.min(this.skip, size - i);
          const filling = this.filling;
          if (filling !== null) {
            const take = Math.min(filling.length - this.filled, step);
            chunk.copy(filling, this.filled, i, i + take);
            this.filled += take;
          }
          i += step;
          this.skip -= step;
          if (this.skip === 0) this.nextItem();
          break;
        }
        case LINE: {
          const c = chunk[i++];
          if (c === 13) this.state = LINE_LF;
          else this.line += String.fromCharCode(c);
          break;
        }
        case LINE_LF: {
          i++;
          this.state = TYPE;
          const w = this.take();
          if (w === undefined) break;
          if (this.lineIsError) w.reject(new MgetReplyError(this.line));
          else if (w.count >= 0)
            w.reject(new Error(`Redis read connection: '+${this.line}' in reply to MGET`));
          else w.resolve(this.line);
          break;
        }
      }
    }
  }

  private startNumber(): void {
    this.number = 0;
    this.negative = false;
    this.state = NUMBER;
  }

  private nextItem(): void {
    this.filling = null;
    if (++this.item === this.count) this.complete();
    else this.state = ITEM;
  }

  /** The reply is parsed: hands its values to the command it answers. */
  private complete(): void {
    this.state = TYPE;
    const w = this.take();
    if (w === undefined) return;
    if (w.count !== this.count) {
      w.reject(
        new Error(`Redis read connection: ${this.count} values in reply to an MGET of ${w.count} keys`),
      );
      return;
    }
    w.resolve(new MgetValues(this.count, this.sources, this.at, this.len));
    this.sources = [];
  }

  /** The command a complete reply answers; undefined when it already failed (timed out). */
  private take(): Waiting | undefined {
    const w = this.waiting.shift();
    if (w === undefined) throw new Error('Redis read connection: a reply to no command');
    clearTimeout(w.timer);
    if (w.settled) return undefined;
    w.settled = true;
    // Its last read answered: close (after `w` settles, synchronously, with no reply left to parse).
    if (this.retiring) this.closeIfIdle();
    return w;
  }
}

/**
 * The AUTH refusals ioredis lets its connection go on after (event_handler.js `handleAuthError`), so the
 * read connection runs as the same user as the client's: a password given to a server or `default` user
 * that wants none (ioredis' HELLO 3 AUTH passes there), or a user name sent to Redis 5 or older (which
 * has one user). Any other refusal fails the handshake (reads stay on ioredis).
 */
function tolerateAuthError(error: Error): void {
  const m = error.message;
  if (
    m.includes('no password is set') ||
    m.includes('without any password configured for the default user') ||
    m.includes("wrong number of arguments for 'auth' command")
  )
    return;
  throw error;
}

/** A command as RESP (the handshake's few). */
function respCommand(args: readonly string[]): Buffer {
  let text = `*${args.length}\r\n`;
  for (const a of args) text += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return Buffer.from(text, 'utf8');
}

/**
 * How long a server whose read connection failed before it was ready is read through ioredis only: 1 s,
 * doubling per failure in a row up to 30 s (a server that refuses the handshake, e.g. PING by ACL, costs
 * a connection attempt per 30 s, not per read).
 */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * The read connections of a store's ioredis client (`MgetConnection`): one to a single Redis, or one per
 * Cluster master, each opened with the options of the ioredis connection to the same server (so the same
 * URL's host, port, TLS, credentials and database). `connection(slot)` answers only a ready one, opening it
 * in the background otherwise: until then (and while one is down) reads go through ioredis as before.
 * When a Cluster client refreshes its slot map, the connections to masters no longer in it (left with no
 * slot) are retired: they close once their reads in flight are answered, not with the store.
 */
export class MgetConnections {
  private readonly open = new Map<string, MgetConnection>();
  /** Per server key: when to try again, and the failures in a row so far. */
  private readonly retry = new Map<string, { at: number; failures: number }>();
  /** Those `prune` retired, until they close (the store's `close` closes them at once). */
  private readonly retired = new Set<MgetConnection>();
  private closed = false;
  private readonly onRefresh = () => this.prune();

  constructor(
    private readonly client: RedisClient,
    /** The handshake's time limit (the store's command timeout). */
    private readonly timeoutMs: number,
  ) {
    if (client instanceof Cluster) client.on('refresh', this.onRefresh);
  }

  /** Retires the connections to servers the Cluster client no longer has as masters (after 'refresh'). */
  private prune(): void {
    const client = this.client as Cluster;
    // Its pool holds the nodes of the last CLUSTER SLOTS (those serving a slot); `slots` keeps entries of
    // a range no node serves any more.
    const live = new Set(client.nodes('master').map((n) => `${n.options.host}:${n.options.port}`));
    for (const [key, connection] of this.open)
      if (!live.has(key)) {
        this.open.delete(key);
        this.retired.add(connection);
        connection.retire();
      }
    for (const key of this.retry.keys()) if (!live.has(key)) this.retry.delete(key);
  }

  /** The ready read connection to the server of `slot` (its master on a Cluster), or null (use ioredis). */
  connection(slot: number): MgetConnection | null {
    const client = this.client;
    if (this.closed || client.status !== 'ready') return null;
    const key = client instanceof Cluster ? client.slots[slot]?.[0] : '';
    if (key === undefined) return null;
    const open = this.open.get(key);
    if (open !== undefined) return open.usable ? open : null;
    const retry = this.retry.get(key);
    if (retry !== undefined && retry.at > performance.now()) return null;
    const options =
      client instanceof Cluster
        ? client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key)?.options
        : client.options;
    if (options === undefined) return null;
    const connection = new MgetConnection(options, this.timeoutMs, (wasReady) => {
      if (this.retired.delete(connection) || this.open.get(key) !== connection) return; // or the store closed
      this.open.delete(key);
      if (wasReady) this.retry.delete(key);
      else {
        const failures = (this.retry.get(key)?.failures ?? 0) + 1;
        const wait = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** (failures - 1));
        this.retry.set(key, { at: performance.now() + wait, failures });
      }
    });
    this.open.set(key, connection);
    return null;
  }

  close(): void {
    this.closed = true;
    if (this.client instanceof Cluster) this.client.off('refresh', this.onRefresh);
    for (const c of [...this.open.values(), ...this.retired]) c.close();
    this.open.clear();
    this.retired.clear();
  }
}
