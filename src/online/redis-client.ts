import { Cluster, Redis } from 'ioredis';
import { redactUrl } from './redact-url.ts';

/** A connection to a single Redis (`redis://`) or to a Redis Cluster (`redis+cluster://`). */
export type RedisClient = Redis | Cluster;

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]+)(?:\/(\d*))?$/;

/** True for `redis+cluster://` and `rediss+cluster://` URLs. */
export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:/.test(url);
}

/**
 * Parses `redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://` for TLS): the
 * seed nodes (any reachable master; the client discovers the rest) and the credentials every node shares.
 *
 * @example
 * parseClusterUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7000');
 * // { nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }], tls: false }
 */
export function parseClusterUrl(url: string): {
  nodes: { host: string; port: number }[];
  tls: boolean;
  username?: string;
  password?: string;
} {
  const m = CLUSTER_URL.exec(url);
  const form = 'redis+cluster://[user:password@]host:port[,host:port...]';
  if (!m) throw new Error(`Redis Cluster URL '${redactUrl(url)}' is malformed; expected ${form}`);
  const [, scheme, auth, hosts, db] = m;
  if (db !== undefined && db !== '' && db !== '0')
    throw new Error(
      `Redis Cluster URL '${redactUrl(url)}' selects database ${db}, but a Cluster has only database 0: drop '/${db}' and keep stores apart by key prefix instead`,
    );
  const nodes = hosts.split(',').map((h) => {
    const hp = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(h.trim());
    if (!hp)
      throw new Error(`Redis Cluster URL '${redactUrl(url)}': '${h}' is not host:port; expected ${form}`);
    return { host: hp[1].replace(/^\[|\]$/g, ''), port: hp[2] === undefined ? 6379 : Number(hp[2]) };
  });
  const out: ReturnType<typeof parseClusterUrl> = { nodes, tls: scheme === 'rediss' };
  if (auth !== undefined) {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon));
    if (user !== '') out.username = user;
    if (colon >= 0) out.password = decodeURIComponent(auth.slice(colon + 1));
  }
  return out;
}

/**
 * Connects to `url`: a `redis+cluster://` URL gives an ioredis Cluster client, anything else a single-node
 * client. Connection errors surface on the commands (each fails after a few reconnect attempts) rather than
 * as 'error' events. The Cluster client sends each command at once: ioredis' auto-pipelining (one write per
 * node per tick) cost more client CPU and latency than it saved on store reads (bench/redis-cluster.ts,
 * ~100 vs ~55 µs per 1-row read), and would route script commands by their key count instead of their keys.
 * With `commandTimeoutMs`, a command with no reply by then fails with "Command timed out" (a hung or
 * unreachable server must fail requests, not hang them); its reply, if it comes later, is dropped, so a
 * write that timed out may still have been applied. A command in flight when the connection drops is sent
 * again once reconnected (ioredis' default), which applies a write twice if Redis had applied it; with
 * `resendAfterReconnect: false` it fails, or is never answered (the caller's own deadline must fail it).
 * On a Cluster that takes `retryDelayOnFailover: 0` too: its nodes' connections reject such a command with
 * "Connection is closed.", which the Cluster layer would otherwise send again 100 ms later. (Its other
 * retries, after MOVED, ASK, TRYAGAIN and CLUSTERDOWN replies, resend only what a node refused to run.)
 *
 * @example
 * const redis = openRedisClient('redis+cluster://127.0.0.1:7000,127.0.0.1:7001');
 */
export function openRedisClient(
  url: string,
  opts: { commandTimeoutMs?: number; resendAfterReconnect?: boolean } = {},
): RedisClient {
  // No timeout by default: blocking reads (the event log's XREADGROUP BLOCK) wait longer on purpose.
  const extra = {
    ...(opts.commandTimeoutMs === undefined ? {} : { commandTimeout: opts.commandTimeoutMs }),
    ...(opts.resendAfterReconnect === false ? { autoResendUnfulfilledCommands: false } : {}),
  };
  let client: RedisClient;
  if (isClusterUrl(url)) {
    const { nodes, tls, username, password } = parseClusterUrl(url);
    const cluster = new Cluster(nodes, {
      ...(opts.resendAfterReconnect === false ? { retryDelayOnFailover: 0 } : {}),
      // ioredis' default delay; the reason (e.g. a seed's name not resolving) is only seen here.
      clusterRetryStrategy: (times, reason) => {
        if ((reason as NodeJS.ErrnoException | undefined)?.syscall !== undefined)
          nodeErrors.set(cluster, { error: reason!, where: 'resolving or reaching the seed nodes' });
        return Math.min(100 + times * 2, 2000);
      },
      redisOptions: {
        maxRetriesPerRequest: 3,
        ...extra,
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(tls ? { tls: {} } : {}),
      },
    });
    // What a node answered or how reaching it failed (WRONGPASS, ECONNREFUSED, a TLS error, ...): ioredis
    // itself only says "Failed to refresh slots cache" and keeps retrying; kept for `untilReady`'s message.
    cluster.on('node error', (error: Error, node: string) => {
      // A failed connection's commands fail with this; keep the connection's own error, said just before.
      const known = nodeErrors.get(cluster);
      if (error.message === CONNECTION_CLOSED && known?.where === `from ${node}`) return;
      nodeErrors.set(cluster, { error, where: `from ${node}` });
    });
    // ioredis asks a node for the slot map on a connection of its own (`duplicate`), whose errors it drops:
    // on a connection refused or a TLS failure, the request only fails with "Connection is closed.".
    cluster.on('+node', (node: Redis) => {
      const where = `from ${node.options.host}:${node.options.port}`;
      const duplicate = node.duplicate.bind(node);
      node.duplicate = (override) =>
        duplicate(override).on('error', (error: Error) => nodeErrors.set(cluster, { error, where }));
    });
    // Errors from before the last good slot map (e.g. a node restarted hours ago) are not a later outage's.
    cluster.on('ready', () => nodeErrors.delete(cluster));
    cluster.on('refresh', () => nodeErrors.delete(cluster));
    client = cluster;
  } else client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3, ...extra });
  // Without a listener ioredis prints unhandled 'error' events; failures surface on the commands instead.
  // Except a failed SELECT of the URL's database (e.g. /99 beyond the server's `databases`): ioredis only
  // emits it and goes on, on database 0; kept for `selectFailure`.
  client.on('error', (e: Error & { command?: { name?: string } }) => {
    if (e?.name === 'ReplyError' && e.command?.name === 'select') selectFailures.set(client, e);
  });
  return client;
}

const selectFailures = new WeakMap<RedisClient, Error>();
/** ioredis' message for a command on a connection that closed or never opened. */
const CONNECTION_CLOSED = 'Connection is closed.';
/** Per Cluster client, the last error of one of its nodes since it was last ready (see `openRedisClient`). */
const nodeErrors = new WeakMap<Cluster, { error: Error; where: string }>();

/**
 * The last error a Cluster client's nodes gave since it was last ready, for people, e.g. "WRONGPASS invalid
 * username-password pair or user is disabled (last error, from 127.0.0.1:7000)"; null if none. Its
 * `error` (a `ReplyError` when a node answered) tells whether waiting can help.
 */
function lastNodeError(client: Cluster): { error: Error; text: string } | null {
  const last = nodeErrors.get(client);
  if (last === undefined) return null;
  const tls = client.options.redisOptions?.tls !== undefined;
  const message = last.error.message;
  // A TLS mismatch shows only as a reset or a hung handshake: say what it may be.
  const hint =
    !tls && /ECONNRESET/.test(message)
      ? '; a node that serves only TLS resets plain connections: use rediss+cluster:// for TLS'
      : tls && /before secure TLS connection was established|wrong version number/.test(message)
        ? '; a node without TLS does not answer a TLS handshake: use redis+cluster:// for plain connections'
        : '';
  return {
    error: last.error,
    text: `${redisErrorText(last.error).replace(/\.$/, '')} (last error, ${last.where}${hint})`,
  };
}

/**
 * Redis's refusal of the database number in the client's URL (redis://host:port/N), or null: the client
 * then runs its commands on database 0, so a store must not use it. Known once the client was ready (the
 * SELECT is answered before anything sent after connecting).
 */
export function selectFailure(client: RedisClient): Error | null {
  return selectFailures.get(client) ?? null;
}

/**
 * The error to fail with once Redis refused the database number in the client's URL (`selectFailure`),
 * else null: a plain error, waiting will not help. `subject` names the user of the client and its URL
 * (redacted), e.g. "Redis store at redis://127.0.0.1:6379/99".
 *
 * @example
 * const refused = databaseRefused(redis, `Redis Streams log at ${where}`); if (refused) throw refused;
 */
export function databaseRefused(client: RedisClient, subject: string): Error | null {
  const refused = selectFailure(client);
  if (refused === null) return null;
  const db = client instanceof Redis ? client.options.db : undefined;
  return new Error(
    `${subject}: Redis refused to select the database number in the URL (${refused.message}); its commands would go to database 0${db === undefined ? '' : `, not ${db}`}. Use a database number the server has (below its 'databases' setting, default 16: 0-15) in --redis (env REDIS_URL), or none.`,
    { cause: refused },
  );
}

/**
 * An ioredis error's message for people: ioredis fails queued commands after `maxRetriesPerRequest` failed
 * reconnects with "Reached the max retries per request limit…", which names a client option, not the problem.
 */
export function redisErrorText(error: unknown): string {
  const e = error as Error & { lastNodeError?: Error };
  if (e?.name === 'MaxRetriesPerRequestError')
    return 'no connection: refused or lost, and 3 reconnect attempts failed';
  // "Failed to refresh slots cache.": why is in its last node's error.
  if (e?.name === 'ClusterAllFailedError')
    return `Redis Cluster not reachable: ${e.lastNodeError ? redisErrorText(e.lastNodeError) : 'no seed node gave its slot map'}`;
  return e?.message ?? String(error);
}

/**
 * A time limit shared by the steps of one operation, e.g. waiting for a ready connection and then for the
 * reply, so that together they take at most `ms` from its creation: pass the same `Deadline` to
 * `untilReady`, `untilConnected` and `withDeadline` (each also takes a plain number of ms, its own limit).
 *
 * @example
 * const deadline = new Deadline(2000);
 * await untilConnected(redis, deadline); // may use up part of the 2 s
 * await withDeadline(redis.get('k'), deadline); // gets what is left
 */
export class Deadline {
  private readonly at: number;
  constructor(readonly ms: number) {
    this.at = performance.now() + ms;
  }
  /** The ms left (0 once past). */
  left(): number {
    return Math.max(0, this.at - performance.now());
  }
}

/** A limit in ms from now, or a shared `Deadline`. */
export type TimeLimit = number | Deadline;
const msLeft = (limit: TimeLimit): number => (typeof limit === 'number' ? limit : limit.left());
/** The limit as configured, for messages: a `Deadline`'s whole span. */
const msOf = (limit: TimeLimit): number => (typeof limit === 'number' ? limit : limit.ms);

/**
 * Those waiting for one client's next 'ready': one 'ready' and one 'end' listener serve them all (a
 * listener per waiter would pass Node's limit of 10 with as many appends waiting out an outage, and print
 * MaxListenersExceededWarning). The listeners go once the client is ready, ends, or has no waiter left.
 */
class ReadyWait {
  private readonly waiters = new Set<{ resolve(): void; reject(error: Error): void }>();
  private readonly onReady = () => this.settle(null);
  private readonly onEnd = () =>
    this.settle(
      new Error(
        this.client instanceof Cluster ? 'the Redis Cluster client closed' : 'the connection to Redis closed',
      ),
    );

  constructor(private readonly client: RedisClient) {
    client.once('ready', this.onReady);
    client.once('end', this.onEnd);
  }

  /** Resolves on the client's next 'ready'; rejects when it ends or once `limit` passes (`timeout()`). */
  wait(limit: TimeLimit, timeout: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        if (this.waiters.size === 0) this.detach();
        reject(timeout());
      }, msLeft(limit));
      this.waiters.add(waiter);
    });
  }

  private settle(error: Error | null): void {
    this.detach();
    for (const w of this.waiters)
      if (error) w.reject(error);
      else w.resolve();
    this.waiters.clear();
  }

  private detach(): void {
    this.client.off('ready', this.onReady);
    this.client.off('end', this.onEnd);
    if (readyWaits.get(this.client) === this) readyWaits.delete(this.client);
  }
}

const readyWaits = new WeakMap<RedisClient, ReadyWait>();

/** Resolves on `client`'s next 'ready'; rejects when it ends or once `limit` passes (`timeout()`'s error). */
function nextReady(client: RedisClient, limit: TimeLimit, timeout: () => Error): Promise<void> {
  let shared = readyWaits.get(client);
  if (shared === undefined) readyWaits.set(client, (shared = new ReadyWait(client)));
  return shared.wait(limit, timeout);
}

/**
 * Null when `client` can take commands now; else a promise that resolves once a Cluster client is ready,
 * or rejects after `limit` (default 10 s; a `Deadline` to share it with the command), naming the nodes'
 * last error (`lastNodeError`, also its cause), or if the client is closed. (A Cluster client queues
 * commands until it has the slot map, with no limit: without this, every operation on an unreachable
 * Cluster would wait forever. A single-node client fails its commands after `maxRetriesPerRequest`
 * reconnects instead.) Any number of concurrent callers share one wait.
 *
 * @example
 * await untilReady(redis);
 */
export function untilReady(client: RedisClient, limit: TimeLimit = 10_000): Promise<void> | null {
  if (!(client instanceof Cluster) || client.status === 'ready') return null;
  if (client.status === 'end') return Promise.reject(new Error('the Redis Cluster client is closed'));
  return nextReady(client, limit, () => {
    // The nodes' last error says why (a wrong password, a name that does not resolve, ...); it is the
    // cause, so that callers can tell an answer waiting will not change (a `ReplyError`).
    const last = lastNodeError(client);
    return new Error(
      `Redis Cluster not ready within ${msOf(limit)} ms (client ${client.status}): ${last?.text ?? 'no seed node reachable, or cluster_state not ok'}`,
      last === null ? undefined : { cause: last.error },
    );
  });
}

/** ioredis' default `slotsRefreshTimeout`: how long a Cluster client waits for one seed's slot map. */
const SLOT_MAP_WAIT_MS = 1000;

/**
 * How long an operation waits for a Cluster client of `seeds` seed nodes that has not been ready yet:
 * max(10 s, seeds x 1 s + `timeoutMs`). ioredis asks the seeds for the slot map one at a time in random
 * order, up to 1 s each (`slotsRefreshTimeout`), so a healthy Cluster with a few hung seeds may take
 * seconds to get ready the first time. (Once it has been ready, losing it is an outage: wait only the
 * command timeout then.)
 *
 * @example
 * untilReady(cluster, firstReadyMs(5, 2000)); // 10 s
 */
export function firstReadyMs(seeds: number, timeoutMs: number): number {
  return Math.max(10_000, seeds * SLOT_MAP_WAIT_MS + timeoutMs);
}

/**
 * Null when `client` (a single-node client, or one node's connection of a Cluster) is ready: a command sent
 * now is written at once. Else a promise that connects it if it is lazy ('wait') and resolves once it is
 * ready, or rejects after `limit` (a `Deadline` to share it with the command) or if it ends. For writes
 * that must not wait in ioredis' offline queue, which would send them whenever the link is back, long after
 * their caller gave up on them. Any number of concurrent callers share one wait.
 *
 * @example
 * await untilConnected(redis, 2000); if (redis.status === 'ready') redis.set('k', 'v');
 */
export function untilConnected(client: Redis, limit: TimeLimit): Promise<void> | null {
  if (client.status === 'ready') return null;
  if (client.status === 'end') return Promise.reject(new Error('the connection to Redis is closed'));
  const wait = nextReady(
    client,
    limit,
    () => new Error(`not connected to Redis within ${msOf(limit)} ms (${client.status})`),
  );
  if (client.status === 'wait') client.connect().catch(() => {});
  return wait;
}

/**
 * PINGs every master of a Cluster client's slot map, each given `timeoutMs`, and resolves to what failed:
 * one line per master that did not answer (naming it and its slot count), plus slots no master serves;
 * empty when all answer. One PING through the client would ask one node, so a master down (whose slots'
 * reads fail) would go unnoticed. A master whose connection ioredis dropped is no longer among
 * `nodes('master')` but keeps its slots in the map until a failover: it is reported as not connected.
 *
 * @example
 * await pingMasters(cluster, 1000); // ['127.0.0.1:7001 (5461 slots): not connected (down or unreachable)']
 */
export async function pingMasters(cluster: Cluster, timeoutMs: number): Promise<string[]> {
  const slotsOf = new Map<string, number>();
  let unserved = 0;
  for (let s = 0; s < CLUSTER_SLOTS; s++) {
    const master = cluster.slots[s]?.[0];
    if (master === undefined) unserved++;
    else slotsOf.set(master, (slotsOf.get(master) ?? 0) + 1);
  }
  const connected = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
  const failed = await Promise.all(
    [...slotsOf].map(async ([key, slots]) => {
      const node = connected.get(key);
      const name = `${key} (${slots} slots)`;
      if (node === undefined) return `${name}: not connected (down or unreachable)`;
      try {
        await withDeadline(node.ping(), timeoutMs);
        return null;
      } catch (e) {
        return `${name}: ${redisErrorText(e)}`;
      }
    }),
  );
  const out = failed.filter((f): f is string => f !== null);
  if (unserved > 0) out.push(`${unserved} of ${CLUSTER_SLOTS} slots have no master`);
  return out;
}

const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    table[i] = c & 0xffff;
  }
  return table;
})();

/**
 * The Cluster hash slot of a key that holds no `{`: CRC16 (XMODEM) of its UTF-8 bytes mod 16384, as
 * Redis computes it (CLUSTER KEYSLOT).
 *
 * @example
 * clusterSlot('foo'); // 12182
 */
export function clusterSlot(key: string): number {
  if (key.includes('{')) throw new Error(`clusterSlot('${key}'): keys with a hash tag are not supported`);
  let crc = 0;
  for (const byte of Buffer.from(key, 'utf8'))
    crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ byte) & 0xff];
  return crc % CLUSTER_SLOTS;
}

/**
 * `promise`, or a rejection `no reply within <ms> ms` once `limit` passes first (ms from now, or what is
 * left of a `Deadline`, whose whole span the message names). The promise runs on; its late failure is
 * ignored.
 *
 * @example
 * await withDeadline(redis.ping(), 1000);
 */
export async function withDeadline<T>(promise: Promise<T>, limit: TimeLimit): Promise<T> {
  promise.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no reply within ${msOf(limit)} ms`)), msLeft(limit));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Environment variable overriding the default reply timeout of Redis commands (store and event log). */
export const REDIS_TIMEOUT_ENV = 'TESSERA_REDIS_TIMEOUT_MS';
/** Default reply timeout of Redis commands, in ms (redis-store.ts `DEFAULT_COMMAND_TIMEOUT_MS` too). */
export const DEFAULT_REDIS_TIMEOUT_MS = 2000;
