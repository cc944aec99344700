import { AckPolicy, DeliverPolicy, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import { connect, createInbox, headers as msgHeaders, nanos } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Row } from '../../define/types.ts';
import { decodeLogEvent } from '../log-event-check.ts';
import type { AppendOptions, AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import {
  batchFingerprint,
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
import { partitionOf } from './partition.ts';
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
 * 6. Idempotent appends (`AppendOptions.idempotencyKey`) use JetStream's own dedupe: the i-th event of an
 *    append's part in a partition is published with `Nats-Msg-Id: <key>:<i>` and the batch's fingerprint in
 *    the header `Tessera-Batch`. The stream stores a message id once per `duplicate_window`, which this log
 *    sets to its window (default env TESSERA_IDEMPOTENCY_WINDOW_MS, else 24 h) on the streams it creates,
 *    and updates on existing ones when it first uses them (so the dedupe is bounded by each stream's
 *    duplicate_window, which must not exceed an operator's max_age). A duplicate's acknowledgement has
 *    `duplicate: true` and the original sequence, reported as `replayed` offsets, so a resend stores
 *    exactly the events an earlier attempt did not. Other events under a used key are told by the stored
 *    message's `Tessera-Batch` (one read per partition with duplicates): `IdempotencyConflictError`, but
 *    only after publishing, so events of the new batch at positions or partitions the first batch did not
 *    have were stored (the error counts them); a batch sharing no (partition, position) with the first is
 *    not seen as a conflict at all.
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
    `NATS JetStream log at ${url}`,
  );
  const windowMs = idempotencyWindowOption(opts.idempotencyWindowMs, `NATS JetStream log at ${url}`);
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

/** The header naming an idempotent append's batch fingerprint (invariant 6). */
const BATCH_HEADER = 'Tessera-Batch';

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
  /**
   * Streams known to exist (created or found) by this process, with an error when their duplicate_window
   * could not be set to the window (idempotent appends to them are refused; others are fine).
   */
  private readonly streams = new Map<string, Error | null>();
  private readonly readers = new Map<string, PartitionReader>();
  private acks: { inbox: string; pending: Map<string, PendingAppend> } | null = null;
  private nextAppend = 0;

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
        `NATS JetStream log: cannot connect to ${this.url}: ${(cause as Error).message}. Start nats-server with JetStream (nats-server -js), or point --nats-url (env NATS_URL) at a running server.`,
        { cause },
      );
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.timeoutMs });
      return { nc, jsm };
    } catch (cause) {
      await nc.close().catch(() => {});
      throw new Error(
        `NATS JetStream log: the server at ${this.url} does not offer JetStream (${(cause as Error).message}). Start nats-server with -js (and a store dir, -sd DIR).`,
        { cause },
      );
    }
  }

  private fail(what: string, cause: unknown): Error {
    if ((cause as Error).message.startsWith('NATS JetStream log')) return cause as Error;
    const message = `NATS JetStream log at ${this.url}: ${what} failed: ${(cause as Error).message}.`;
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
    let windowError: Error | null = null;
    try {
      await c.jsm.streams.add({
        name: stream,
        subjects: [subject],
        storage: StorageType.File,
        num_replicas: this.replicas,
        duplicate_window: window,
      });
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
      // Created by an older Tessera (JetStream's 2-minute default) or with another window: set ours.
      if (info.config.duplicate_window !== window)
        try {
          await c.jsm.streams.update(stream, { duplicate_window: window });
        } catch (e) {
          windowError = new Error(
            `NATS JetStream log: the duplicate_window of stream '${stream}' could not be set to the idempotency window of ${this.windowMs} ms (${(e as Error).message}), so it cannot take idempotent appends; nothing was appended. Raise the stream's max_age to at least the window, or lower ${IDEMPOTENCY_WINDOW_ENV} (it is ${info.config.duplicate_window / 1e6} ms now), or send without Idempotency-Key.`,
            { cause: e },
          );
        }
    }
    this.streams.set(stream, windowError);
    return stream;
  }

  async append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult> {
    if (entries.length === 0) return [];
    const key = opts?.idempotencyKey;
    const c = await this.connection();
    const byPartition: Row[][] = Array.from({ length: this.partitions }, () => []);
    for (const e of entries) byPartition[partitionOf(e.partitionKey, this.partitions)].push(e.event);
    const touched = byPartition.flatMap((rows, p) => (rows.length > 0 ? [p] : []));
    let streams: string[];
    try {
      streams = await Promise.all(touched.map((p) => this.ensureStream(c, topic, p)));
    } catch (cause) {
      const e = this.fail(`creating the streams of topic '${topic}'`, cause);
      // Nothing was published. A stream set up wrongly is a plain error; no answer is unavailability.
      throw (cause as Error).message.startsWith('NATS JetStream log')
        ? e
        : new LogUnavailableError(`${e.message} Nothing was appended; resend the batch.`, { cause });
    }
    if (key !== undefined)
      for (const stream of streams) {
        const windowError = this.streams.get(stream);
        if (windowError) throw windowError;
      }
    const fingerprint = key === undefined ? '' : batchFingerprint([{ topic, entries }]);
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
            h.set('Nats-Msg-Id', `${key}:${i}`);
            h.set(BATCH_HEADER, fingerprint);
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
        `NATS JetStream log at ${this.url}: ${what} has an unknown outcome (JetStream confirmed ${stored} of the events${refused > 0 ? `, refused ${refused}` : ''}, and did not answer for ${acks.left}): ${acks.fail.message}. ${unknownAppendAdvice(key !== undefined)}. ${this.check()}`,
        { cause: acks.fail },
      );
    }
    if (key !== undefined && acks.dups.size > 0) await this.checkReplay(c, topic, key, fingerprint, acks);
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

  /**
   * Throws `IdempotencyConflictError` if a duplicate of this append was stored by a batch with another
   * fingerprint (invariant 6): one stored message per stream with duplicates is read.
   */
  private async checkReplay(
    c: Conn,
    topic: string,
    key: string,
    fingerprint: string,
    acks: PendingAppend,
  ): Promise<void> {
    const stored = [...acks.seqs.values()].reduce((n, seqs) => n + seqs.length, 0);
    const dups = [...acks.dups.values()].reduce((n, d) => n + d.size, 0);
    for (const [stream, seqs] of acks.dups) {
      const seq = Math.min(...seqs);
      let original: string | undefined;
      try {
        original = (await c.jsm.streams.getMessage(stream, { seq }))?.header?.get(BATCH_HEADER);
      } catch (cause) {
        throw new AppendOutcomeUnknownError(
          `NATS JetStream log at ${this.url}: an idempotent append to topic '${topic}' found events stored under its key already, but reading one back (stream '${stream}' sequence ${seq}) to check it is the same batch failed: ${(cause as Error).message}. ${unknownAppendAdvice(true)}. ${this.check()}`,
          { cause },
        );
      }
      if (original !== fingerprint)
        throw new IdempotencyConflictError(
          key,
          `for topic '${topic}' (stream '${stream}')`,
          stored > dups
            ? `${stored - dups} event(s) of this batch that the earlier one had no counterpart for were appended before JetStream reported the duplicates`
            : 'nothing was appended',
        );
    }
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
