import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { decodeLogEvent } from '../log-event-check.ts';
import {
  DEFAULT_REDIS_TIMEOUT_MS,
  openRedisClient,
  REDIS_TIMEOUT_ENV,
  redisErrorText,
  clusterSlot,
  databaseRefused,
  Deadline,
  untilConnected,
  untilReady,
  withDeadline,
  type RedisClient,
} from '../redis-client.ts';
import type { AppendOptions, AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import { batchFingerprint, IdempotencyConflictError, idempotencyWindowOption } from './idempotency.ts';
import {
  AppendOutcomeUnknownError,
  LogUnavailableError,
  EVENTS_PER_TIMEOUT,
  scaledTimeout,
  timeoutOption,
  unknownAppendAdvice,
} from './log-unavailable.ts';
import { redactUrl } from '../redact-url.ts';
import { partitionOf } from './partition.ts';
import { checkRecordedPartitions } from './partition-record.ts';

/**
 * Redis Streams log. Each (topic, partition) is the stream `<prefix>log:{<topic>:<p>}` plus a counter key in
 * the same hash slot. Offsets are dense numbers: the entry with offset `n` has the explicit stream ID
 * `0-(n+1)` (IDs must exceed 0-0), assigned by a Lua script that bumps the counter and XADDs atomically, so
 * concurrent producers still get dense, monotonic offsets and `seq` = offset is a plain number. Each entry
 * has one field `e` holding the event's JSON. A partition's end offset is its counter, or the sequence of
 * its stream's last ID when that is past it (a producer that XADDs `0-(n+1)` IDs directly, not bumping the
 * counter). Reads are XRANGE from `0-(from+1)`; waiting uses XREAD BLOCK on one connection of its own; a
 * read that may wait while another holds it looks again after up to 50 ms (readers of idle partitions
 * would otherwise spin on XRANGE).
 *
 * On a single Redis an append, or `appendTopics` of a source's topics, is ONE script over every (topic,
 * partition) it touches: all-or-nothing. The log also runs on a Redis Cluster (`redis+cluster://host:port,...`),
 * where every command must stay in one hash slot, i.e. one (topic, partition): an append sends one script
 * per partition, concurrently, so a failure part-way may leave a batch in some partitions only (as with
 * NATS and Kafka), and there is no `appendTopics`.
 *
 * A hung or unreachable Redis fails commands instead of hanging them: each gets a reply deadline,
 * `commandTimeoutMs` (default env TESSERA_REDIS_TIMEOUT_MS, else 2000 ms, as the Redis store's) per
 * `EVENTS_PER_TIMEOUT` events it carries, and XREAD BLOCK gets its block time on top, so a wait is never cut
 * short. A read or `endOffsets` that fails changes nothing and can simply be retried (the stream worker
 * does). An append that fails after it was sent (no reply in time, connection lost) may still be applied,
 * since Redis runs a script it has received: it rejects with `AppendOutcomeUnknownError` (503 on ingest).
 * One Redis refused (a reply error; its script checks every key before writing) appended nothing: a
 * refusal that passes (LOADING, BUSY, READONLY after a failover, OOM, TRYAGAIN, CLUSTERDOWN, ...) rejects
 * with `LogUnavailableError` (503), keys that are not a log partition with a plain error. A command in
 * flight when the connection drops is not sent again once reconnected (`resendAfterReconnect: false`, on a
 * Cluster with no retry after "Connection is closed." either; the client's default would apply an append
 * twice if Redis had applied it): it fails, its outcome unknown. An append is only sent on a connection
 * that is ready: one issued while the client (or a Cluster's connection to the slot's master) connects
 * waits for it up to its deadline, then fails with `LogUnavailableError`, nothing appended, as does one left
 * with less than half its deadline once ready (`MIN_REPLY_SHARE`: sent then, its reply would likely be late
 * although Redis ran it); it never waits in ioredis' offline queue, which would send it once reconnected,
 * after it had failed. So the log never
 * duplicates an append by itself; a caller resending one whose outcome was unknown may, unless it sends an
 * idempotency key (`AppendOptions`): the script then also checks and sets a record of the key (expiring
 * after the window, default env TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h; named by a hash of the key)
 * holding the batch's fingerprint and its offsets, written with the batch: a batch already recorded is not
 * appended again (its offsets are returned, `replayed`), one recorded with another fingerprint fails the
 * script before any write (`IdempotencyConflictError`). On a single Redis, whose one script appends the
 * whole batch, that is one record per batch, `<prefix>once:<hash of topics and key>` (APPEND_ONCE_ALL,
 * ~100 bytes). On a Cluster it is one per (topic, partition), `<prefix>log:{<topic>:<p>}:once:<hash of
 * key>` in the partition's slot, each slot's script checking its own part, so a resend completes exactly
 * the partitions a failed append missed; the records of all parts are read first (by `checkKeyedAppend`,
 * of all topics, whose appends then skip that read), so a conflicting batch appends nowhere (bar a race
 * with that batch itself, caught per slot by the script).
 *
 * @example
 * const log = openRedisStreamLog('redis://127.0.0.1:6379', { partitions: 4 });
 */
export function openRedisStreamLog(
  url: string,
  opts: {
    partitions?: number;
    prefix?: string;
    commandTimeoutMs?: number;
    /** Dedupe window of idempotent appends (default env TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h). */
    idempotencyWindowMs?: number;
  } = {},
): EventLog {
  const timeoutMs = timeoutOption(
    opts.commandTimeoutMs,
    REDIS_TIMEOUT_ENV,
    DEFAULT_REDIS_TIMEOUT_MS,
    `Redis Streams log at ${redactUrl(url)}`,
  );
  // No client-wide command timeout: each command gets its own deadline (above), XREAD BLOCK a longer one.
  return new RedisStreamLog(
    openRedisClient(url, { resendAfterReconnect: false }),
    url,
    opts.partitions ?? 1,
    opts.prefix ?? 'tessera:',
    timeoutMs,
    idempotencyWindowMs(opts.idempotencyWindowMs, url),
  );
}

/** 22 base64url characters of SHA-256: idempotency record names stay short whatever the key. */
function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

function idempotencyWindowMs(given: number | undefined, url: string): number {
  return idempotencyWindowOption(given, `Redis Streams log at ${redactUrl(url)}`);
}

/**
 * Lua shared by the append scripts: an error reply if a (stream, counter) pair is not a Tessera log
 * partition, else nil. Scripts check every pair before their first write (Redis does not roll back).
 */
const NOT_A_LOG = `
local function notLog(stream, counter)
  local t = redis.call('TYPE', stream)['ok']
  local next = redis.call('GET', counter)
  if (t ~= 'none' and t ~= 'stream') or (next and not tonumber(next)) then
    return redis.error_reply('log keys ' .. stream .. ' / ' .. counter ..
      ' are not a Tessera log partition (a ' .. t .. ', next offset ' .. tostring(next) .. '); delete them or use another --redis prefix')
  end
  return nil
end
`;

/**
 * KEYS: (stream, counter) pairs; ARGV: each pair's event count, then all events in pair order. Returns each
 * pair's first offset. Every key is checked before the first write (Redis does not roll back a script that
 * fails half-way), so a batch is all-or-nothing.
 */
const APPEND = `${NOT_A_LOG}
local pairs = #KEYS / 2
for i = 1, pairs do
  local bad = notLog(KEYS[2 * i - 1], KEYS[2 * i])
  if bad then return bad end
end
local a = pairs + 1
local firsts = {}
for i = 1, pairs do
  local n = tonumber(ARGV[i])
  local first = redis.call('INCRBY', KEYS[2 * i], n) - n
  for j = 1, n do
    redis.call('XADD', KEYS[2 * i - 1], '0-' .. (first + j), 'e', ARGV[a])
    a = a + 1
  end
  firsts[i] = first
end
return firsts`;

/**
 * APPEND with an idempotency key. KEYS: (stream, counter, dedupe key) triples, all of a triple in one slot;
 * ARGV: the batch fingerprint, the window (ms), each triple's event count, then all events. A dedupe key
 * holds `<fingerprint>:<first offset>:<count>` of its partition's part, written in the same script as the
 * part (so a part and its record exist together or not at all) and expiring after the window. A part whose
 * key exists is not appended again: its stored offsets are returned, flagged replayed; a key holding another
 * fingerprint fails the whole script before any write (IDEMPOTENCY_CONFLICT). Returns per triple its first
 * offset, count and 1 if replayed.
 */
const APPEND_ONCE = `${NOT_A_LOG}
local parts = #KEYS / 3
local fp = ARGV[1]
local done = {}
for i = 1, parts do
  local bad = notLog(KEYS[3 * i - 2], KEYS[3 * i - 1])
  if bad then return bad end
  local d = redis.call('GET', KEYS[3 * i])
  if d then
    local f, first, count = string.match(d, '^(%x+):(%d+):(%d+)$')
    if not f then
      return redis.error_reply('key ' .. KEYS[3 * i] .. ' is not a Tessera idempotency record; delete it')
    end
    if f ~= fp then return redis.error_reply('IDEMPOTENCY_CONFLICT ' .. KEYS[3 * i]) end
    done[i] = { tonumber(first), tonumber(count) }
  end
end
local a = parts + 3
local out = {}
for i = 1, parts do
  local n = tonumber(ARGV[i + 2])
  if done[i] then
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = done[i][1], done[i][2], 1
  else
    local first = redis.call('INCRBY', KEYS[3 * i - 1], n) - n
    for j = 1, n do
      redis.call('XADD', KEYS[3 * i - 2], '0-' .. (first + j), 'e', ARGV[a + j - 1])
    end
    redis.call('SET', KEYS[3 * i], fp .. ':' .. first .. ':' .. n, 'PX', ARGV[2])
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = first, n, 0
  end
  a = a + n
end
return out`;

/**
 * APPEND with an idempotency key on a single Redis, where one script appends the whole batch: one record for
 * it. KEYS: (stream, counter) pairs, then the record; ARGV as APPEND_ONCE. The record holds
 * `<fingerprint>:<first offset>,<first offset>,...` (one per pair; the counts follow from the resent batch)
 * and expires after the window. Returns each pair's first offset, then 1 if replayed, else 0.
 */
const APPEND_ONCE_ALL = `${NOT_A_LOG}
local pairs = (#KEYS - 1) / 2
local rec = KEYS[#KEYS]
local fp = ARGV[1]
for i = 1, pairs do
  local bad = notLog(KEYS[2 * i - 1], KEYS[2 * i])
  if bad then return bad end
end
local d = redis.call('GET', rec)
if d then
  local f, firsts = string.match(d, '^(%x+):([%d,]+)$')
  local out = {}
  if f then for n in string.gmatch(firsts, '%d+') do out[#out + 1] = tonumber(n) end end
  if not f or (f == fp and #out ~= pairs) then
    return redis.error_reply('key ' .. rec .. ' is not a Tessera idempotency record of this batch; delete it')
  end
  if f ~= fp then return redis.error_reply('IDEMPOTENCY_CONFLICT ' .. rec) end
  out[pairs + 1] = 1
  return out
end
local a = pairs + 3
local out = {}
for i = 1, pairs do
  local n = tonumber(ARGV[i + 2])
  local first = redis.call('INCRBY', KEYS[2 * i], n) - n
  for j = 1, n do
    redis.call('XADD', KEYS[2 * i - 1], '0-' .. (first + j), 'e', ARGV[a + j - 1])
  end
  out[i] = first
  a = a + n
end
redis.call('SET', rec, fp .. ':' .. table.concat(out, ','), 'PX', ARGV[2])
out[pairs + 1] = 0
return out`;

/**
 * Reply errors of a Redis that did not run the command for a state that passes (loading its data, busy
 * with a long script, a replica or a master without its replicas after a failover, out of memory, a slot
 * migrating, the cluster down): an append refused so appended nothing and may succeed later.
 */
const TRANSIENT_REPLY = /^(?:LOADING|BUSY|READONLY|MASTERDOWN|NOREPLICAS|OOM|TRYAGAIN|CLUSTERDOWN)\b/;

/**
 * The share of an append's reply timeout that must be left when its script is sent (after waiting for a
 * ready connection and, keyed on a Cluster, checking the records): a script sent with ~0 ms left fails as
 * an unknown outcome though Redis runs it.
 */
const MIN_REPLY_SHARE = 0.5;

/**
 * How long a part `checkKeyedAppend` found clear spares its append the same read (ingest appends the topics
 * right after the check), and how many such parts are remembered at most.
 */
const CHECKED_MS = 60_000;
const CHECKED_KEPT = 1_000;

/** How long a read that may wait but cannot block (another partition holds the blocking connection) waits. */
const POLL_MS = 50;

/** The events of one (topic, partition) in an append, JSON-encoded. */
interface Slice {
  readonly part: number;
  readonly topic: string;
  readonly partition: number;
  readonly events: string[];
}

class RedisStreamLog implements EventLog {
  readonly kind = 'redis' as const;
  readonly idempotentAppends = true;
  /** Separate connection for XREAD BLOCK, which would otherwise stall every other command. */
  private blocking: RedisClient | null = null;
  private blockingBusy = false;
  /** Parts (topic, key, fingerprint) `checkKeyedAppend` found clear, until when: their append skips the read. */
  private readonly checked = new Map<string, number>();
  /** The URL for messages, credentials redacted. */
  private readonly where: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly url: string,
    readonly partitions: number,
    private readonly prefix: string,
    /** Reply timeout per `EVENTS_PER_TIMEOUT` events of a command. */
    private readonly timeoutMs: number,
    /** How long an idempotency key's record lives (APPEND_ONCE). */
    private readonly windowMs: number,
  ) {
    this.where = redactUrl(url);
    redis.defineCommand('tesseraAppend', { lua: APPEND });
    redis.defineCommand('tesseraAppendOnce', { lua: APPEND_ONCE });
    redis.defineCommand('tesseraAppendOnceAll', { lua: APPEND_ONCE_ALL });
    // All-or-nothing across topics only where one script can span them (see above).
    if (!(redis instanceof Cluster)) this.appendTopics = (parts, o) => this.appendParts(parts, o);
  }

  readonly appendTopics?: EventLog['appendTopics'];

  private stream(topic: string, p: number): string {
    return `${this.prefix}log:{${topic}:${p}}`;
  }
  private counter(topic: string, p: number): string {
    return `${this.prefix}log:{${topic}:${p}}:next`;
  }
  /** The record of idempotency key `key` in a partition (APPEND_ONCE, Cluster), in the partition's slot. */
  private onceKey(topic: string, p: number, key: string): string {
    return `${this.prefix}log:{${topic}:${p}}:once:${shortHash(key)}`;
  }
  /** The record of idempotency key `key` for a batch to `topics` (APPEND_ONCE_ALL, single Redis). */
  private batchOnceKey(topics: readonly string[], key: string): string {
    return `${this.prefix}once:${shortHash(`${topics.join(',')}\u0000${key}`)}`;
  }

  private fail(what: string, cause: unknown): Error {
    const message = `Redis Streams log at ${this.where}: ${what} failed: ${redisErrorText(cause)}.`;
    return new Error(`${message} ${this.check()}`, { cause });
  }

  /**
   * Fails (a plain error: waiting will not help) once Redis refused the URL's database number, after which
   * ioredis runs every command on database 0: called once the client was ready (the refused SELECT is
   * known by then), before an append is sent and after a read, whose reply came from database 0.
   */
  private checkDatabase(): void {
    const refused = databaseRefused(this.redis, `Redis Streams log at ${this.where}`);
    if (refused !== null) throw refused;
  }

  private check(): string {
    return `Check that Redis is running, reachable and not blocked (the reply timeout is ${this.timeoutMs} ms per ${EVENTS_PER_TIMEOUT} events, env ${REDIS_TIMEOUT_ENV}).`;
  }

  async append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult> {
    const [result] = await this.appendParts([{ topic, entries }], opts);
    return result;
  }

  /**
   * On a Cluster (one `append` per topic): rejects with `IdempotencyConflictError` if any partition of any
   * topic holds the key for another batch, before the first topic is appended (EventLog). A read, not a
   * claim: a race with that other batch is still caught per slot by APPEND_ONCE.
   */
  async checkKeyedAppend(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts: AppendOptions,
  ): Promise<void> {
    const key = opts.idempotencyKey;
    if (key === undefined) return;
    const checks = parts.flatMap(({ topic, entries }) => {
      const fingerprint = batchFingerprint([{ topic, entries }]);
      const touched = new Set(entries.map((e) => partitionOf(e.partitionKey, this.partitions)));
      return [...touched].map((partition) => ({ topic, partition, fingerprint }));
    });
    let records: (string | null)[];
    try {
      await untilReady(this.redis, new Deadline(this.timeoutMs));
      records = await withDeadline(
        Promise.all(checks.map((c) => this.redis.get(this.onceKey(c.topic, c.partition, key)))),
        this.timeoutMs,
      );
    } catch (cause) {
      throw new LogUnavailableError(
        `Redis Streams log at ${this.where}: checking Idempotency-Key '${key}' failed: ${redisErrorText(cause)}; nothing was appended, resend the batch. ${this.check()}`,
        { cause },
      );
    }
    this.checkDatabase();
    const other = records.findIndex((r, i) => r !== null && r.split(':')[0] !== checks[i].fingerprint);
    if (other >= 0)
      throw new IdempotencyConflictError(
        key,
        `for topic '${checks[other].topic}' partition ${checks[other].partition}`,
      );
    const until = Date.now() + CHECKED_MS;
    for (const { topic, fingerprint } of checks) {
      const id = `${topic}\u0000${key}\u0000${fingerprint}`;
      this.checked.delete(id);
      this.checked.set(id, until);
    }
    while (this.checked.size > CHECKED_KEPT) this.checked.delete(this.checked.keys().next().value!);
  }

  /**
   * Which keys hold a record for a batch to `topics` (EventLog): on a Cluster, in any partition of the first
   * topic (each partition a batch touched has one); on a single Redis, the batch's one record.
   */
  async heldIdempotencyKeys(topics: readonly string[], keys: readonly string[]): Promise<boolean[]> {
    const names = keys.map((key) =>
      this.redis instanceof Cluster
        ? Array.from({ length: this.partitions }, (_, p) => this.onceKey(topics[0], p, key))
        : [this.batchOnceKey(topics, key)],
    );
    const all = names.flat();
    const timeout = this.timeoutMs * Math.max(1, Math.ceil(all.length / EVENTS_PER_TIMEOUT));
    let found: number[];
    try {
      await untilReady(this.redis, new Deadline(this.timeoutMs));
      found = await withDeadline(Promise.all(all.map((name) => this.redis.exists(name))), timeout);
    } catch (cause) {
      throw this.fail('looking up idempotency keys', cause);
    }
    this.checkDatabase();
    let i = 0;
    return names.map((n) => found.slice(i, (i += n.length)).some((x) => x > 0));
  }

  /** Whether `checkKeyedAppend` just found this one-topic part clear (consumed: asked once per append). */
  private justChecked(
    parts: readonly { readonly topic: string }[],
    key: string,
    fingerprint: string,
  ): boolean {
    if (parts.length !== 1) return false;
    const id = `${parts[0].topic}\u0000${key}\u0000${fingerprint}`;
    const until = this.checked.get(id);
    this.checked.delete(id);
    return until !== undefined && until > Date.now();
  }

  /** Appends each part to its topic: one script in all on a single Redis, one per slot on a Cluster. */
  private async appendParts(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts: AppendOptions = {},
  ): Promise<AppendResult[]> {
    const key = opts.idempotencyKey;
    const fingerprint = key === undefined ? '' : batchFingerprint(parts);
    const prechecked = key !== undefined && this.justChecked(parts, key, fingerprint);
    const slices: Slice[] = [];
    parts.forEach(({ topic, entries }, part) => {
      const byPartition: string[][] = Array.from({ length: this.partitions }, () => []);
      for (const e of entries)
        byPartition[partitionOf(e.partitionKey, this.partitions)].push(JSON.stringify(e.event));
      byPartition.forEach((events, partition) => {
        if (events.length > 0) slices.push({ part, topic, partition, events });
      });
    });
    const out: AppendResult[] = parts.map(() => []);
    if (slices.length === 0) return out;
    const groups = this.redis instanceof Cluster ? slices.map((s) => [s]) : [slices];
    const redis = this.redis as RedisClient & {
      tesseraAppend(numKeys: number, keys: string[], args: string[]): Promise<number[]>;
      tesseraAppendOnce(numKeys: number, keys: string[], args: string[]): Promise<number[]>;
      tesseraAppendOnceAll(numKeys: number, keys: string[], args: string[]): Promise<number[]>;
    };
    // A single Redis appends the batch in one script: one record for it (a Cluster: one per slot).
    const whole = key !== undefined && !(this.redis instanceof Cluster);
    const events = slices.reduce((n, s) => n + s.events.length, 0);
    const what = `append of ${events} events to topic(s) ${[...new Set(slices.map((s) => `'${s.topic}'`))].join(', ')}`;
    // Each script's deadline counts from here: waiting for a ready connection uses up part of it.
    const deadlines = groups.map(
      (group) =>
        new Deadline(
          scaledTimeout(
            this.timeoutMs,
            group.reduce((n, s) => n + s.events.length, 0),
          ),
        ),
    );
    const longest = deadlines.reduce((a, d) => (d.ms > a.ms ? d : a));
    // Send only on a connection that writes at once: one still connecting would keep the script in its
    // offline queue and send it once connected, long after this append failed on its deadline (a client
    // resending such a batch would store every queued copy).
    try {
      await untilReady(redis, longest);
      const links = groups.map((group) => this.linkOf(group[0]));
      await Promise.all(links.map((link, g) => link && untilConnected(link, deadlines[g])));
      const down = links.find((link) => link !== null && link.status !== 'ready');
      if (down !== undefined || redis.status !== 'ready')
        throw new Error(`the connection dropped again (${(down ?? redis).status})`);
      // A script sent with little of its deadline left would likely fail without a reply although Redis
      // runs it (an unknown outcome, which a client resolves by resending): not sent, nothing appended.
      const tooLate = () => {
        const d = deadlines.find((d) => d.left() < d.ms * MIN_REPLY_SHARE);
        if (d !== undefined)
          throw new Error(
            `ready too late: ${Math.round(d.left())} ms of the ${d.ms} ms reply timeout left, under the ${Math.round(d.ms * MIN_REPLY_SHARE)} ms a script needs to be sent`,
          );
      };
      tooLate();
      // On a Cluster each slot's script checks only its own record: look at all of them first, so that a
      // reused key with other events appends nothing anywhere (bar a race with that other batch), unless
      // ingest's checkKeyedAppend just did.
      if (key !== undefined && groups.length > 1 && !prechecked) {
        const records = await withDeadline(
          Promise.all(slices.map((s) => redis.get(this.onceKey(s.topic, s.partition, key)))),
          longest,
        );
        const other = records.findIndex((r) => r !== null && r.split(':')[0] !== fingerprint);
        if (other >= 0)
          throw new IdempotencyConflictError(
            key,
            `for topic '${slices[other].topic}' partition ${slices[other].partition}`,
          );
        tooLate();
      }
    } catch (cause) {
      if (cause instanceof IdempotencyConflictError) throw cause;
      throw new LogUnavailableError(
        `Redis Streams log at ${this.where}: ${what} failed: ${redisErrorText(cause)}; nothing was appended, resend the batch. ${this.check()}`,
        { cause },
      );
    }
    // The connections are ready: a refused database number is known, and nothing was sent to database 0.
    this.checkDatabase();
    // One deadline per script: on a Cluster, those to answering masters still report where they got.
    // (Each script is written to its socket here, synchronously: the connections checked above are ready.)
    const settled = await Promise.allSettled(
      groups.map((group, g) => {
        const keys = group.flatMap((s) => [
          this.stream(s.topic, s.partition),
          this.counter(s.topic, s.partition),
          ...(key === undefined || whole ? [] : [this.onceKey(s.topic, s.partition, key)]),
        ]);
        if (whole)
          keys.push(
            this.batchOnceKey(
              parts.map((p) => p.topic),
              key,
            ),
          );
        const args = [...group.map((s) => String(s.events.length)), ...group.flatMap((s) => s.events)];
        const once = [fingerprint, String(this.windowMs), ...args];
        const reply =
          key === undefined
            ? redis.tesseraAppend(keys.length, keys, args)
            : whole
              ? redis.tesseraAppendOnceAll(keys.length, keys, once)
              : redis.tesseraAppendOnce(keys.length, keys, once);
        return withDeadline(reply, deadlines[g]);
      }),
    );
    const failed = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    if (failed.length === 0) {
      groups.forEach((group, g) => {
        const reply = (settled[g] as PromiseFulfilledResult<number[]>).value;
        const replayed = whole && Number(reply[group.length]) === 1;
        group.forEach((s, i) =>
          out[s.part].push(
            key === undefined || whole
              ? {
                  partition: s.partition,
                  first: Number(reply[i]),
                  count: s.events.length,
                  ...(replayed ? { replayed: true as const } : {}),
                }
              : {
                  partition: s.partition,
                  first: Number(reply[3 * i]),
                  count: Number(reply[3 * i + 1]),
                  ...(Number(reply[3 * i + 2]) === 1 ? { replayed: true as const } : {}),
                },
          ),
        );
      });
      return out;
    }
    const conflict = failed.find((e) => e.message.startsWith('IDEMPOTENCY_CONFLICT'));
    if (conflict !== undefined && key !== undefined) {
      const g = settled.findIndex((r) => r.status === 'rejected' && r.reason === conflict);
      const where = groups[g].map((s) => `topic '${s.topic}' partition ${s.partition}`).join(', ');
      // Another batch under this key raced the check above (Cluster): other slots may have taken this one.
      const appended =
        failed.length < groups.length
          ? 'other partitions of this batch may have been appended'
          : 'nothing was appended';
      throw new IdempotencyConflictError(key, `for ${where}`, appended);
    }
    // Redis answered every script with an error: each checks its keys before its first write (APPEND), so
    // nothing was appended. Any other failure (no reply, connection lost) leaves the outcome unknown.
    if (failed.length === groups.length && failed.every((e) => e.name === 'ReplyError')) {
      const e = this.fail(what, failed[0]);
      // A refusal that passes (Redis loading, failing over, ...) is unavailability; bad keys are not.
      if (failed.every((f) => TRANSIENT_REPLY.test(f.message)))
        throw new LogUnavailableError(`${e.message} Nothing was appended; resend the batch.`, {
          cause: failed[0],
        });
      throw e;
    }
    const stored = settled.flatMap((r, g) =>
      r.status === 'fulfilled' ? groups[g].map((s) => `'${s.topic}' partition ${s.partition}`) : [],
    );
    throw this.unknown(what, failed.find((e) => e.name !== 'ReplyError') ?? failed[0], stored, key);
  }

  /**
   * The connection a script on `slice`'s keys goes out on: the client itself on a single Redis; on a
   * Cluster, the connection to the slot's master, or null when there is none yet (the Cluster routes the
   * script through another node, which redirects it unrun).
   */
  private linkOf(slice: Slice): Redis | null {
    if (!(this.redis instanceof Cluster)) return this.redis;
    // The key's hash tag, as Redis reads it: from its first '{' to the next '}'.
    const key = this.stream(slice.topic, slice.partition);
    const open = key.indexOf('{');
    const tag = key.slice(open + 1, key.indexOf('}', open + 1));
    if (tag.includes('{')) return null; // clusterSlot does not take it: the Cluster routes the script
    const slot = clusterSlot(tag);
    const master = this.redis.slots[slot]?.[0];
    return this.redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master) ?? null;
  }

  /** An append that was sent but not (wholly) confirmed; `stored`: the (topic, partition)s it did reach. */
  private unknown(
    what: string,
    cause: unknown,
    stored: string[],
    key: string | undefined,
  ): AppendOutcomeUnknownError {
    const known = stored.length > 0 ? ` (it did reach ${stored.join(', ')})` : '';
    return new AppendOutcomeUnknownError(
      `Redis Streams log at ${this.where}: ${what} has an unknown outcome${known}: ${redisErrorText(cause)}. ${unknownAppendAdvice(key !== undefined)}. ${this.check()}`,
      { cause },
    );
  }

  async read(topic: string, partition: number, from: number, max: number, waitMs = 0): Promise<LogRecord[]> {
    const key = this.stream(topic, partition);
    let raw: [string, string[]][];
    try {
      const deadline = new Deadline(scaledTimeout(this.timeoutMs, max));
      await untilReady(this.redis, deadline);
      raw = await withDeadline(this.redis.xrange(key, `0-${from + 1}`, '+', 'COUNT', max), deadline);
      if (raw.length === 0 && waitMs > 0 && this.blockingBusy) {
        // Another partition's read holds the blocking connection: wait a little and look again, so that
        // callers that read in a loop (the stream worker) do not spin on XRANGE while idle.
        await new Promise((r) => setTimeout(r, Math.min(waitMs, POLL_MS)));
        raw = await withDeadline(this.redis.xrange(key, `0-${from + 1}`, '+', 'COUNT', max), deadline.ms);
      } else if (raw.length === 0 && waitMs > 0) {
        const blocking = (this.blocking ??= openRedisClient(this.url));
        this.blockingBusy = true;
        try {
          await untilReady(blocking, deadline);
          // The block time plus a reply timeout: a wait is never cut short, a hung Redis still fails it.
          const wait = blocking.xread('COUNT', max, 'BLOCK', waitMs, 'STREAMS', key, `0-${from}`);
          const r = await withDeadline(wait, waitMs + deadline.ms);
          raw = r ? (r[0][1] as [string, string[]][]) : [];
        } catch (e) {
          // Later XREADs on this connection would queue behind the unanswered one: use a new connection.
          if (this.blocking === blocking) this.blocking = null;
          blocking.disconnect();
          throw e;
        } finally {
          this.blockingBusy = false;
        }
      }
    } catch (cause) {
      throw this.fail('read', cause);
    }
    this.checkDatabase();
    const out: LogRecord[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const [id, fields] = raw[i];
      out[i] = { offset: Number(id.slice(2)) - 1, event: decodeLogEvent(fields[1]) };
    }
    return out;
  }

  async endOffsets(topic: string): Promise<number[]> {
    let ends: number[];
    try {
      const deadline = new Deadline(this.timeoutMs);
      await untilReady(this.redis, deadline);
      // Per partition its counter and its stream's last ID (two reads of one slot, not a script: they work
      // while Redis holds writes), not MGET: on Redis Cluster the partitions' keys live in different slots.
      ends = await withDeadline(
        Promise.all(Array.from({ length: this.partitions }, (_, p) => this.partitionEnd(topic, p))),
        deadline,
      );
    } catch (cause) {
      throw this.fail('endOffsets', cause);
    }
    this.checkDatabase();
    return ends;
  }

  /**
   * Checks `partitions` against the count recorded in `<prefix>log:partitions`, set (SET NX) by the first
   * process to check (EventLog). Any failure to get an answer is `LogUnavailableError` (a refusal such as
   * WRONGPASS stays its cause).
   */
  async checkPartitionCount(): Promise<void> {
    const key = `${this.prefix}log:partitions`;
    let recorded: string | null;
    try {
      const deadline = new Deadline(this.timeoutMs);
      await untilReady(this.redis, deadline);
      recorded = await withDeadline(
        this.redis.set(key, String(this.partitions), 'NX').then(() => this.redis.get(key)),
        deadline,
      );
    } catch (cause) {
      throw new LogUnavailableError(this.fail('checking its partition count', cause).message, { cause });
    }
    this.checkDatabase();
    if (recorded === null)
      throw new LogUnavailableError(
        `Redis Streams log at ${this.where}: ${key} vanished right after it was set`,
      );
    checkRecordedPartitions(
      `Redis Streams log at ${this.where}`,
      `key '${key}'`,
      recorded,
      this.partitions,
      `delete the key (redis-cli DEL '${key}')`,
    );
  }

  /**
   * The end offset of a partition: its counter, or the sequence of its stream's last ID (offset `n` has ID
   * `0-(n+1)`) when a producer XADDed past it directly without bumping the counter (otherwise a worker past
   * the counter would take the log for one that lost events, worker invariant 11); 0 once both are gone.
   */
  private async partitionEnd(topic: string, p: number): Promise<number> {
    const [next, last] = await Promise.all([
      this.redis.get(this.counter(topic, p)),
      this.redis.xrevrange(this.stream(topic, p), '+', '-', 'COUNT', 1),
    ]);
    const end = next === null ? 0 : Number(next);
    const id = /^0-(\d+)$/.exec(last[0]?.[0] ?? '');
    return id === null ? end : Math.max(end, Number(id[1]));
  }

  async close(): Promise<void> {
    this.blocking?.disconnect();
    // QUIT waits for a reply, which a hung Redis never sends.
    await withDeadline(this.redis.quit(), this.timeoutMs).catch(() => this.redis.disconnect());
  }
}
