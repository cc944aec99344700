import { isAscii } from 'node:buffer';
import { EventEmitter } from 'node:events';
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { Row } from '../../define/types.ts';
import type { AppendOptions, AppendResult, EventLog, LogEntry, LogRecord } from './event-log.ts';
import {
  encodeFrame,
  encodeJsonFrame,
  encodeTextFrame,
  FRAME_HEADER,
  payloadValid,
  readHeader,
  scanFrames,
} from './frame.ts';
import {
  batchFingerprint,
  IdempotencyCapacityError,
  IdempotencyConflictError,
  IDEMPOTENCY_MAX_KEYS_ENV,
  IDEMPOTENCY_WINDOW_ENV,
  idempotencyMaxKeysOption,
  idempotencyWindowOption,
} from './idempotency.ts';
import { AppendOutcomeUnknownError, unknownAppendAdvice } from './log-unavailable.ts';
import { partitionOf } from './partition.ts';

/**
 * Another process (or another log instance of this one) writes the embedded log folder (invariant 7). The
 * message advises a `tessera stream --replay` run next to a serve; callers running other commands (`tessera
 * serve`) rewrite it from `dir`, `holder` and `lockPath`.
 */
export class LogWriterLockedError extends Error {
  override readonly name = 'LogWriterLockedError';
  constructor(
    /** The log folder. */
    readonly dir: string,
    /** Who holds the lock: `process <pid>` or `another log instance of this process`. */
    readonly holder: string,
    /** The lock file, to delete if its process is gone. */
    readonly lockPath: string,
  ) {
    super(
      `The embedded event log in ${dir} is being written by ${holder}; only one process may append to it ` +
        `(two would overwrite each other's events). Run one writer per --data-dir (while tessera serve runs, ` +
        `send events to POST /v1/events instead of running tessera stream --replay), or use a shared log ` +
        `(--log redis|nats|kafka). If no such process runs any more, delete ${lockPath}.`,
    );
  }
}

/**
 * Embedded durable log: `<dir>/<topic>/p<partition>/<base offset, 20 digits>.seg` segment files of frames
 * (frame.ts). Invariants:
 * 1. Only one process appends to a log directory (the `tessera serve`/`stream` process); any number of
 *    processes may read. Readers treat an incomplete tail frame as "not yet written".
 * 2. An append is one frame per partition, written then fdatasync'ed before the promise resolves
 *    (appends of one event-loop turn share the fdatasync: group commit).
 * 3. On the writer's first touch of a partition, recovery truncates the last segment after its last whole
 *    frame with a valid CRC, so a crash mid-write loses only the unacknowledged batch.
 * 4. Segments roll at `segmentBytes`; earlier segments are immutable.
 * 5. A flush that writes frames to more than one partition file (an `appendTopics` batch spanning topics,
 *    a batch spanning partitions, or concurrent appends) is all-or-nothing: it first writes the whole flush
 *    as one frame of the ingest journal `<dir>/.ingest-journal` (fdatasync'ed), naming each frame's
 *    partition and start offset. The writer's first flush and `recover()` re-append any journaled frame
 *    that a crash left out (a partition still ending at its start offset), so a batch reaches every topic
 *    of its source or none. The journal is emptied once it passes `JOURNAL_TRIM_BYTES` (over its checkpoint,
 *    invariant 8). A flush failing after its journal frame is durable (a segment write, sync or trim) rejects
 *    its appends with `AppendOutcomeUnknownError`, not "nothing appended": the next flush writes them.
 * 6. A log keeps the partition count it was written with (`<dir>/.partitions`, written by the first flush)
 *    and refuses to open with another: topics and the partition of every entity depend on it, so events
 *    appended under the old count would never be read by the new workers.
 * 7. One writer: the first write (append or `recover`) takes the folder's writer lock `<dir>/.writer.lock`
 *    (the writer's pid, created atomically with link(2)) and `close` releases it; another process (or
 *    another log instance of this process) writing the same folder is refused, since two writers would
 *    overwrite each other's frames at their own file positions. A lock whose process is gone (a crash) is
 *    taken over. Readers take no lock.
 * 8. Idempotent appends (`AppendOptions.idempotencyKey`): an append with a key always goes through the
 *    journal, whose frame then also records the key (scoped by the append's topics), the batch's fingerprint,
 *    the time and the first offset of each partition written (~150 bytes a key, `KeyRecord`), so the key is
 *    durable exactly when the batch is (invariant 5). The
 *    writer keeps an index of the keys of the last `windowMs` (default env TESSERA_IDEMPOTENCY_WINDOW_MS,
 *    else 24 h), rebuilt from the journal when it first writes, of at most `maxKeys` (default env
 *    TESSERA_IDEMPOTENCY_MAX_KEYS, else 100,000): a new key that would push out one still within the window
 *    is refused with `IdempotencyCapacityError` (503 naming both settings, nothing appended) rather than
 *    silently shortening the window (100,000 keys at 100 keyed requests/s last 17 minutes). A journal trim
 *    (at `JOURNAL_TRIM_BYTES` past the checkpoint) starts the new journal with a checkpoint frame holding the
 *    index, put in place by rename; opening replays the journal and keeps it, only cutting off a torn last
 *    frame. An append whose key is in the index appends nothing: it resolves with the recorded
 *    offsets marked `replayed` if its fingerprint matches, else rejects with `IdempotencyConflictError`.
 *    Appends are all-or-nothing here, so a resend never has a missing part to complete.
 *
 * @example
 * const log = openFileLog('.tessera/log', { partitions: 1 });
 * await log.append('charges', [{ partitionKey: 'card_1', event: { card_id: 'card_1', ts: 1700000000000 } }]);
 * const records = await log.read('charges', 0, 0, 1000);
 */
export function openFileLog(
  dir: string,
  opts: {
    partitions?: number;
    segmentBytes?: number;
    /** How long idempotency keys are remembered (invariant 8). */
    idempotencyWindowMs?: number;
    /** At most this many keys are remembered (invariant 8; default env TESSERA_IDEMPOTENCY_MAX_KEYS, else 100,000). */
    idempotencyMaxKeys?: number;
  } = {},
): EventLog {
  return new FileLog(dir, opts.partitions ?? 1, opts.segmentBytes ?? 64 * 1024 * 1024, {
    windowMs: idempotencyWindowOption(opts.idempotencyWindowMs, `File log ${dir}`),
    maxKeys: idempotencyMaxKeysOption(opts.idempotencyMaxKeys, DEFAULT_MAX_KEYS, `File log ${dir}`),
  });
}

/** Keys the file log remembers at most (invariant 8): ~100 bytes each in memory and in the checkpoint. */
const DEFAULT_MAX_KEYS = 100_000;

interface Writer {
  fd: number;
  segmentBase: number;
  position: number;
  next: number;
}

interface Cursor {
  offset: number;
  segmentBase: number;
  position: number;
  /**
   * The parsed rows of the frame at `position` when the last read stopped inside it (a worker reads a batch
   * in chunks smaller than frames), so the next read goes on without parsing the frame again; rows before
   * `rowsFrom` were handed out and are dropped here, so they can die young. Null: not parsed.
   */
  rows: (Row | null)[] | null;
  rowsFrom: number;
}

/** One frame a flush writes: the rows routed to one (topic, partition), starting at offset `start`. */
interface PlannedFrame {
  readonly topic: string;
  readonly p: number;
  readonly start: number;
  readonly rows: Row[];
}

/** A journal record (invariant 5): a planned frame in JSON. */
interface JournalPart {
  readonly t: string;
  readonly p: number;
  readonly s: number;
  readonly rows: Row[];
}

/**
 * An idempotency key's record (invariant 8): scoped key, fingerprint, time (ms), and `o`, the first offset
 * of each (part, partition) the batch touched, in part and partition order: the counts follow from the
 * resent batch itself, whose fingerprint matches. Records journaled before `o` carry the ranges, `r`.
 */
interface KeyRecord {
  readonly k: string;
  readonly f: string;
  readonly at: number;
  readonly o?: readonly number[];
  readonly r?: readonly AppendResult[];
}

/** A key record in the journal: `[k, f, at, o]` (~3x smaller than an object with ranges), or an old one. */
type StoredKey = readonly [string, string, number, readonly number[]] | KeyRecord;

const storedKey = (r: KeyRecord): StoredKey => (r.o !== undefined ? [r.k, r.f, r.at, r.o] : r);
const keyRecord = (s: StoredKey): KeyRecord =>
  Array.isArray(s) ? { k: s[0], f: s[1], at: s[2], o: s[3] } : (s as KeyRecord);

/** A journal frame: planned frames (an array, before invariant 8) or frames and key records. */
type JournalFrame =
  | readonly JournalPart[]
  | { readonly parts: readonly JournalPart[]; readonly once: readonly StoredKey[] };

interface AppendJob {
  readonly parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[];
  readonly key?: string;
  readonly resolve: (r: AppendResult[]) => void;
  readonly reject: (e: Error) => void;
}

const JOURNAL = '.ingest-journal';
const PARTITIONS_FILE = '.partitions';
const LOCK_FILE = '.writer.lock';
/** Resolved log folders whose writer lock a log instance of this process holds (invariant 7). */
const lockedHere = new Set<string>();

/** Whether process `pid` exists (EPERM: it does, owned by another user). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const JOURNAL_TRIM_BYTES = 16 * 1024 * 1024;
const SEG_DIGITS = 20;
const segName = (base: number) => `${String(base).padStart(SEG_DIGITS, '0')}.seg`;

function topicDir(topic: string): string {
  if (!/^[A-Za-z0-9_.+=-]+$/.test(topic) || topic.startsWith('.'))
    throw new Error(
      `Event log topic '${topic}' has characters that are unsafe in a directory name. Use letters, digits and _ . + = - only.`,
    );
  return topic;
}

/** How far `countRecords` counted a partition's last segment: up to `position`, offsets up to `next`. */
interface Counted {
  readonly base: number;
  readonly ino: number;
  readonly position: number;
  readonly next: number;
  /** Where the last counted frame starts (-1: none) and its header, to see the tail was not rewritten. */
  readonly last: number;
  readonly lastHeader: Buffer;
}

class FileLog implements EventLog {
  readonly kind = 'file' as const;
  private readonly writers = new Map<string, Writer>();
  private readonly cursors = new Map<string, Cursor>();
  /** Per partition without a writer here, how far `countRecords` last counted (`Counted`). */
  private readonly counted = new Map<string, Counted>();
  private readonly appended = new EventEmitter();
  private queue: AppendJob[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Whether this (appending) process has replayed the ingest journal (invariant 5). */
  private recovered = false;
  private journalFd: number | null = null;
  private journalSize = 0;
  /** Whether this instance holds the folder's writer lock (invariant 7). */
  private lockHeld = false;
  readonly idempotentAppends = true;
  /** Recent idempotency keys by scoped key, oldest first (invariant 8). */
  private readonly keys = new Map<string, KeyRecord>();
  /** Size of the journal's checkpoint frame: the journal is trimmed once it grows this + JOURNAL_TRIM_BYTES. */
  private checkpointBytes = 0;
  /** Where `readNow` reads frame payloads of up to `READ_SCRATCH_MAX` bytes (only used within a call). */
  private readScratch = Buffer.allocUnsafe(0);

  constructor(
    private readonly dir: string,
    readonly partitions: number,
    private readonly segmentBytes: number,
    private readonly idempotency: { readonly windowMs: number; readonly maxKeys: number },
  ) {
    if (!Number.isInteger(partitions) || partitions < 1)
      throw new Error(`File log: partitions must be a positive integer, got ${partitions}.`);
    this.checkPartitions();
    this.appended.setMaxListeners(0);
  }

  /** Invariant 6. Logs from before `.partitions` existed are refused when a partition index is out of range. */
  private checkPartitions(): void {
    const path = join(this.dir, PARTITIONS_FILE);
    let written: number | null = null;
    if (existsSync(path)) written = Number(readFileSync(path, 'utf8').trim());
    else if (existsSync(this.dir))
      for (const topic of readdirSync(this.dir, { withFileTypes: true }))
        if (topic.isDirectory() && !topic.name.startsWith('.'))
          for (const part of readdirSync(join(this.dir, topic.name))) {
            const p = /^p(\d+)$/.exec(part);
            if (p && Number(p[1]) >= this.partitions) written = Math.max(written ?? 0, Number(p[1]) + 1);
          }
    if (written !== null && written !== this.partitions)
      throw new Error(
        `Event log ${this.dir} was written with ${written} partition${written === 1 ? '' : 's'}, not ${this.partitions}: ` +
          `pass --partitions ${written}, or let the workers drain it and delete ${this.dir} and the store to start over with another count.`,
      );
  }

  /** Takes the folder's writer lock (invariant 7) or throws naming the process that holds it. */
  private takeWriterLock(): void {
    if (this.lockHeld) return;
    const folder = resolve(this.dir);
    const path = join(this.dir, LOCK_FILE);
    mkdirSync(this.dir, { recursive: true });
    // The pid is written to a private file first and linked into place, so the lock never exists empty.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${process.pid}\n`);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          linkSync(tmp, path);
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        let holder = NaN;
        try {
          holder = Number(readFileSync(path, 'utf8').trim());
        } catch {
          continue; // released meanwhile: try again
        }
        const held = holder === process.pid ? lockedHere.has(folder) : processAlive(holder);
        if (held || attempt >= 3) {
          const who = holder === process.pid ? 'another log instance of this process' : `process ${holder}`;
          throw new LogWriterLockedError(this.dir, who, path);
        }
        rmSync(path, { force: true }); // its process is gone (a crash): take the lock over
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    lockedHere.add(folder);
    this.lockHeld = true;
  }

  private releaseWriterLock(): void {
    if (!this.lockHeld) return;
    this.lockHeld = false;
    lockedHere.delete(resolve(this.dir));
    const path = join(this.dir, LOCK_FILE);
    try {
      if (Number(readFileSync(path, 'utf8').trim()) === process.pid) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  }

  private recordPartitions(): void {
    const path = join(this.dir, PARTITIONS_FILE);
    if (existsSync(path)) return;
    mkdirSync(this.dir, { recursive: true });
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, `${this.partitions}\n`);
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    syncDir(this.dir);
  }

  private partitionDir(topic: string, p: number): string {
    return join(this.dir, topicDir(topic), `p${p}`);
  }

  private segments(topic: string, p: number): number[] {
    const d = this.partitionDir(topic, p);
    if (!existsSync(d)) return [];
    return readdirSync(d)
      .filter((f) => f.endsWith('.seg'))
      .map((f) => Number(f.slice(0, -4)))
      .sort((a, b) => a - b);
  }

  /** Opens the partition's last segment for appending, truncating a torn tail (invariant 3). */
  private writer(topic: string, p: number): Writer {
    const id = `${topic}/${p}`;
    const existing = this.writers.get(id);
    if (existing) return existing;
    const d = this.partitionDir(topic, p);
    mkdirSync(d, { recursive: true });
    const segs = this.segments(topic, p);
    const base = segs.length ? segs[segs.length - 1] : 0;
    const path = join(d, segName(base));
    const fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
    if (segs.length === 0) syncDir(d);
    const size = fstatSync(fd).size;
    let next = base;
    const position = scanFrames(fd, size, (h) => (next += h.count));
    if (position < size) {
      ftruncateSync(fd, position);
      fsyncSync(fd);
    }
    const w = { fd, segmentBase: base, position, next };
    this.writers.set(id, w);
    return w;
  }

  /**
   * Group commit: appends issued in the same event-loop turn (e.g. concurrent HTTP ingest requests) are
   * written as one frame each, then made durable with ONE fdatasync per touched file, before any of them
   * resolves. Under concurrency this turns one fsync per request into one per turn.
   */
  append(topic: string, entries: readonly LogEntry[], opts?: AppendOptions): Promise<AppendResult> {
    return this.enqueue([{ topic, entries }], opts?.idempotencyKey).then((r) => r[0]);
  }

  /** Appends to several topics all-or-nothing, even across a crash (invariant 5). */
  appendTopics(
    parts: readonly { readonly topic: string; readonly entries: readonly LogEntry[] }[],
    opts?: AppendOptions,
  ): Promise<AppendResult[]> {
    return this.enqueue(parts, opts?.idempotencyKey);
  }

  /** Completes a flush a crash interrupted (invariant 5); the appending process calls it at start-up. */
  async recover(): Promise<void> {
    if (this.closed) throw new Error('File log is closed; cannot recover.');
    this.takeWriterLock();
    if (!this.recovered) this.replayJournal();
  }

  /** Which keys the index holds for a batch to `topics` (EventLog); takes the writer lock, as an append. */
  async heldIdempotencyKeys(topics: readonly string[], keys: readonly string[]): Promise<boolean[]> {
    if (this.closed) throw new Error('File log is closed; cannot look up idempotency keys.');
    this.takeWriterLock();
    if (!this.recovered) this.replayJournal();
    const now = Date.now();
    const scope = topics.join(',');
    return keys.map((key) => this.liveKey(`${scope}\u0000${key}`, now) !== undefined);
  }

  private enqueue(parts: AppendJob['parts'], key?: string): Promise<AppendResult[]> {
    if (this.closed) return Promise.reject(new Error('File log is closed; cannot append.'));
    return new Promise((resolve, reject) => {
      this.queue.push({ parts, resolve, reject, ...(key === undefined ? {} : { key }) });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queue;
    this.queue = [];
    const results: (AppendResult[] | Error)[] = [];
    const woken = new Set<string>();
    const keys: KeyRecord[] = [];
    let journaled = false;
    try {
      this.takeWriterLock();
      if (!this.recovered) this.replayJournal();
      const frames: PlannedFrame[] = [];
      const next = new Map<string, number>();
      const now = Date.now();
      // Each event's JSON once for the flush's fingerprints, journal frame and segment frames, when there
      // is more than the frames to write (a key, or a batch spanning partitions: journaled).
      let texts: EventTexts | null = null;
      for (const job of jobs) {
        if (job.key === undefined) {
          results.push(job.parts.map((part) => this.plan(part, frames, next)));
          continue;
        }
        const k = `${job.parts.map((p) => p.topic).join(',')}\u0000${job.key}`;
        const seen = keys.find((r) => r.k === k) ?? this.liveKey(k, now);
        // A batch under a key seen before appends nothing: its events' JSON is only hashed, not kept.
        const f = batchFingerprint(
          job.parts,
          seen === undefined ? (texts ??= new EventTexts()).of : undefined,
        );
        if (seen === undefined && this.keysFull(now, keys.length)) results.push(this.keysFullError(now));
        else if (seen === undefined) {
          const r = job.parts.map((part) => this.plan(part, frames, next));
          keys.push({ k, f, at: now, o: r.flatMap((ranges) => ranges.map((range) => range.first)) });
          results.push(r);
        } else if (seen.f === f) results.push(this.replayed(seen, job.parts));
        else {
          const topics = job.parts.map((p) => `'${p.topic}'`).join(', ');
          results.push(new IdempotencyConflictError(job.key, `for topic(s) ${topics}`));
        }
      }
      if (next.size > 1 || keys.length > 0) {
        this.journal(frames, keys, (texts ??= new EventTexts()));
        journaled = true;
      }
      const unsynced = new Set<Writer>();
      for (const f of frames) this.writeFrame(f, unsynced, woken, texts);
      for (const w of unsynced) fdatasyncSync(w.fd);
      for (const r of keys) this.remember(r);
      if (this.journalSize > this.checkpointBytes + JOURNAL_TRIM_BYTES) this.trimJournal();
    } catch (error) {
      // Frames may be half written: the next flush replays the journal before writing anything.
      this.recovered = false;
      jobs.forEach((job, i) => {
        const r = results[i];
        // A durable journal frame is written to the partitions by that replay: not "nothing appended".
        if (!journaled || r instanceof Error) job.reject(r instanceof Error ? r : (error as Error));
        else
          job.reject(
            new AppendOutcomeUnknownError(
              `File log ${this.dir}: the append failed after its batch was journaled (${(error as Error).message}); the next append or start-up writes it to its partitions from the journal. ${unknownAppendAdvice(job.key !== undefined)}.`,
              { cause: error },
            ),
          );
      });
      return;
    }
    jobs.forEach((job, i) => {
      const r = results[i];
      if (r instanceof Error) job.reject(r);
      else job.resolve(r);
    });
    for (const key of woken) this.appended.emit(key);
  }

  /** Routes a part's entries to partitions: one planned frame per partition touched. */
  private plan(
    part: AppendJob['parts'][number],
    frames: PlannedFrame[],
    next: Map<string, number>,
  ): AppendResult {
    // Objects are stored by index, not pushed: `push` of an object onto a fresh `[]` (still a small-integer
    // array) made optimized code bail out on every call, a deopt loop on every append.
    const byPartition: Row[][] = Array.from({ length: this.partitions }, () => []);
    for (const e of part.entries) {
      const rows = byPartition[partitionOf(e.partitionKey, this.partitions)];
      rows[rows.length] = e.event;
    }
    const result: AppendResult = [];
    for (let p = 0; p < this.partitions; p++) {
      const rows = byPartition[p];
      if (rows.length === 0) continue;
      const id = `${part.topic}/${p}`;
      const start = next.get(id) ?? this.writer(part.topic, p).next;
      frames[frames.length] = { topic: part.topic, p, start, rows };
      result[result.length] = { partition: p, first: start, count: rows.length };
      next.set(id, start + rows.length);
    }
    return result;
  }

  private writeFrame(
    f: PlannedFrame,
    unsynced: Set<Writer>,
    woken: Set<string>,
    texts: EventTexts | null = null,
  ): void {
    let w = this.writer(f.topic, f.p);
    if (w.next !== f.start)
      throw new Error(
        `Event log ${this.dir}: ${f.topic}/p${f.p} ends at offset ${w.next}, expected ${f.start}; another process appended to it (only one process may append to a log directory).`,
      );
    if (w.position >= this.segmentBytes) {
      unsynced.delete(w);
      w = this.roll(f.topic, f.p, w);
    }
    const frame = texts === null ? encodeFrame(f.rows) : encodeTextFrame(texts.array(f.rows), f.rows.length);
    let written = 0;
    while (written < frame.length)
      written += writeSync(w.fd, frame, written, frame.length - written, w.position + written);
    unsynced.add(w);
    w.position += frame.length;
    w.next += f.rows.length;
    woken.add(`${f.topic}/${f.p}`);
  }

  /** The original offsets of a resent batch, marked replayed, from its key's record (invariant 8). */
  private replayed(seen: KeyRecord, parts: AppendJob['parts']): AppendResult[] {
    if (seen.r !== undefined)
      return seen.r.map((ranges) => ranges.map((range) => ({ ...range, replayed: true as const })));
    let i = 0;
    return parts.map((part) => {
      const counts = new Array<number>(this.partitions).fill(0);
      for (const e of part.entries) counts[partitionOf(e.partitionKey, this.partitions)]++;
      const out: AppendResult = [];
      for (let p = 0; p < this.partitions; p++)
        if (counts[p] > 0) out.push({ partition: p, first: seen.o![i++], count: counts[p], replayed: true });
      return out;
    });
  }

  /** The record of scoped key `k` if it is within the window (invariant 8). */
  private liveKey(k: string, now: number): KeyRecord | undefined {
    const r = this.keys.get(k);
    return r !== undefined && r.at + this.idempotency.windowMs > now ? r : undefined;
  }

  /**
   * Whether the index has no room for another key within the window, with `adding` more of this flush:
   * expired keys are dropped first (invariant 8).
   */
  private keysFull(now: number, adding: number): boolean {
    this.dropExpired(now);
    return this.keys.size + adding >= this.idempotency.maxKeys;
  }

  private keysFullError(now: number): IdempotencyCapacityError {
    const oldest = this.keys.values().next().value;
    const frees = oldest === undefined ? 0 : Math.max(0, oldest.at + this.idempotency.windowMs - now);
    return new IdempotencyCapacityError(
      `File log ${this.dir}: it remembers at most ${this.idempotency.maxKeys} idempotency keys (${IDEMPOTENCY_MAX_KEYS_ENV}) and all are within the idempotency window of ${this.idempotency.windowMs} ms (${IDEMPOTENCY_WINDOW_ENV}), so a new key would push out one still in use; nothing was appended (the oldest expires in ${Math.ceil(frees / 1000)} s). Raise ${IDEMPOTENCY_MAX_KEYS_ENV} (each key costs a few hundred bytes of memory and journal), lower ${IDEMPOTENCY_WINDOW_ENV}, or send without Idempotency-Key.`,
    );
  }

  /** Drops the keys past the window (the index is in time order). */
  private dropExpired(now: number): void {
    for (const [k, r] of this.keys) {
      if (r.at + this.idempotency.windowMs > now) break;
      this.keys.delete(k);
    }
  }

  /**
   * Adds a key record to the index, dropping expired ones; beyond `maxKeys` (only when rebuilt with a lower
   * setting: flush refuses new keys first) the oldest.
   */
  private remember(r: KeyRecord): void {
    this.keys.delete(r.k); // re-inserted last: the map stays in time order
    this.keys.set(r.k, r);
    const expired = r.at - this.idempotency.windowMs;
    for (const [k, old] of this.keys) {
      if (old.at > expired && this.keys.size <= this.idempotency.maxKeys) break;
      this.keys.delete(k);
    }
  }

  /**
   * Writes a flush's frames, and its key records, as one durable journal frame before any of them
   * (invariants 5 and 8).
   */
  private journal(frames: readonly PlannedFrame[], keys: readonly KeyRecord[], texts: EventTexts): void {
    const fd = this.openJournal();
    // `encodeJournalFrame` of the frames' JournalParts (and keys), its rows' JSON taken from `texts`.
    const parts = `[${frames
      .map((f) => `{"t":${JSON.stringify(f.topic)},"p":${f.p},"s":${f.start},"rows":${texts.array(f.rows)}}`)
      .join(',')}]`;
    const json =
      keys.length === 0 ? parts : `{"parts":${parts},"once":${JSON.stringify(keys.map(storedKey))}}`;
    const record = encodeTextFrame(json, frames.length);
    let written = 0;
    while (written < record.length)
      written += writeSync(fd, record, written, record.length - written, this.journalSize + written);
    fdatasyncSync(fd);
    this.journalSize += record.length;
  }

  private openJournal(): number {
    if (this.journalFd === null) {
      mkdirSync(this.dir, { recursive: true });
      const path = join(this.dir, JOURNAL);
      this.journalFd = openSync(path, existsSync(path) ? 'r+' : 'w+');
      this.journalSize = fstatSync(this.journalFd).size;
    }
    return this.journalFd;
  }

  /**
   * Starts the journal over with a checkpoint of the live keys (invariant 8): written to a temporary file
   * and renamed into place, so a crash leaves either journal whole. Its frames must all be applied.
   */
  private trimJournal(): void {
    this.dropExpired(Date.now());
    if (this.keys.size === 0) {
      const fd = this.openJournal();
      ftruncateSync(fd, 0);
      fsyncSync(fd);
      this.journalSize = 0;
      this.checkpointBytes = 0;
      return;
    }
    const path = join(this.dir, JOURNAL);
    const tmp = `${path}.tmp`;
    const record = encodeJournalFrame({ parts: [], once: [...this.keys.values()].map(storedKey) });
    const fd = openSync(tmp, 'w');
    try {
      let written = 0;
      while (written < record.length)
        written += writeSync(fd, record, written, record.length - written, written);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.journalFd !== null) closeSync(this.journalFd);
    this.journalFd = null;
    renameSync(tmp, path);
    syncDir(this.dir);
    this.openJournal();
    this.checkpointBytes = record.length;
  }

  /**
   * Re-appends journaled frames a crash left out: a partition still ending at a frame's start offset lacks
   * it; one ending at or past the frame's end has it. A torn last journal frame was never acknowledged and
   * none of its frames were written (they follow the journal's fdatasync), so it is dropped.
   */
  private replayJournal(): void {
    this.recordPartitions();
    const path = join(this.dir, JOURNAL);
    this.keys.clear();
    if (existsSync(path)) {
      const fd = this.openJournal();
      const unsynced = new Set<Writer>();
      const woken = new Set<string>();
      let first = true;
      this.checkpointBytes = 0;
      const position = scanFrames(fd, this.journalSize, (h, payload) => {
        const frame = JSON.parse(payload.toString('utf8')) as JournalFrame;
        const parts = 'parts' in frame ? frame.parts : frame;
        if ('once' in frame) for (const r of frame.once) this.remember(keyRecord(r));
        // A checkpoint (invariant 8) starts the journal: trims compare the journal's growth with its size.
        if (first) this.checkpointBytes = 'once' in frame && parts.length === 0 ? FRAME_HEADER + h.length : 0;
        first = false;
        for (const part of parts) {
          const end = this.writer(part.t, part.p).next;
          if (end === part.s)
            this.writeFrame({ topic: part.t, p: part.p, start: part.s, rows: part.rows }, unsynced, woken);
          else if (end < part.s + part.rows.length)
            throw new Error(
              `Event log ${this.dir}: ${part.t}/p${part.p} ends at offset ${end}, but the ingest journal holds offsets ${part.s}..${part.s + part.rows.length - 1} for it; the partition lost records. Restore the log directory from a backup.`,
            );
        }
      });
      for (const w of unsynced) fdatasyncSync(w.fd);
      this.dropExpired(Date.now());
      // Its frames are all applied now. Without live keys it is emptied (a truncate); with some it is
      // rewritten only past the trim size (the checkpoint of 100k keys took ~1 s to write), else kept as
      // is, replaying it again changing nothing, but for a torn last frame (never acknowledged), cut off
      // so that the next frame is written in its place.
      if (this.keys.size === 0 || this.journalSize > this.checkpointBytes + JOURNAL_TRIM_BYTES)
        this.trimJournal();
      else if (position < this.journalSize) {
        ftruncateSync(fd, position);
        fdatasyncSync(fd);
        this.journalSize = position;
      }
      for (const key of woken) this.appended.emit(key);
    }
    this.recovered = true;
  }

  private roll(topic: string, p: number, w: Writer): Writer {
    fdatasyncSync(w.fd); // frames of this flush may still be unsynced
    closeSync(w.fd);
    const d = this.partitionDir(topic, p);
    const fd = openSync(join(d, segName(w.next)), 'w+');
    syncDir(d);
    const nw = { fd, segmentBase: w.next, position: 0, next: w.next };
    this.writers.set(`${topic}/${p}`, nw);
    return nw;
  }

  async read(topic: string, partition: number, from: number, max: number, waitMs = 0): Promise<LogRecord[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const out = this.readNow(topic, partition, from, max);
      const left = deadline - Date.now();
      if (out.length > 0 || left <= 0 || this.closed) return out;
      // Same-process appends wake us at once; appends by another process are seen by polling.
      await new Promise<void>((resolve) => {
        const key = `${topic}/${partition}`;
        const done = () => {
          clearTimeout(timer);
          this.appended.off(key, done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 10));
        this.appended.on(key, done);
      });
    }
  }

  private readNow(topic: string, p: number, from: number, max: number): LogRecord[] {
    const id = `${topic}/${p}`;
    const segs = this.segments(topic, p);
    if (segs.length === 0) return [];
    let cursor = this.cursors.get(id);
    if (!cursor || cursor.offset > from) {
      let base = segs[0];
      for (const s of segs) if (s <= from) base = s;
      cursor = { offset: base, segmentBase: base, position: 0, rows: null, rowsFrom: 0 };
    }
    const out: LogRecord[] = [];
    const header = Buffer.alloc(FRAME_HEADER);
    for (;;) {
      const path = join(this.partitionDir(topic, p), segName(cursor.segmentBase));
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch {
        break;
      }
      let reachedEnd = false;
      try {
        const size = fstatSync(fd).size;
        while (out.length < max) {
          if (cursor.position + FRAME_HEADER > size) {
            reachedEnd = true;
            break;
          }
          readSync(fd, header, 0, FRAME_HEADER, cursor.position);
          const h = readHeader(header);
          if (cursor.position + FRAME_HEADER + h.length > size) {
            reachedEnd = true;
            break;
          }
          if (cursor.offset + h.count <= from) {
            cursor.position += FRAME_HEADER + h.length;
            cursor.offset += h.count;
            cursor.rows = null;
            continue;
          }
          const skip = Math.max(0, from - cursor.offset);
          let rows = cursor.rows;
          if (rows === null || skip < cursor.rowsFrom) {
            const payload = this.payloadBuffer(h.length);
            readSync(fd, payload, 0, h.length, cursor.position + FRAME_HEADER);
            if (!payloadValid(h, payload)) {
              // A torn tail being recovered by the writer, or corruption; never read past it.
              reachedEnd = true;
              break;
            }
            rows = JSON.parse(jsonText(payload)) as Row[];
          }
          const take = Math.min(rows.length, skip + (max - out.length));
          for (let i = skip; i < take; i++) out.push({ offset: cursor.offset + i, event: rows[i]! });
          if (take < rows.length) {
            // Stop mid-frame; the cursor stays at the frame start, with the rest of the frame parsed.
            for (let i = skip; i < take; i++) rows[i] = null;
            cursor.rows = rows;
            cursor.rowsFrom = take;
            break;
          }
          cursor.rows = null;
          cursor.position += FRAME_HEADER + h.length;
          cursor.offset += h.count;
        }
      } finally {
        closeSync(fd);
      }
      if (out.length >= max || !reachedEnd) break;
      const nextSeg = segs.find((s) => s > cursor!.segmentBase);
      if (nextSeg === undefined || nextSeg !== cursor.offset) break;
      cursor = { offset: nextSeg, segmentBase: nextSeg, position: 0, rows: null, rowsFrom: 0 };
    }
    this.cursors.set(id, cursor);
    return out;
  }

  /**
   * A buffer of `length` bytes for a frame payload, only valid until the next call: the scratch one, so a
   * read allocates no buffer per frame (parsed rows do not refer to it), unless the frame is bigger than
   * `READ_SCRATCH_MAX` (not kept for every later read).
   */
  private payloadBuffer(length: number): Buffer {
    if (length > READ_SCRATCH_MAX) return Buffer.allocUnsafe(length);
    if (this.readScratch.length < length)
      this.readScratch = Buffer.allocUnsafe(
        Math.min(READ_SCRATCH_MAX, Math.max(length, 2 * this.readScratch.length)),
      );
    return this.readScratch.subarray(0, length);
  }

  async endOffsets(topic: string): Promise<number[]> {
    const out: number[] = [];
    for (let p = 0; p < this.partitions; p++) {
      const w = this.writers.get(`${topic}/${p}`);
      if (w) out.push(w.next);
      else out.push(this.countRecords(topic, p));
    }
    return out;
  }

  /**
   * Next offset of a partition seen from the reader side: last segment base + counts of its whole frames.
   * Counts only the frames added since it last counted (`counted`): a segment of 400k one-event frames
   * took ~100 ms to count whole, on every `endOffsets` (the pipeline monitor asks every 100 ms). It counts
   * afresh on another segment or file (a new inode: the directory replaced), one shorter than counted (a
   * recovery cut its tail) or whose last counted frame header changed (cut and rewritten since).
   */
  private countRecords(topic: string, p: number): number {
    const id = `${topic}/${p}`;
    const segs = this.segments(topic, p);
    if (segs.length === 0) {
      this.counted.delete(id);
      return 0;
    }
    const base = segs[segs.length - 1];
    const fd = openSync(join(this.partitionDir(topic, p), segName(base)), 'r');
    try {
      const { size, ino } = fstatSync(fd);
      const header = Buffer.alloc(FRAME_HEADER);
      let c = this.counted.get(id);
      if (c !== undefined && (c.base !== base || c.ino !== ino || c.position > size)) c = undefined;
      if (c !== undefined && c.last >= 0) {
        readSync(fd, header, 0, FRAME_HEADER, c.last);
        if (!header.equals(c.lastHeader)) c = undefined;
      }
      let { position, next, last, lastHeader } = c ?? {
        position: 0,
        next: base,
        last: -1,
        lastHeader: Buffer.alloc(FRAME_HEADER),
      };
      while (position + FRAME_HEADER <= size) {
        readSync(fd, header, 0, FRAME_HEADER, position);
        const h = readHeader(header);
        if (position + FRAME_HEADER + h.length > size) break;
        last = position;
        lastHeader = Buffer.from(header);
        position += FRAME_HEADER + h.length;
        next += h.count;
      }
      this.counted.set(id, { base, ino, position, next, last, lastHeader });
      return next;
    } finally {
      closeSync(fd);
    }
  }

  async close(): Promise<void> {
    if (this.queue.length > 0) this.flush(); // appends already accepted are written, not dropped
    this.closed = true;
    for (const w of this.writers.values()) closeSync(w.fd);
    if (this.journalFd !== null) closeSync(this.journalFd);
    this.journalFd = null;
    this.writers.clear();
    this.releaseWriterLock();
    this.appended.removeAllListeners();
  }
}

/** Largest frame payload `readNow` reads into its scratch buffer, which it keeps (bigger ones get their own). */
const READ_SCRATCH_MAX = 8 * 2 ** 20;

/**
 * The JSON text of a frame payload (UTF-8). An ASCII payload (most events; checked with SIMD) is decoded as
 * latin1, which copies its bytes into a one-byte string, the same string as UTF-8 decoding would give,
 * without UTF-8 decoding; anything else is decoded as UTF-8.
 */
function jsonText(payload: Buffer): string {
  return isAscii(payload) ? payload.toString('latin1') : payload.toString('utf8');
}

/**
 * Events' JSON texts, each made once (`JSON.stringify`'s text): a keyed or journaled flush writes every
 * event up to three times (fingerprint, journal frame, segment frame), ~a third of a replay's CPU. A
 * frame's rows are joined once too, for its journal record and its segment frame (~0.5 s of a 1M-row replay).
 */
class EventTexts {
  private readonly texts = new Map<Row, string>();
  private readonly arrays = new Map<readonly Row[], string>();
  readonly of = (row: Row): string => {
    let t = this.texts.get(row);
    if (t === undefined) this.texts.set(row, (t = JSON.stringify(row)));
    return t;
  };
  /** `JSON.stringify(rows)`, made once per array (a planned frame's rows, which no one changes). */
  array(rows: readonly Row[]): string {
    let t = this.arrays.get(rows);
    if (t === undefined) this.arrays.set(rows, (t = `[${rows.map(this.of).join(',')}]`));
    return t;
  }
}

/** A journal frame (invariants 5 and 8); its record count is the number of planned frames. */
function encodeJournalFrame(frame: JournalFrame): Buffer {
  return encodeJsonFrame(frame, 'parts' in frame ? frame.parts.length : frame.length);
}

function syncDir(d: string): void {
  const fd = openSync(d, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
