import { createHash } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { connect, createInbox, headers as msgHeaders, nanos } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Row } from '../../define/types.ts';
import { decodeLogEvent } from '../log-event-check.ts';
import type { AppendOptions, AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import {
  batchFingerprint,
  IdempotencyCapacityError,
  IdempotencyConflictError,
  IDEMPOTENCY_WINDOW_ENV,
  idempotencyWindowOption,
} from './idempotency.ts';
import {
  AppendOutcomeUnknownError,
  EVENTS_PER_TIMEOUT,
  LogUnavailableError,
  scaledTimeout,
  timeoutOption,
  unknownAppendAdvice,
} from './log-unavailable.ts';
import { redactUrl } from '../redact-url.ts';
import { partitionOf } from './partition.ts';
import { checkRecordedPartitions } from './partition-record.ts';
import { logStreamToken } from './topic-token.ts';

/**
 * NATS JetStream log. Invariants:
 * 1. Each (topic, partition) is its own stream `<prefix>_<token>_p<p>` capturing exactly one subject
 *    `<prefix>.<token>.<p>` (token: topic-token.ts), one message per event (its JSON). Offset = stream
 *    sequence - 1, so offsets are dense from 0 as long as nobody deletes messages: retention limits
 *    (max_age, max_msgs) set on the streams by an operator only ever remove the oldest ones.
 * 2. `append` resolves once JetStream acknowledged every message (stored by the stream; with replicas, by
 *    a quorum). Messages of one append are published back to back on one connection, so they are stored in
 *    order; appends from other connections may interleave, and the result then lists several ranges.
 *    An append that fails once published (no acknowledgement within its deadline, some events refused)
 *    may have stored part or all of the batch, or store it once the server resumes: it rejects with
 *    `AppendOutcomeUnknownError` (at-least-once: resending may duplicate). One that fails before publishing
 *    (no connection, stream not created) stored nothing: `LogUnavailableError` or a plain error. So did
 *    one whose every event was answered "no responders" (JetStream down, or the stream deleted: created
 *    again on the next append): `LogUnavailableError`.
 * 3. Reads use one ephemeral pull consumer per (topic, partition) that starts at the requested offset
 *    (ack policy none: workers commit offsets with their tiles, never to the broker) and is reused while
 *    reads continue where the previous one ended; a read from another offset replaces it. A pull asks for
 *    what is there now (`no_wait`); only when that is nothing does it wait up to `waitMs` for one record.
 * 4. A delivered sequence other than the expected next one (messages deleted, or removed by retention
 *    before a worker read them) is an error naming the missing offsets, never a silent skip.
 * 5. Nothing waits forever on a hung or unreachable server: JetStream API requests and pulls fail after
 *    `timeoutMs` (default env TESSERA_NATS_TIMEOUT_MS, else 5000 ms; a pull after its own wait plus that),
 *    an append after `timeoutMs` per `EVENTS_PER_TIMEOUT` events. A failed read or `endOffsets` changes
 *    nothing and can be retried (the stream worker does); a failed connection is retried on the next use.
 * 6. Idempotent appends (`AppendOptions.idempotencyKey`, window default env TESSERA_IDEMPOTENCY_WINDOW_MS,
 *    else 24 h). First the key is claimed for the topic, before anything is published: the claim is a
 *    message holding the batch's fingerprint on subject `<prefix>_idem.<topic token>.<hash of key>` of the
 *    stream `<prefix>_idem` (one message per subject, max_age = the window), published with
 *    `Nats-Expected-Last-Subject-Sequence: 0`, so JetStream stores it only if the subject holds none (an
 *    atomic create, as a KV bucket's). If it holds one, it is read: another fingerprint rejects the append
 *    with `IdempotencyConflictError` (422), nothing published; the same one is a resend. Then the i-th
 *    event of the part in a partition is published with `Nats-Msg-Id: <hash of key and fingerprint>:<i>`:
 *    a batch only ever dedupes against itself, and the stream stores an id once per `duplicate_window`.
 *    A duplicate's acknowledgement has `duplicate: true` and the original sequence, reported as `replayed`
 *    offsets, so a resend stores exactly the events an earlier attempt did not (whatever the order of
 *    failures: a claim stored but its events not, or only some, is completed by the resend, whose claim
 *    matches). The claim expires no later than the ids (it is stored first), so a resend after the window
 *    appends again, never fails. Streams are created with duplicate_window = the window; an existing one
 *    with a shorter window is widened on the first keyed append to it (unkeyed traffic leaves it alone); if
 *    JetStream refuses (its max_age is shorter), keyed appends to it reject with `IdempotencyCapacityError`
 *    (503) naming the fix, asked again on the next keyed append; no answer is `LogUnavailableError` (resend).
 *    So is a claims stream JetStream refuses (account limits, a stream capturing its subjects): capacity.
 *    `checkKeyedAppend` widens the streams of every topic before claiming any, so a refusal leaves no
 *    claim of a batch that was never appended. JetStream keeps each id for the window in
 *    memory: ~150-250 bytes per keyed event (see README).
 *
 * @example
 * const log = openNatsLog('nats://127.0.0.1:4222', { partitions: 4 });
 */
export function openNatsLog(
  url: string,
  opts: {
    partitions?: number;
    prefix?: string;
    replicas?: number;
    timeoutMs?: number;
    /** The streams' duplicate_window (invariant 6; default env TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h). */
    idempotencyWindowMs?: number;
  } = {},
): EventLog {
  const prefix = opts.prefix ?? 'tessera';
  if (!/^[A-Za-z0-9-]+$/.test(prefix))
    throw new Error(
      `NATS log prefix '${prefix}' is not allowed: use letters, digits and '-' (it starts stream names and subjects)`,
    );
  const timeoutMs = timeoutOption(
    opts.timeoutMs,
    NATS_TIMEOUT_ENV,
    DEFAULT_NATS_TIMEOUT_MS,
    `NATS JetStream log at ${redactUrl(url)}`,
  );
  const windowMs = idempotencyWindowOption(
    opts.idempotencyWindowMs,
    `NATS JetStream log at ${redactUrl(url)}`,
  );
  return new NatsLog(url, opts.partitions ?? 1, prefix, opts.replicas ?? 1, timeoutMs, windowMs);
}

/** Environment variable overriding the default `timeoutMs` of NATS logs. */
export const NATS_TIMEOUT_ENV = 'TESSERA_NATS_TIMEOUT_MS';
/** Default reply timeout of JetStream requests (the NATS client's own default). */
export const DEFAULT_NATS_TIMEOUT_MS = 5000;

/** Server-side idle time after which an abandoned reader's consumer (e.g. of a killed worker) is removed. */
const CONSUMER_IDLE_MS = 5 * 60_000;

interface Conn {
  nc: NatsConnection;
  jsm: JetStreamManager;
}

/** Header making a publish store only if its subject holds no message yet (invariant 6's claims). */
const EXPECT_NONE = 'Nats-Expected-Last-Subject-Sequence';
/** JetStream's error code for a stream config it refuses (e.g. a duplicate_window above max_age). */
const STREAM_INVALID_CONFIG = 10052;
/** JetStream's error code for a failed `EXPECT_NONE`: the subject holds a claim. */
const WRONG_LAST_SEQUENCE = 10071;
/** Claims `heldIdempotencyKeys` reads at once. */
const CLAIM_READS = 256;
/** Claims remembered by a process (invariant 6): ~200 bytes each. */
const CLAIMS_KEPT = 10_000;
/** The longest duplicate_window of the claims stream (JetStream's default); claims carry no msg ids. */
const CLAIMS_DUPLICATE_WINDOW_MS = 120_000;

/** What this process knows of a partition's stream: whether its duplicate_window covers the window. */
interface StreamState {
  windowOk: boolean;
  /** Its duplicate_window (ms), for the error when it cannot be widened. */
  windowMs: number;
}

/** An append waiting for its acknowledgements: stream sequences by stream name. */
interface PendingAppend {
  left: number;
  seqs: Map<string, number[]>;
  /** Sequences acknowledged as duplicates (stored by an earlier append with the same message ids). */
  dups: Map<string, Set<number>>;
  fail: Error | null;
  /** Events answered 503 (no responders): nothing listened on their subject, so none was stored. */
  noResponders: number;
  done: () => void;
}

class NatsLog implements EventLog {
  readonly kind = 'nats' as const;
  readonly idempotentAppends = true;
  private conn: Promise<Conn>;
  /** Streams known to exist (created or found) by this process (invariant 6). */
  private readonly streams = new Map<string, StreamState>();
  /** Whether the claims stream `<prefix>_idem` is known to exist with max_age = the window (invariant 6). */
  private claimsReady = false;
  /**
   * Claims this process made or read, by subject, until they expire (at most `CLAIMS_KEPT`, oldest dropped):
   * ingest's `checkKeyedAppend` claims, then each topic's append finds its claim here, one round trip less.
   */
  private readonly claimed = new Map<string, { fingerprint: string; until: number }>();
  private readonly readers = new Map<string, PartitionReader>();
  private acks: { inbox: string; pending: Map<string, PendingAppend> } | null = null;
  private nextAppend = 0;
  /** The URL(s) for messages, credentials redacted. */
  private readonly where: string;

  constructor(
    private readonly url: string,
    readonly partitions: number,
    private readonly prefix: string,
    private readonly replicas: number,
    /** Reply timeout of JetStream requests (invariant 5). */
    private readonly timeoutMs: number,
    /** The streams' duplicate_window (invariant 6). */
    private readonly windowMs: number,
  ) {
    this.where = redactUrl(url);
    this.conn = this.connect();
    // Errors surface on first use, with the URL and the fix; an unused log must not crash the process.
    this.conn.catch(() => {});
  }

  /** The connection; after a failed attempt, a new one (the server may be up by now). */
  private connection(): Promise<Conn> {
    const conn = this.conn;
    return conn.catch((cause: unknown) => {
      if (this.conn === conn) {
        this.conn = this.connect();
        this.conn.catch(() => {});
      }
      throw new LogUnavailableError((cause as Error).message, { cause });
    });
  }

  private async connect(): Promise<Conn> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: this.url,
        name: 'tessera',
        maxReconnectAttempts: -1,
        timeout: this.timeoutMs,
      });
    } catch (cause) {
      throw new Error(
        `NATS JetStream log: cannot connect to ${this.where}: ${(cause as Error).message}. Start nats-server with JetStream (nats-server -js), or point --nats-url (env NATS_URL) at a running server.`,
        { cause },
      );
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.timeoutMs });
      return { nc, jsm };
    } catch (cause) {
      await nc.close().catch(() => {});
      throw new Error(
        `NATS JetStream log: the server at ${this.where} does not offer JetStream (${(cause as Error).message}). Start nats-server with -js (and a store dir, -sd DIR).`,
        { cause },
      );
    }
  }

  private fail(what: string, cause: unknown): Error {
    if ((cause as Error).message.startsWith('NATS JetStream log')) return cause as Error;
    const message = `NATS JetStream log at ${this.where}: ${what} failed: ${(cause as Error).message}.`;
    return new Error(`${message} ${this.check()}`, { cause });
  }

  private check(): string {
    return `Check that nats-server (with -js) is running, reachable and not blocked (the reply timeout is ${this.timeoutMs} ms, per ${EVENTS_PER_TIMEOUT} events for appends; env ${NATS_TIMEOUT_ENV}).`;
  }

  private names(topic: string, p: number): { stream: string; subject: string } {
    const token = logStreamToken(topic);
    return { stream: `${this.prefix}_${token}_p${p}`, subject: `${this.prefix}.${token}.${p}` };
  }

  /** Creates the partition's stream unless it exists (an equal config makes creation idempotent). */
  private async ensureStream(c: Conn, topic: string, p: number): Promise<string> {
    const { stream, subject } = this.names(topic, p);
    if (this.streams.has(stream)) return stream;
    const window = nanos(this.windowMs);
    try {
      await c.jsm.streams.add({
        name: stream,
        subjects: [subject],
        storage: StorageType.File,
        num_replicas: this.replicas,
        // Costs nothing for unkeyed events (no msg id); keyed ones are deduped for the window.
        duplicate_window: window,
      });
      this.streams.set(stream, { windowOk: true, windowMs: this.windowMs });
    } catch (cause) {
      // Created elsewhere with other settings (e.g. an operator's retention limits): fine if it captures
      // exactly our subject; anything else would break dense offsets.
      let info;
      try {
        info = await c.jsm.streams.info(stream);
      } catch {
        // Neither created nor found (e.g. no reply): the server's failure, not the stream's config.
        throw cause;
      }
      if (info.config.subjects?.length !== 1 || info.config.subjects[0] !== subject)
        throw new Error(
          `NATS JetStream log: stream '${stream}' could not be created for topic '${topic}' partition ${p} (${(cause as Error).message}). It must capture exactly the subject '${subject}'; delete or fix that stream.`,
          { cause },
        );
      // Widened by the first keyed append only (ensureWindow): an operator's stream keeps its settings
      // while only unkeyed traffic uses it.
      const has = info.config.duplicate_window / 1e6;
      this.streams.set(stream, { windowOk: has >= this.windowMs, windowMs: has });
    }
    return stream;
  }

  /**
   * Widens the duplicate_window of a stream to the window for a keyed append (invariant 6); a refusal is
   * not remembered (an operator may raise max_age meanwhile). Only JetStream's refusal of the config is a
   * capacity error: no answer (timeout, no responders, lost connection) is unavailability, nothing appended.
   */
  private async ensureWindow(c: Conn, stream: string): Promise<void> {
    const state = this.streams.get(stream);
    if (state === undefined || state.windowOk) return;
    try {
      await c.jsm.streams.update(stream, { duplicate_window: nanos(this.windowMs) });
    } catch (e) {
      const what = `setting the duplicate_window of stream '${stream}' to the idempotency window of ${this.windowMs} ms`;
      if (!(e instanceof JetStreamApiError) || e.code === JetStreamApiCodes.StreamNotFound) {
        // Deleted meanwhile: created again by the next append.
        if (e instanceof JetStreamApiError) this.streams.delete(stream);
        throw new LogUnavailableError(
          `${this.fail(what, e).message} Nothing was appended; resend the batch with the same key.`,
          { cause: e },
        );
      }
      if (e.code !== STREAM_INVALID_CONFIG)
        throw new Error(
          `NATS JetStream log: ${what} was refused (${e.message}); nothing was appended. Fix what JetStream names, or send without Idempotency-Key.`,
          { cause: e },
        );
      throw new IdempotencyCapacityError(
        `NATS JetStream log: the duplicate_window of stream '${stream}' could not be set to the idempotency window of ${this.windowMs} ms (${e.message}), so it cannot take idempotent appends; nothing was appended. Raise the stream's max_age to at least the window, or lower ${IDEMPOTENCY_WINDOW_ENV} (it is ${state.windowMs} ms now), or send without Idempotency-Key.`,
        { cause: e },
      );
    }
    state.windowOk = true;
    state.windowMs = this.windowMs;
  }

  /** Creates the claims stream (invariant 6) unless this process knows it exists. */
  private async ensureClaims(c: Conn): Promise<string> {
    const stream = `${this.prefix}_idem`;
    if (this.claimsReady) return stream;
    const config = {
      name: stream,
      // `_` never occurs in a prefix, so no partition stream's subject overlaps these.
      subjects: [`${this.prefix}_idem.>`],
      storage: StorageType.File,
      num_replicas: this.replicas,
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      max_age: nanos(this.windowMs),
      duplicate_window: nanos(Math.min(this.windowMs, CLAIMS_DUPLICATE_WINDOW_MS)),
    };
    // JetStream refusing to create or widen it (account limits, a stream capturing its subjects) lasts
    // until an operator acts: a capacity error, not "resend".
    const refused = (cause: unknown) =>
      cause instanceof JetStreamApiError
        ? new IdempotencyCapacityError(
            `NATS JetStream log: JetStream refused to set up the idempotency claims stream '${stream}' (subjects '${config.subjects[0]}', max_age = the window of ${this.windowMs} ms): ${cause.message}; nothing was appended. Fix what JetStream names (e.g. the account's stream or storage limits), lower ${IDEMPOTENCY_WINDOW_ENV}, or send without Idempotency-Key.`,
            { cause },
          )
        : cause;
    try {
      await c.jsm.streams.add(config);
    } catch (cause) {
      let info;
      try {
        info = await c.jsm.streams.info(stream);
      } catch (e) {
        // Not there after a refused create: the refusal stands. No answer: unavailability.
        throw e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound
          ? refused(cause)
          : cause;
      }
      // Another process with a longer window created it: claims must live at least our window.
      if (info.config.max_age !== 0 && info.config.max_age < config.max_age)
        await c.jsm.streams
          .update(stream, { max_age: config.max_age, duplicate_window: config.duplicate_window })
          .catch((e: unknown) => {
            throw refused(e);
          });
    }
    this.claimsReady = true;
    return stream;
  }

  /**
   * Claims `key` for `topic`'s batch with `fingerprint` (invariant 6) before anything is published: resolves
   * if the claim is new or this batch's, rejects with `IdempotencyConflictError` if another batch's.
   */
  private async claim(c: Conn, topic: string, key: string, fingerprint: string): Promise<void> {
    const stream = await this.ensureClaims(c);
    const subject = this.claimSubject(topic, key);
    const known = this.claimed.get(subject);
    if (known !== undefined && known.until > Date.now()) {
      if (known.fingerprint === fingerprint) return;
      throw new IdempotencyConflictError(key, `for topic '${topic}'`);
    }
    const remember = (until: number) => {
      this.claimed.delete(subject);
      this.claimed.set(subject, { fingerprint, until });
      if (this.claimed.size > CLAIMS_KEPT) this.claimed.delete(this.claimed.keys().next().value!);
    };
    // Twice: a claim that expires between the refused create and the read is created by the second try.
    for (let attempt = 0; attempt < 2; attempt++) {
      const h = msgHeaders();
      h.set(EXPECT_NONE, '0');
      // Stored after this, so it expires after this plus the window.
      const sent = Date.now();
      const reply = await c.nc.request(subject, fingerprint, { headers: h, timeout: this.timeoutMs });
      if ((reply.headers?.code ?? 0) >= 300)
        throw new Error(`JetStream answered ${reply.headers!.code} ${reply.headers!.description}`);
      const ack = JSON.parse(reply.string()) as { error?: { err_code?: number; description: string } };
      if (ack.error === undefined) return remember(sent + this.windowMs);
      if (ack.error.err_code !== WRONG_LAST_SEQUENCE)
        throw new Error(`JetStream refused the key's claim: ${ack.error.description}`);
      const held = await c.jsm.streams.getMessage(stream, { last_by_subj: subject }).catch((e: unknown) => {
        if ((e as { code?: number }).code === 10037) return null; // no message: expired meanwhile
        throw e;
      });
      if (held === null) continue;
      if (held.string() === fingerprint) return remember(held.time.getTime() + this.windowMs);
      throw new IdempotencyConflictError(key, `for topic '${topic}'`);
    }
    throw new Error(`the claim on subject '${subject}' kept changing`);
  }

  /**
   * Checks `partitions` against the count recorded on subject `<prefix>_meta.partitions` of stream
   * `<prefix>_meta` (EventLog): read, or, if there is none, published with `EXPECT_NONE`, so that of
   * processes starting at once with different counts exactly one records its own. Any failure to get an
   * answer is `LogUnavailableError`.
   */
  async checkPartitionCount(): Promise<void> {
    const stream = `${this.prefix}_meta`;
    const subject = `${stream}.partitions`;
    const c = await this.connection();
    const held = () =>
      c.jsm.streams.getMessage(stream, { last_by_subj: subject }).then(
        (m) => m?.string() ?? null,
        (e: unknown) => {
          const code = (e as { code?: number }).code;
          if (code === 10037 || code === 10059) return null; // no record, or no meta stream yet
          throw e;
        },
      );
    let recorded: string | null;
    try {
      recorded = await held();
      if (recorded === null) {
        // `_` never occurs in a prefix: no partition stream's subject overlaps this one.
        await c.jsm.streams
          .add({
            name: stream,
            subjects: [`${stream}.>`],
            storage: StorageType.File,
            num_replicas: this.replicas,
            max_msgs_per_subject: 1,
          })
          .catch(async (cause: unknown) => {
            // Created meanwhile by another process (or with other settings by an operator): fine.
            await c.jsm.streams.info(stream).catch(() => {
              throw cause;
            });
          });
        const h = msgHeaders();
        h.set(EXPECT_NONE, '0');
        const reply = await c.nc.request(subject, String(this.partitions), {
          headers: h,
          timeout: this.timeoutMs,
        });
        if ((reply.headers?.code ?? 0) >= 300)
          throw new Error(`JetStream answered ${reply.headers!.code} ${reply.headers!.description}`);
        const ack = JSON.parse(reply.string()) as { error?: { err_code?: number; description: string } };
        if (ack.error === undefined) recorded = String(this.partitions);
        else if (ack.error.err_code === WRONG_LAST_SEQUENCE) recorded = await held();
        else throw new Error(`JetStream refused the record: ${ack.error.description}`);
        if (recorded === null) throw new Error(`the record on '${subject}' vanished right after it was set`);
      }
    } catch (cause) {
      throw new LogUnavailableError(this.fail('checking its partition count', cause).message, { cause });
    }
    checkRecordedPartitions(
      `NATS JetStream log at ${this.where}`,
      `subject '${subject}' of stream '${stream}'`,
      recorded,
      this.partitions,
      `delete the stream (nats stream rm ${stream})`,
    );
  }

  /** The subject of `key`'s claim for `topic` (invariant 6). */
  private claimSubject(topic: string, key: string): string {
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 32);
    return `${this.prefix}_idem.${logStreamToken(topic)}.${hash}`;
  }

  /**
   * Which keys are claimed, within the window, for the first of `topics` (EventLog; each topic of a batch is
   * claimed before its events are published). Reads the claims, `CLAIM_READS` at a time.
   */
  async heldIdempotencyKeys(topics: readonly string[], keys: readonly string[]): Promise<boolean[]> {
    const c = await this.connection();
    const stream = `${this.prefix}_idem`;
    const now = Date.now();
    const held = async (key: string): Promise<boolean> => {
      const m = await c.jsm.streams
        .getMessage(stream, { last_by_subj: this.claimSubject(topics[0], key) })
        .catch((e: unknown) => {
          const code = (e as { code?: number }).code;
          if (code === 10037 || code === 10059) return null; // no claim, or no claims stream yet
          throw e;
        });
      return m !== null && m.time.getTime() + this.windowMs > now;
    };
    const out: boolean[] = [];
    try {
      for (let i = 0; i < keys.length; i += CLAIM_READS)
        out.push(...(await Promise.all(keys.slice(i, i + CLAIM_READS).map(held))));
    } catch (cause) {
      throw this.fail('looking up idempotency keys', cause);
    }
    return out;
  }

  /**
   * Before publishing a keyed append to `topic`: its streams exist with the window, and the key is claimed
   * (invariant 6). Nothing was published when it rejects: a conflict or refusal as such, any other
   * failure as `LogUnavailableError` (the claim may be stored: only this batch can resend under the key).
   */
  private async prepareKeyed(
    c: Conn,
    topic: string,
    streams: readonly string[],
    key: string,
    fingerprint: string,
  ): Promise<void> {
    for (const stream of streams) await this.ensureWindow(c, stream);
    try {
      await this.claim(c, topic, key, fingerprint);
    } catch (cause) {
      if (cause instanceof IdempotencyConflictError || cause instanceof IdempotencyCapacityError) throw cause;
      this.claimsReady = false; // the claims stream may be gone: created again next time
      throw new LogUnavailableError(
        `${this.fail(`claiming Idempotency-Key '${key}' for topic '${topic}'`, cause).message} Nothing was appended; resend the batch with the same key.`,
        { cause },
      );
    }
  }

  /** Checks every topic of a keyed batch can take it, claiming the key in each (EventLog). */
  async checkKeyedAppend(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts: AppendOptions,
  ): Promise<void> {
    const key = opts.idempotencyKey;
    if (key === undefined) return;
    const c = await this.connection();
    const topics = parts.filter((p) => p.entries.length > 0);
    // Every topic's streams take the window before any claim: a refusal on a later topic must not leave
    // an earlier topic claimed for a batch that is never appended (another batch would then get 422).
    for (const { topic, entries } of topics)
      for (const stream of (await this.partStreams(c, topic, entries)).streams)
        await this.ensureWindow(c, stream);
    for (const { topic, entries } of topics) {
      const streams = await this.partStreams(c, topic, entries);
      await this.prepareKeyed(c, topic, streams.streams, key, batchFingerprint([{ topic, entries }]));
    }
  }

  /** The partitions an append touches, their rows and streams (created if needed). */
  private async partStreams(
    c: Conn,
    topic: string,
    entries: readonly LogEntry[],
  ): Promise<{ byPartition: Row[][]; touched: number[]; streams: string[] }> {
    const byPartition: Row[][] = Array.from({ length: this.partitions }, () => []);
    for (const e of entries) byPartition[partitionOf(e.partitionKey, this.partitions)].push(e.event);
    const touched = byPartition.flatMap((rows, p) => (rows.length > 0 ? [p] : []));
    try {
      return {
        byPartition,
        touched,
        streams: await Promise.all(touched.map((p) => this.ensureStream(c, topic, p))),
      };
    } catch (cause) {
      const e = this.fail(`creating the streams of topic '${topic}'`, cause);
      // Nothing was published. A stream set up wrongly is a plain error; no answer is unavailability.
      throw (cause as Error).message.startsWith('NATS JetStream log')
        ? e
        : new LogUnavailableError(`${e.message} Nothing was appended; resend the batch.`, { cause });
    }
  }

  async append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult> {
    if (entries.length === 0) return [];
    const key = opts?.idempotencyKey;
    const c = await this.connection();
    const { byPartition, touched, streams } = await this.partStreams(c, topic, entries);
    let batchId = '';
    if (key !== undefined) {
      const fingerprint = batchFingerprint([{ topic, entries }]);
      await this.prepareKeyed(c, topic, streams, key, fingerprint);
      // Another batch under the key never shares an id with this one (invariant 6).
      batchId = createHash('sha256').update(`${key}\u0000${fingerprint}`).digest('base64url').slice(0, 22);
    }
    // Publish everything before awaiting any ack (one connection keeps them in order; the acks of a whole
    // batch arrive in one round trip), with one reply subject per append instead of the client's
    // per-message request machinery, which costs ~8x more CPU per event.
    const { inbox, pending } = this.ackInbox(c.nc);
    const id = String(this.nextAppend++);
    const acks: PendingAppend = {
      left: entries.length,
      seqs: new Map(),
      dups: new Map(),
      fail: null,
      noResponders: 0,
      done: () => {},
    };
    const finished = new Promise<void>((resolve) => (acks.done = resolve));
    pending.set(id, acks);
    const deadline = scaledTimeout(this.timeoutMs, entries.length);
    const timer = setTimeout(() => {
      acks.fail ??= new Error(`no reply within ${deadline} ms`);
      acks.done();
    }, deadline);
    try {
      for (const p of touched) {
        const { subject } = this.names(topic, p);
        const rows = byPartition[p];
        if (key === undefined)
          for (const ev of rows) c.nc.publish(subject, JSON.stringify(ev), { reply: `${inbox}.${id}` });
        else
          for (let i = 0; i < rows.length; i++) {
            const h = msgHeaders();
            h.set('Nats-Msg-Id', `${batchId}:${i}`);
            c.nc.publish(subject, JSON.stringify(rows[i]), { reply: `${inbox}.${id}`, headers: h });
          }
      }
    } catch (cause) {
      acks.fail ??= cause as Error;
      acks.done();
    }
    await finished;
    clearTimeout(timer);
    pending.delete(id);
    if (acks.fail) {
      const what = `append of ${entries.length} events to topic '${topic}'`;
      const stored = [...acks.seqs.values()].reduce((n, seqs) => n + seqs.length, 0);
      // Every event answered and none stored: JetStream refused the batch (e.g. a full stream), or nothing
      // listens on the subjects (503 no responders: JetStream down or restarting, the stream deleted).
      if (acks.left === 0 && stored === 0) {
        const e = this.fail(what, acks.fail);
        if (acks.noResponders < entries.length) throw e;
        // Created again by the next append, should the stream be gone.
        for (const p of touched) this.streams.delete(this.names(topic, p).stream);
        throw new LogUnavailableError(`${e.message} Nothing was appended; resend the batch.`, {
          cause: acks.fail,
        });
      }
      const refused = entries.length - acks.left - stored;
      throw new AppendOutcomeUnknownError(
        `NATS JetStream log at ${this.where}: ${what} has an unknown outcome (JetStream confirmed ${stored} of the events${refused > 0 ? `, refused ${refused}` : ''}, and did not answer for ${acks.left}): ${acks.fail.message}. ${unknownAppendAdvice(key !== undefined)}. ${this.check()}`,
        { cause: acks.fail },
      );
    }
    const out: AppendResult = [];
    for (let i = 0; i < touched.length; i++) {
      const seqs = (acks.seqs.get(streams[i]) ?? []).sort((x, y) => x - y);
      const dups = acks.dups.get(streams[i]);
      if (seqs.length !== byPartition[touched[i]].length)
        throw this.fail(
          `append to topic '${topic}'`,
          new Error(
            `stream '${streams[i]}' acknowledged ${seqs.length} of ${byPartition[touched[i]].length} events; another stream captures its subject (${[...acks.seqs.keys()].join(', ')}): remove that overlap`,
          ),
        );
      // Contiguous runs: appends from other connections may interleave (invariant 2); replayed events
      // (duplicates, invariant 6) form runs of their own.
      for (let j = 0; j < seqs.length; j++) {
        const last = out[out.length - 1];
        const replayed = dups?.has(seqs[j]) === true;
        if (j > 0 && last.first + last.count === seqs[j] - 1 && (last.replayed === true) === replayed)
          last.count++;
        else
          out.push({
            partition: touched[i],
            first: seqs[j] - 1,
            count: 1,
            ...(replayed ? { replayed: true as const } : {}),
          });
      }
    }
    return out;
  }

  /** The subscription that collects publish acknowledgements: `<inbox>.<append id>`, one per append. */
  private ackInbox(nc: NatsConnection): { inbox: string; pending: Map<string, PendingAppend> } {
    if (!this.acks) {
      const inbox = createInbox();
      const pending = new Map<string, PendingAppend>();
      nc.subscribe(`${inbox}.*`, {
        callback: (err, m) => {
          const p = pending.get(m.subject.slice(inbox.length + 1));
          if (!p) return; // a late ack of an append that already timed out
          if (err) p.fail ??= err;
          else if ((m.headers?.code ?? 0) >= 300) {
            if (m.headers!.code === 503) p.noResponders++;
            p.fail ??= new Error(`JetStream answered ${m.headers!.code} ${m.headers!.description}`);
          } else {
            const ack = JSON.parse(m.string()) as {
              stream?: string;
              seq?: number;
              duplicate?: boolean;
              error?: { code: number; description: string };
            };
            if (ack.error) p.fail ??= new Error(`JetStream refused an event: ${ack.error.description}`);
            else {
              const seqs = p.seqs.get(ack.stream!);
              if (seqs) seqs.push(ack.seq!);
              else p.seqs.set(ack.stream!, [ack.seq!]);
              if (ack.duplicate) {
                const dups = p.dups.get(ack.stream!);
                if (dups) dups.add(ack.seq!);
                else p.dups.set(ack.stream!, new Set([ack.seq!]));
              }
            }
          }
          if (--p.left === 0) p.done();
        },
      });
      this.acks = { inbox, pending };
    }
    return this.acks;
  }

  async read(topic: string, partition: number, from: number, max: number, waitMs = 0): Promise<LogRecord[]> {
    if (!Number.isSafeInteger(from) || from < 0) throw new Error(`NATS log read: bad offset ${from}`);
    const c = await this.connection();
    const key = `${topic}\u0000${partition}`;
    let reader = this.readers.get(key);
    if (!reader) this.readers.set(key, (reader = new PartitionReader(c.nc, this.timeoutMs)));
    return reader.serialize(async () => {
      try {
        if (reader.position !== from) {
          const stream = await this.ensureStream(c, topic, partition);
          const end = (await c.jsm.streams.info(stream)).state.last_seq;
          if (from > end)
            throw new Error(
              `offset ${from} is past the end of topic '${topic}' partition ${partition} (${end} records): the stream was recreated after this offset was committed. Reset the worker's state (the online store) or restore the stream.`,
            );
          await reader.start(c.jsm, stream, from);
        }
        return await reader.read(max, waitMs, topic);
      } catch (cause) {
        await reader.stop(c.jsm);
        throw this.fail(`read of topic '${topic}' partition ${partition} from offset ${from}`, cause);
      }
    });
  }

  async endOffsets(topic: string): Promise<number[]> {
    const c = await this.connection();
    try {
      return await Promise.all(
        Array.from({ length: this.partitions }, async (_, p) => {
          try {
            return (await c.jsm.streams.info(this.names(topic, p).stream)).state.last_seq;
          } catch (e) {
            if ((e as { code?: number }).code === 10059) return 0; // stream not found: nothing appended
            throw e;
          }
        }),
      );
    } catch (cause) {
      throw this.fail(`endOffsets of topic '${topic}'`, cause);
    }
  }

  async close(): Promise<void> {
    let c: Conn;
    try {
      c = await this.conn;
    } catch {
      return;
    }
    await Promise.all([...this.readers.values()].map((r) => r.serialize(() => r.stop(c.jsm))));
    this.readers.clear();
    await c.nc.close();
  }
}

/** The pull in flight: records delivered so far and how it ends. */
interface Pull {
  readonly batch: number;
  readonly records: LogRecord[];
  resolve(): void;
  reject(e: Error): void;
}

/** One ephemeral pull consumer and its inbox; reads of one partition run one at a time (invariant 3). */
class PartitionReader {
  /** Offset the consumer delivers next; -1 when there is no consumer. */
  position = -1;
  private stream = '';
  private consumer = '';
  private sub: Subscription | null = null;
  private inbox = '';
  private pull: Pull | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly nc: NatsConnection,
    /** How long past a pull's own expiry the client waits for the server's answer. */
    private readonly graceMs: number,
  ) {}

  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  async start(jsm: JetStreamManager, stream: string, from: number): Promise<void> {
    await this.stop(jsm);
    const info = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from + 1,
      inactive_threshold: nanos(CONSUMER_IDLE_MS),
      mem_storage: true,
      num_replicas: 1,
    });
    this.stream = stream;
    this.consumer = info.name;
    this.inbox = createInbox();
    this.sub = this.nc.subscribe(this.inbox, { callback: (err, m) => this.onMessage(err, m) });
    this.position = from;
  }

  async stop(jsm: JetStreamManager): Promise<void> {
    this.sub?.unsubscribe();
    this.sub = null;
    this.pull?.reject(new Error('reader stopped'));
    this.pull = null;
    if (this.consumer) await jsm.consumers.delete(this.stream, this.consumer).catch(() => {});
    this.consumer = '';
    this.position = -1;
  }

  async read(max: number, waitMs: number, topic: string): Promise<LogRecord[]> {
    const got = await this.request(max, 0, topic);
    if (got.length > 0 || waitMs <= 0) return got;
    // Nothing there: wait for one record, then take whatever else has arrived with it.
    const first = await this.request(1, waitMs, topic);
    if (first.length === 0 || max === 1) return first;
    return first.concat(await this.request(max - 1, 0, topic));
  }

  private request(batch: number, waitMs: number, topic: string): Promise<LogRecord[]> {
    return new Promise<LogRecord[]>((resolve, reject) => {
      const records: LogRecord[] = [];
      const timer = setTimeout(
        () => this.pull?.reject(new Error(`no answer from JetStream within ${waitMs + this.graceMs} ms`)),
        waitMs + this.graceMs,
      );
      const settle = () => {
        clearTimeout(timer);
        this.pull = null;
      };
      this.pull = {
        batch,
        records,
        resolve: () => {
          settle();
          resolve(records);
        },
        reject: (e) => {
          settle();
          reject(new Error(`reading topic '${topic}': ${e.message}`, { cause: e }));
        },
      };
      const req = waitMs > 0 ? { batch, expires: nanos(waitMs) } : { batch, no_wait: true };
      this.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.stream}.${this.consumer}`, JSON.stringify(req), {
        reply: this.inbox,
      });
    });
  }

  private onMessage(err: Error | null, m: Msg): void {
    const pull = this.pull;
    if (!pull) return; // a straggler after a stop; the next start re-reads from the committed offset
    if (err) return pull.reject(err);
    if (!m.reply?.startsWith('$JS.ACK.')) {
      // Status message: 404 no messages / 408 expired end a pull early; anything else is a failure.
      const code = m.headers?.code ?? 0;
      if (code === 404 || code === 408) return pull.resolve();
      return pull.reject(new Error(`JetStream answered ${code} ${m.headers?.description ?? ''}`.trim()));
    }
    const offset = streamSequence(m.reply) - 1;
    if (Number.isNaN(offset))
      return pull.reject(new Error(`unexpected JetStream reply subject '${m.reply}'`));
    if (offset !== this.position)
      return pull.reject(
        new Error(
          offset > this.position
            ? `offsets ${this.position}..${offset - 1} are missing from stream '${this.stream}' (deleted, or removed by its retention limits before they were applied); raise the stream's limits, and rebuild the affected tiles with tessera upload`
            : `stream '${this.stream}' delivered offset ${offset} again (expected ${this.position})`,
        ),
      );
    this.position++;
    pull.records.push({ offset, event: decodeLogEvent(m.string()) });
    if (pull.records.length === pull.batch) pull.resolve();
  }
}

/**
 * The stream sequence in a JetStream delivery's reply subject: `$JS.ACK.<stream>.<consumer>.<delivered>.
 * <stream seq>.…` (9 tokens), or with `<domain>.<account hash>` after `ACK` (12+ tokens, newer servers);
 * NaN if it is neither.
 */
function streamSequence(reply: string): number {
  const t = reply.split('.');
  const seq = Number(t[t.length === 9 ? 5 : 7]);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : NaN;
}
