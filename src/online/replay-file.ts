import { createHash } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GroupByDef, Row, SourceDef } from '../define/types.ts';
import type { BadRowPolicy } from '../offline/bad-input.ts';
import { ident, openScratchDb } from '../offline/duck.ts';
import { stageSource } from '../offline/stage-source.ts';
import { createProgress } from '../offline/progress.ts';
import { keySizePlan, oversizeKeyIssues } from '../serve/key-size-check.ts';
import { groupById } from './group-by-id.ts';
import { EventValidationError, ingestEvents } from './ingest.ts';
import type { EventLog } from './log/event-log.ts';
import { IdempotencyCapacityError, IdempotencyConflictError } from './log/idempotency.ts';
import {
  bySegment,
  planReplayRest,
  planReplaySegments,
  rowsText,
  type ReplaySegment,
} from './replay-chunk-keys.ts';
import { CheckedRows, validateEvent, type EventIssue } from './validate-event.ts';

/** File rows per appended chunk: one ingest call, and with dedupe one idempotency key. */
export const REPLAY_CHUNK_ROWS = 5000;

/** Events of consecutive file rows (rows with bad values left out), for one append. */
export interface ReplayChunk {
  /** Chunk index k: the chunk covers file rows f+k*n .. f+(k+1)*n-1 (n rows per chunk, from row f), whatever rows were skipped. */
  readonly index: number;
  /** The 1-based file row of each event (data rows, header not counted, as the backfill counts them). */
  readonly rows: readonly number[];
  readonly events: readonly Record<string, unknown>[];
}

/**
 * DuckDB's memory for a replay: the staged file spills to the replay's temp dir beyond it, so memory does
 * not grow with the file (with the backfill's default, 60% of RAM, a 1M-row 127 MB CSV took ~830 MB RSS;
 * with this ~600 MB, for ~2-3 s more CPU spilling).
 */
const REPLAY_MEMORY_LIMIT = '256MB';

export interface ReadReplayOptions {
  readonly onBadRow?: BadRowPolicy;
  /** File rows per chunk (default `REPLAY_CHUNK_ROWS`); chunk k holds rows f+k*n .. f+(k+1)*n-1. */
  readonly chunkRows?: number;
  /**
   * The first file row f to yield (1-based, default 1). Rows before it are read and checked as the rest
   * (a bad one fails policy `fail`) but neither yielded nor counted as skipped.
   */
  readonly fromRow?: number;
  /** Called once at the end with the number of rows skipped as bad (policy `skip`). */
  readonly onBadRows?: (count: number) => void;
}

/**
 * Reads a replay file's events as the backfill reads a source's files (stage-source.ts): CSV and JSONL
 * values as text converted by the source schema's types, Parquet by its own types, times parsed by the
 * shared parser, columns outside the schema ignored, and a bad value (policy `fail`) a `BadInputError`
 * naming the file, its 1-based row and the column before anything is yielded; `skip` leaves such rows out
 * and counts them. The format follows the extension (.parquet .pq .csv .tsv .csv.gz .jsonl .ndjson
 * .jsonl.gz); a `.json` file is one JSON array of events, read as an ingest request body (validated by
 * `ingestEvents` only). Events are yielded in file order, as schema columns only (the stream workers
 * compute derived columns and apply the filter, as for ingested events), in chunks of file rows.
 *
 * @example
 * for await (const c of readReplayFile('charges.csv', charges)) await ingestEvents(log, charges, gbs, c.events);
 */
export async function* readReplayFile(
  path: string,
  source: SourceDef,
  options: ReadReplayOptions = {},
): AsyncGenerator<ReplayChunk> {
  const file = await openReplayFile(path, source, options);
  try {
    // A `.json` file is a request body: its consumer's ingest validates it.
    if (file.staged && (options.onBadRow ?? 'fail') === 'fail')
      await checkAll(file, source, null, `file ${path}`);
    yield* file.chunks();
    options.onBadRows?.(file.badRows);
  } finally {
    file.close();
  }
}

/** A replay file read and typed once, whose chunks can be iterated more than once. */
interface OpenReplayFile {
  /**
   * The events, from `fromRow` on. Of a staged file (not `.json`), rows ingest would refuse (a null in a
   * required column, a number out of range) are left out and counted in `badRows`.
   */
  chunks(): AsyncGenerator<ReplayChunk>;
  /**
   * The events that may be refused, by ingest or (`keysOf`: the group-bys) for a key too long for the LMDB
   * store, in file order: what a check before appending must look at. All of them for a `.json` file.
   */
  suspects(keysOf: readonly GroupByDef[] | null): AsyncGenerator<ReplayChunk>;
  /** Read by `stageSource` (not a `.json` file, whose events are as the file has them). */
  readonly staged: boolean;
  /** Rows skipped as bad while reading (policy `skip`) or left out of `chunks`, from `fromRow` on. */
  readonly badRows: number;
  /** Data rows of the file (bad ones included). */
  readonly fileRows: number;
  /** Derived columns of the source that the file has too: ignored (the workers compute them). */
  readonly ignoredDerived: readonly string[];
  close(): void;
}

async function openReplayFile(
  path: string,
  source: SourceDef,
  options: ReadReplayOptions,
): Promise<OpenReplayFile> {
  const chunkRows = options.chunkRows ?? REPLAY_CHUNK_ROWS;
  const skipRows = (options.fromRow ?? 1) - 1;
  if (!Number.isSafeInteger(skipRows) || skipRows < 0)
    throw new Error(`replay from row ${options.fromRow}: the row must be a whole number from 1`);
  if (path.toLowerCase().endsWith('.json')) {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (!Array.isArray(parsed))
      throw new Error(
        `replay file '${path}': expected a JSON array of events; use .jsonl for one event per line.`,
      );
    const list: unknown[] = parsed;
    async function* chunks(): AsyncGenerator<ReplayChunk> {
      for (let i = skipRows; i < list.length; i += chunkRows) {
        const events = list.slice(i, i + chunkRows) as Record<string, unknown>[];
        yield { index: (i - skipRows) / chunkRows, rows: events.map((_, j) => i + j + 1), events };
      }
    }
    return {
      staged: false,
      badRows: 0,
      fileRows: parsed.length,
      ignoredDerived: Object.keys(source.derived).filter((d) =>
        parsed.some((e: unknown) => typeof e === 'object' && e !== null && d in e),
      ),
      close: () => {},
      chunks,
      suspects: chunks,
    };
  }
  if (!/\.(parquet|pq|csv|tsv|csv\.gz|jsonl|ndjson|jsonl\.gz)$/i.test(path))
    throw new Error(
      `replay file '${path}': unknown format; use .jsonl, .ndjson, .json, .parquet or .csv (also .pq, .tsv, .csv.gz, .jsonl.gz).`,
    );
  // Derived columns and the filter are the workers' job; here only the schema columns are read and typed.
  const raw: SourceDef = { ...source, format: 'auto', derived: {}, filter: undefined };
  // DuckDB's spill directory under a `tessera-replay-` one, removed on close and if the replay is interrupted.
  const tempRoot = mkdtempSync(join(tmpdir(), 'tessera-replay-'));
  const removeTemp = () => rmSync(tempRoot, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    removeTemp();
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    // Nobody else listening: the default action (exit), as if this handler had not been there.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  let db: Awaited<ReturnType<typeof openScratchDb>>;
  const closeAll = () => {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    db?.close();
    removeTemp();
  };
  try {
    db = await openScratchDb({ tempRoot, memoryLimit: REPLAY_MEMORY_LIMIT });
  } catch (error) {
    closeAll();
    throw error;
  }
  try {
    const staged = await stageSource(db.conn, raw, {
      baseDir: process.cwd(),
      files: [path],
      onBadRow: options.onBadRow ?? 'fail',
      // As ingest does for an omitted field: producers of JSONL often leave out null fields.
      missingNullableAsNull: true,
      tableName: '__replay',
      // One big file: DuckDB's one-off planning of the conversion pays back (stage-source.ts).
      textTimesInSql: true,
    });
    const names = Object.keys(source.schema);
    // One file, so __seq is its 0-based row; the staged relation is in file order (openScratchDb preserves
    // insertion order), so no sort is needed (checked below: chunk keys depend on it).
    const from = `FROM ${ident(staged.relation)} WHERE __seq >= ${skipRows}`;
    const refused = refusedSql(source);
    // Bad rows before fromRow are not this replay's: the rows there minus those staged.
    let badBefore = 0;
    if (skipRows > 0 && staged.badRows > 0) {
      const r = await db.conn.runAndReadAll(
        `SELECT count(*)::DOUBLE FROM ${ident(staged.relation)} WHERE __seq < ${skipRows}`,
      );
      badBefore = Math.min(skipRows, staged.rows) - (r.getRows()[0][0] as number);
    }
    const counted = await db.conn.runAndReadAll(`SELECT count(*)::DOUBLE ${from} AND (${refused})`);
    const refusedRows = counted.getRows()[0][0] as number;
    /** The staged rows from `fromRow` on where `cond` holds, a DuckDB chunk at a time. */
    async function* rowsWhere(cond: string) {
      const result = await db.conn.stream(
        `SELECT __seq, ${names.map(ident).join(', ')} ${from} AND (${cond})`,
      );
      for (;;) {
        const data = await result.fetchChunk();
        if (data === null || data.rowCount === 0) break;
        const cols = data.getColumns();
        const batch: { s: number; e: Record<string, unknown> }[] = [];
        for (let i = 0; i < data.rowCount; i++) {
          const e: Record<string, unknown> = {};
          for (let j = 0; j < names.length; j++) e[names[j]] = cols[j + 1][i];
          batch.push({ s: cols[0][i] as number, e });
        }
        yield batch;
      }
    }
    return {
      staged: true,
      badRows: staged.badRows - badBefore + refusedRows,
      fileRows: staged.rows,
      ignoredDerived: Object.keys(source.derived).filter((d) => staged.fileColumns[0].includes(d)),
      close: closeAll,
      // Rows ingest would refuse are left out (counted in badRows above).
      chunks: () => inChunks(path, skipRows, chunkRows, rowsWhere(`NOT (${refused})`)),
      suspects(keysOf) {
        const long = keysOf === null ? 'false' : keyCandidateSql(source, keysOf);
        return inChunks(path, skipRows, chunkRows, rowsWhere(`(${refused}) OR (${long})`));
      },
    };
  } catch (error) {
    closeAll();
    throw error;
  }
}

/** Groups records of file rows (`s`: 0-based row, `e`: event), in file order, into chunks of file rows. */
async function* inChunks(
  path: string,
  skipRows: number,
  chunkRows: number,
  blocks: AsyncIterable<readonly { s: number; e: Record<string, unknown> }[]>,
): AsyncGenerator<ReplayChunk> {
  let chunk = -1;
  let prev = -1;
  let rows: number[] = [];
  let events: Record<string, unknown>[] = [];
  for await (const block of blocks)
    for (const { s: seq, e } of block) {
      if (seq <= prev)
        throw new Error(`internal error: replay of ${path} read row ${seq + 1} after row ${prev + 1}`);
      prev = seq;
      const k = Math.floor((seq - skipRows) / chunkRows);
      if (k !== chunk && events.length > 0) {
        yield { index: chunk, rows, events };
        rows = [];
        events = [];
      }
      chunk = k;
      rows.push(seq + 1);
      events.push(e);
    }
  if (events.length > 0) yield { index: chunk, rows, events };
}

/**
 * SQL true for a staged row ingest (`validateEvent`) would refuse. Staging typed every value already, so
 * what remains is a null in the time or a required column and a number out of range: not finite, or for an
 * int or time not a whole number within ±(2^53 − 1).
 */
function refusedSql(source: SourceDef): string {
  const conds: string[] = [];
  for (const [name, def] of Object.entries(source.schema)) {
    const c = ident(name);
    const isTime = name === source.timeColumn;
    if (isTime || !def.nullable) conds.push(`${c} IS NULL`);
    if (isTime || def.type === 'timestamp' || def.type === 'int')
      conds.push(`NOT (abs(${c}) <= ${Number.MAX_SAFE_INTEGER} AND ${c} = trunc(${c}))`);
    else if (def.type === 'float') conds.push(`NOT isfinite(${c})`);
  }
  return conds.length === 0 ? 'false' : conds.map((x) => `coalesce(${x}, false)`).join(' OR ');
}

/**
 * SQL true for a staged row whose key might be too long for the LMDB store: `oversizeKeyIssues`'s fast path
 * failing, with UTF-8 bytes (never fewer than UTF-16 units) for string lengths. Those rows get its exact check.
 */
function keyCandidateSql(source: SourceDef, groupBys: readonly GroupByDef[]): string {
  const plan = keySizePlan(source, groupBys, groupById);
  if (plan === null || !Number.isFinite(plan.minRoom)) return 'false';
  const units = plan.columns.map((k) =>
    source.schema[k].type === 'string' ? `coalesce(strlen(${ident(k)}), 24)` : '24',
  );
  return `(${plan.columns.length} + ${units.join(' + ')}) * 3 > ${plan.minRoom}`;
}

export interface ReplayOptions {
  readonly log: EventLog;
  readonly source: SourceDef;
  readonly groupBys: readonly GroupByDef[];
  readonly file: string;
  readonly onBadRow: BadRowPolicy;
  /**
   * Append each chunk with an idempotency key derived from the file's real path and the chunk's range of file
   * rows (replay-chunk-keys.ts; the log checks the events are the same), so a replay run again appends
   * nothing, and check `fromRow` against the log. False: at-least-once, `fromRow` unchecked.
   */
  readonly dedupe: boolean;
  /** Refuse events whose entity key the LMDB store cannot hold (they would fail their worker's commits). */
  readonly checkLmdbKeys: boolean;
  readonly chunkRows?: number;
  /**
   * Replay the file from this 1-based row on (default 1), e.g. rows added to a file replayed before. With
   * dedupe, refused unless an earlier replay of the file in the log ended at row `fromRow - 1`, whose last
   * segment (replay-chunk-keys.ts) is sent again first: deduplicated, completed, or refused if it changed.
   */
  readonly fromRow?: number;
  /** Draw progress on stderr while checking and appending (the CLI: when stderr is a TTY). */
  readonly progress?: boolean;
}

export interface ReplayResult {
  /** Events this replay appended. */
  readonly appended: number;
  /**
   * Valid events an earlier replay of the file had appended (within the dedupe window): not appended again.
   * With dedupe and `fromRow`, those of the segment ending at row fromRow-1 too (sent again as a check).
   */
  readonly alreadyInLog: number;
  /** Rows skipped as bad (policy `skip`). */
  readonly skipped: number;
  /** The file rows this replay covered: `fromRow` to the file's last row (`lastRow < firstRow`: none). */
  readonly firstRow: number;
  readonly lastRow: number;
  /** Derived columns of the source the file has too: not read (the stream workers compute them). */
  readonly ignoredDerived: readonly string[];
}

/** The flag that turns dedupe off, named in errors. */
export const ALLOW_DUPLICATES_FLAG = '--allow-duplicates';

/**
 * Appends a replay file's events to the log (see `readReplayFile`), chunk by chunk through `ingestEvents`
 * (schema validation, all topics of the source). With `dedupe`, each chunk goes under a key naming the file
 * (a hash of its real path) and its rows (replay-chunk-keys.ts; rows skipped as bad or left out for their
 * key's size are only missing from its events, never shift the key): running the same replay again (after
 * it ended, failed or was interrupted, or the file grew) appends only what is not in the log yet, while
 * the log's dedupe window lasts (default 24 h); rows edited since fail their chunk with a conflict instead
 * of appending its events twice, and a `fromRow` that would leave rows out or append them again is
 * refused before anything is appended.
 *
 * @example
 * const r = await replayFile({ log, source: charges, groupBys, file: 'c.csv', onBadRow: 'fail', dedupe: true, checkLmdbKeys: true });
 * // { appended: 1000, alreadyInLog: 0, skipped: 0 }
 */
export async function replayFile(opts: ReplayOptions): Promise<ReplayResult> {
  const { log, source, file } = opts;
  if (opts.dedupe && log.idempotentAppends !== true)
    throw new Error(
      `the ${log.kind} event log cannot deduplicate appends, so replaying ${file} would append its events again each time it is run; nothing was appended. Replay into the embedded, Redis Streams or NATS log (--log embedded|redis|nats), or pass ${ALLOW_DUPLICATES_FLAG} to append without dedupe (a file replayed twice is then counted twice)`,
    );
  const origin = `file ${file}`;
  const fileId = createHash('sha256').update(realpathSync(file)).digest('hex').slice(0, 24);
  let appended = 0;
  let alreadyInLog = 0;
  let skipped = 0;
  const chunkRows = opts.chunkRows ?? REPLAY_CHUNK_ROWS;
  const fromRow = opts.fromRow ?? 1;
  /** The first row sent: `fromRow`, or with dedupe the first of the segment ending at row fromRow-1. */
  let start = fromRow;
  const ingest = async (
    segment: ReplaySegment,
    rows: readonly number[],
    events: readonly Record<string, unknown>[],
  ) => {
    const first = rows[0];
    // Keyed by the segment's fixed range of file rows, not its first kept row: a rerun after a skipped row
    // was fixed reuses the key (and conflicts, its events being other) instead of appending the chunk again.
    const key = segment.key;
    try {
      // Staged rows are typed and normalized (DuckDB values of the schema's types), those ingest would
      // refuse left out (`refusedSql`): checked.
      const batch = opened.staged ? new CheckedRows(source, events as readonly Row[]) : events;
      const r = await ingestEvents(log, source, opts.groupBys, batch, {
        origin,
        onBadRow: opts.onBadRow,
        firstRow: first,
        ...(key === undefined ? {} : { idempotencyKey: key }),
      });
      appended += r.appended;
      alreadyInLog += r.accepted - r.appended;
      skipped += r.skipped;
      return r.accepted;
    } catch (cause) {
      const last = Math.min(segment.last, opened.fileRows);
      throw replayError(cause, opts, start, segment.first, last, appended, alreadyInLog);
    }
  };
  const progress = opts.progress === true;
  if (progress) process.stderr.write(`\rreading ${file} …\x1b[K`);
  // With dedupe, from the chunk of row fromRow-1: the segment ending there is sent again (replay-chunk-keys.ts).
  const readFrom =
    opts.dedupe && fromRow > 1 ? Math.floor((fromRow - 2) / chunkRows) * chunkRows + 1 : fromRow;
  const opened = await openReplayFile(file, source, {
    onBadRow: opts.onBadRow,
    fromRow: readFrom,
    ...(opts.chunkRows === undefined ? {} : { chunkRows: opts.chunkRows }),
  });
  try {
    const plan = {
      ...opts,
      fileId,
      fromRow,
      lastRow: opened.fileRows,
      chunkRows,
      allowDuplicatesFlag: ALLOW_DUPLICATES_FLAG,
    };
    const segments = await planReplaySegments(plan);
    start = segments[0]?.first ?? fromRow;
    skipped += opened.badRows;
    // With 'fail', every event is checked before any is appended, so a bad one leaves the log as it was.
    const total = Math.max(0, opened.fileRows - readFrom + 1);
    if (opts.onBadRow === 'fail') {
      const bar = createProgress(total, progress);
      bar.phase(`checking ${file}`);
      try {
        await checkAll(opened, source, opts.checkLmdbKeys ? opts.groupBys : null, origin);
        bar.add(total);
      } finally {
        bar.done();
      }
    }
    const bar = createProgress(total, progress);
    bar.phase(`appending ${file}`);
    try {
      for await (const { segment, index, rows, events } of bySegment(opened.chunks(), segments)) {
        // A key too long for LMDB would fail its worker's every commit (serve/key-size-check.ts): such rows
        // are left out of the chunk's one append (with 'fail', checkAll has refused the file already).
        const tooLong =
          opts.checkLmdbKeys && opts.onBadRow === 'skip'
            ? oversizeKeyIssues(source, opts.groupBys, events, groupById, origin)
            : [];
        const bad = new Set(tooLong.map((i) => i.row));
        skipped += bad.size;
        let sent = 0;
        if (bad.size === 0) {
          if (events.length > 0) sent = await ingest(segment, rows, events);
        } else {
          const keep = [...events.keys()].filter((i) => !bad.has(i));
          if (keep.length > 0)
            sent = await ingest(
              segment,
              keep.map((i) => rows[i]),
              keep.map((i) => events[i]),
            );
        }
        // A segment the log did not hold that appended nothing claimed no key: an earlier replay may have
        // skipped it too and appended segments after it, which the plan must find (replay-chunk-keys.ts).
        if (sent === 0 && opts.dedupe && segment.held !== true && index + 1 < segments.length)
          segments.splice(index + 1, Infinity, ...(await planReplayRest(plan, segment.last + 1)));
        bar.add(events.length);
      }
    } finally {
      bar.done();
    }
  } finally {
    if (progress) process.stderr.write('\r\x1b[K');
    opened.close();
  }
  return {
    appended,
    alreadyInLog,
    skipped,
    firstRow: fromRow,
    lastRow: opened.fileRows,
    ignoredDerived: opened.ignoredDerived,
  };
}

/**
 * Throws `EventValidationError` (the first 20 issues, rows of the file) if any event would be refused, by
 * ingest or, with `keysOf` (the group-bys), for a key too long for the LMDB store.
 */
async function checkAll(
  opened: OpenReplayFile,
  source: SourceDef,
  keysOf: readonly GroupByDef[] | null,
  origin: string,
): Promise<void> {
  const issues: EventIssue[] = [];
  let bad = 0;
  for await (const { rows, events } of opened.suspects(keysOf)) {
    const badHere = new Set<number>();
    for (let i = 0; i < events.length; i++) {
      const r = validateEvent(source, events[i], rows[i], origin);
      if (r.issues === undefined) continue;
      badHere.add(i);
      for (const issue of r.issues) if (issues.length < 20) issues.push(issue);
    }
    if (keysOf !== null)
      for (const i of oversizeKeyIssues(source, keysOf, events, groupById, origin)) {
        if (badHere.has(i.row)) continue;
        badHere.add(i.row);
        if (issues.length < 20) issues.push({ ...i, row: rows[i.row] });
      }
    bad += badHere.size;
  }
  if (bad > 0) {
    const err = new EventValidationError(issues, bad);
    // Worded for a file, not an HTTP batch.
    err.message = err.message.replace(
      'fix these and resend to see them',
      'fix these in the file and replay it again to see them, or replay with --on-bad-row skip to skip and count such rows',
    );
    throw err;
  }
}

/** A chunk's failure, saying what earlier chunks did, the first row not appended and how to go on. */
function replayError(
  cause: unknown,
  { file, dedupe }: ReplayOptions,
  start: number,
  first: number,
  last: number,
  appended: number,
  alreadyInLog: number,
): Error {
  const message = cause instanceof Error ? cause.message : String(cause);
  const rows = `${rowsText(first, last)} of ${file}`;
  const conflict = cause instanceof IdempotencyConflictError;
  let text = message;
  if (conflict)
    text =
      `${rows} ${first === last ? 'was' : 'were'} appended by an earlier replay of this file (within the idempotency window) with other events, so the file has changed since: rows in them edited or removed (or rows added to a chunk a Tessera older than the --from-row checks appended). ` +
      `Row ${first} and the rows after it were not appended now. ` +
      `The log keeps the events appended before (it is append-only): replay the changed or added rows as a new file (for CSV the header line and \`tail -n +$((R+2)) ${file}\`, for JSONL \`tail -n +$((R+1)) ${file}\`, R the last row not to replay), ` +
      `or pass ${ALLOW_DUPLICATES_FLAG} to append them anyway (events appended before would then count twice). (${message})`;
  else if (cause instanceof IdempotencyCapacityError)
    text = `${message.replace(/\.?$/, '.')} Or pass ${ALLOW_DUPLICATES_FLAG} to replay without dedupe.`;
  const before =
    appended + alreadyInLog === 0
      ? ''
      : `\nThe ${first - 1 === start ? `row before (${start}) was` : `rows before (${start}-${first - 1}) were`} replayed: ${appended} event(s) appended, ${alreadyInLog} already in the log.` +
        (conflict
          ? ''
          : dedupe
            ? ' Running the same replay again skips them and appends only the rest.'
            : ` Without dedupe (${ALLOW_DUPLICATES_FLAG}), running it again appends them again.`);
  const err = new Error(text + before, { cause });
  err.name = cause instanceof Error ? cause.name : 'Error';
  return err;
}
