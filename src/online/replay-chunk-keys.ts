import type { GroupByDef, SourceDef } from '../define/types.ts';
import type { EventLog } from './log/event-log.ts';
import { IDEMPOTENCY_WINDOW_ENV } from './log/idempotency.ts';
import { streamTopics } from './topics.ts';

/**
 * Which file rows a replay appends under which idempotency key (replay-file.ts), so that `--from-row N`
 * can neither leave rows out of the log nor append them twice.
 *
 * 1. Rows are cut on a grid fixed by the chunk size n alone: chunk c holds rows c*n+1 .. (c+1)*n, whatever
 *    the replay's first row, so any two replays of a file agree on where chunks end.
 * 2. A replay appends segments: rows first..last of one chunk, keyed `tessera-replay <file> rows F to L`
 *    (`segmentKey`) by the rows they cover, L being the chunk's end or the file's last row. A segment's
 *    rows that are skipped (bad, key too long) are only missing from its events, never change its key; a
 *    segment whose rows are all skipped appends nothing, so the log holds no key for it.
 * 3. From row 1 a replay's segments follow on from each other, and a replay from row N > 1 appends only
 *    if the log holds a segment ending at row N-1 (`verifyStart`), which it sends again under its key
 *    first: deduplicated if its events are in the log, else completed (a log whose key says only that the
 *    batch was sent: NATS, Redis Cluster), refused if the rows changed. So the segments of a file in the
 *    log cover rows 1..E one after the other, bar chunks that appended nothing (while their keys last: the
 *    log's dedupe window).
 * 4. From its first row on, a replay re-sends each segment the log holds under that segment's key (the log
 *    dedupes it if its events are the same, else refuses it: rows edited since), and appends the other
 *    rows on the grid: a file that grew since the last replay gets only its new rows. Where a chunk holds no
 *    segment the plan goes on on the grid (`planReplaySegments`); when such a chunk then appends nothing
 *    (all its rows skipped, as maybe in the replay that wrote the log), the rest is planned again from the
 *    log (`planReplayRest`), so segments of a later chunk are found and re-sent, not appended again under
 *    another key. Left open: a whole chunk skipped by an earlier replay and fixed since is appended now and
 *    the plan goes on on the grid: a segment the earlier replay appended in a later chunk ending before the
 *    file's last row is then appended again (finding it would cost a lookup per row of every chunk).
 * 5. Keys of older Tessera versions (`legacyKey`: `rows F-L` for rows F..F+n-1 counted from the replay's
 *    first row, L nominal even past the file's end) are still honoured: a segment whose own key is absent
 *    is re-sent under the legacy key of its rows where the log holds one, and a replay from row N > 1 whose
 *    legacy key the log holds repeats that older replay with its keys, unchecked (it could not tell).
 *
 * Finding the segment starting or ending at a row the log does not name (an earlier replay's last row, or
 * N-1) asks the log about each row of that chunk: at most n keys, in one `heldIdempotencyKeys` call.
 *
 * Not closed: two replays of one file at once, the file growing between their plans. Each plans before it
 * appends, and a segment's key names the file's last row, so both append the rows after the last one in
 * the log, under different keys (`rows F to L` and `rows F to L'`): they count twice. Run one replay of a
 * file at a time.
 */

/** Rows `first`..`last` of the file (1-based data rows), appended as one batch under `key` (none: no dedupe). */
export interface ReplaySegment {
  readonly first: number;
  readonly last: number;
  readonly key?: string;
  /** The log held `key` when planned (a re-send); else rows the plan found no segment of in the log. */
  readonly held?: boolean;
}

/** The key of the segment of rows `first`..`last` of the file with id `fileId` (invariant 2). */
export function segmentKey(fileId: string, first: number, last: number): string {
  return `tessera-replay ${fileId} rows ${first} to ${last}`;
}

/** The key an older Tessera gave the chunk of `n` rows from `first` (invariant 5). */
export function legacyKey(fileId: string, first: number, n: number): string {
  return `tessera-replay ${fileId} rows ${first}-${first + n - 1}`;
}

/** "row 3" or "rows 3-5", for messages. */
export const rowsText = (a: number, b: number) => (a === b ? `row ${a}` : `rows ${a}-${b}`);

export interface PlanOptions {
  readonly log: EventLog;
  readonly source: SourceDef;
  readonly groupBys: readonly GroupByDef[];
  /** The file as named to the replay, for messages. */
  readonly file: string;
  readonly fileId: string;
  readonly fromRow: number;
  /** The file's last data row (its row count). */
  readonly lastRow: number;
  readonly chunkRows: number;
  readonly dedupe: boolean;
  /** The flag that turns dedupe off, named in messages. */
  readonly allowDuplicatesFlag: string;
}

type Held = (keys: readonly string[]) => Promise<boolean[]>;

/** Rows `from`..`lastRow` on the grid (invariant 1), keyed by `key`. */
function grid(
  opts: PlanOptions,
  from: number,
  key?: (first: number, last: number) => string,
): ReplaySegment[] {
  const { lastRow, chunkRows: n } = opts;
  const out: ReplaySegment[] = [];
  for (let p = from; p <= lastRow; p = Math.ceil(p / n) * n + 1) {
    const last = Math.min(Math.ceil(p / n) * n, lastRow);
    out.push(key === undefined ? { first: p, last } : { first: p, last, key: key(p, last) });
  }
  return out;
}

/**
 * The segments of rows `fromRow`..`lastRow` and their keys. With dedupe, refuses (before anything is
 * appended) a `fromRow` that does not follow on from a replay of the file in the log, naming the rows it
 * would leave out or append twice and the `--from-row` to pass; else the plan starts with the segment
 * ending at row `fromRow - 1`, to be sent again (invariant 3). Without dedupe (the Kafka log cannot), the
 * rows from `fromRow` on in chunks, unkeyed and unchecked.
 *
 * @example
 * await planReplaySegments({ log, source, groupBys, file, fileId, fromRow: 7, lastRow: 8, chunkRows: 4, dedupe: true, allowDuplicatesFlag });
 * // [{ first: 5, last: 6, key: '… rows 5 to 6', held: true }, { first: 7, last: 8, key: '… rows 7 to 8' }] if a replay appended rows 1-6
 */
export async function planReplaySegments(opts: PlanOptions): Promise<ReplaySegment[]> {
  const { fileId, fromRow, lastRow, chunkRows: n } = opts;
  if (!opts.dedupe) return grid(opts, fromRow);
  const held = keyLookup(opts);
  if (fromRow === 1) return planFrom(opts, held, 1);
  if ((fromRow - 1) % n !== 0 && (await held([legacyKey(fileId, fromRow, n)]))[0]) {
    // An older Tessera's replay from this row: its chunks counted from here (invariant 5).
    const out: ReplaySegment[] = [];
    for (let p = fromRow; p <= lastRow; p += n)
      out.push({ first: p, last: Math.min(p + n - 1, lastRow), key: legacyKey(fileId, p, n), held: true });
    return out;
  }
  const start = await verifyStart(opts, held);
  const prev = fromRow - 1;
  return [
    { first: start, last: prev, key: segmentKey(fileId, start, prev), held: true },
    ...(await planFrom(opts, held, fromRow)),
  ];
}

/**
 * The segments from row `row` on (a chunk's first row), planned again from the log after a segment the
 * plan did not find in the log appended nothing (invariant 4).
 */
export function planReplayRest(opts: PlanOptions, row: number): Promise<ReplaySegment[]> {
  return planFrom(opts, keyLookup(opts), row);
}

/** Invariant 4: the segments the log holds from row `from` on, one after the other, then the grid. */
async function planFrom(opts: PlanOptions, held: Held, from: number): Promise<ReplaySegment[]> {
  const { fileId, lastRow, chunkRows: n } = opts;
  const end = (row: number) => Math.ceil(row / n) * n;
  const out: ReplaySegment[] = [];
  const planned = grid(opts, from, (first, last) => segmentKey(fileId, first, last));
  const chunkStarts = planned.filter((s) => (s.first - 1) % n === 0).map((s) => s.first);
  const has = new Map<string, boolean>();
  const ask = async (keys: string[]) => {
    const missing = keys.filter((k) => !has.has(k));
    const answers = missing.length === 0 ? [] : await held(missing);
    missing.forEach((k, i) => has.set(k, answers[i]));
    return keys.map((k) => has.get(k)!);
  };
  await ask([...planned.map((s) => s.key!), ...chunkStarts.map((c) => legacyKey(fileId, c, n))]);
  let p = from;
  while (p <= lastRow) {
    const ce = end(p);
    const last = Math.min(ce, lastRow);
    const own = segmentKey(fileId, p, last);
    if ((await ask([own]))[0]) {
      out.push({ first: p, last, key: own, held: true });
      p = last + 1;
      continue;
    }
    // An older Tessera's chunk: it wrote no segment keys in it, so none is looked for (n lookups).
    if ((p - 1) % n === 0 && (await ask([legacyKey(fileId, p, n)]))[0]) {
      out.push({ first: p, last, key: legacyKey(fileId, p, n), held: true });
      p = last + 1;
      continue;
    }
    // An earlier replay that ended elsewhere in this chunk: before the file grew (re-sent, then go on after
    // it), or after (the file lost rows since: re-sent under its key, which the log refuses).
    const ends: number[] = [];
    for (let x = p; x <= ce; x++) if (x !== last) ends.push(x);
    const answers = await ask(ends.map((x) => segmentKey(fileId, p, x)));
    const before = ends.filter((x, i) => answers[i] && x < last);
    const after = ends.filter((x, i) => answers[i] && x > last);
    if (before.length > 0) {
      const x = before[before.length - 1];
      out.push({ first: p, last: x, key: segmentKey(fileId, p, x), held: true });
      p = x + 1;
      continue;
    }
    if (after.length > 0) {
      out.push({ first: p, last, key: segmentKey(fileId, p, after[0]), held: true });
      p = last + 1;
      continue;
    }
    // No segment here: the grid from here on, planned again if this chunk appends nothing (invariant 4).
    break;
  }
  return [...out, ...grid(opts, p, (first, last) => segmentKey(fileId, first, last))];
}

/** `heldIdempotencyKeys` for the source's topics, failing if the log lacks it. */
function keyLookup(opts: PlanOptions): (keys: readonly string[]) => Promise<boolean[]> {
  const { log } = opts;
  const lookup = log.heldIdempotencyKeys?.bind(log);
  if (lookup === undefined)
    throw new Error(
      `the ${log.kind} event log cannot say which idempotency keys it holds, so a replay of ${opts.file} cannot check which rows an earlier replay appended; nothing was appended. Pass ${opts.allowDuplicatesFlag} to replay without dedupe`,
    );
  const topics = streamTopics(opts.source, opts.groupBys, log.partitions).map((t) => t.name);
  return (keys) => lookup(topics, keys);
}

/**
 * The first row of the segment the log holds ending at row `fromRow - 1` (invariant 3); throws if there is
 * none, naming the rows a replay from `fromRow` would leave out or append again and the row to start from.
 */
async function verifyStart(opts: PlanOptions, held: Held): Promise<number> {
  const { file, fileId, fromRow, lastRow, chunkRows: n } = opts;
  const what = `--from-row ${fromRow} of ${file}`;
  const nothing = 'nothing was appended';
  const prev = fromRow - 1;
  if (fromRow <= lastRow + 1) {
    const starts = Array.from({ length: prev - Math.floor((prev - 1) / n) * n }, (_, i) => prev - i);
    const found = (await held(starts.map((a) => segmentKey(fileId, a, prev)))).indexOf(true);
    if (found >= 0) return starts[found];
  }
  const { covered, legacyFrom } = await coveredThrough(opts, held);
  if (covered > lastRow)
    throw new Error(
      `${what}: the log holds ${rowsText(1, covered)} of this file (appended by earlier replays within the dedupe window), more than the ${lastRow} data row(s) it has now, so rows were removed from it or it was replaced since; ${nothing}. ` +
        `The log keeps the events of those rows (it is append-only). To append rows of the file as it is now, replay them as a new file (a copy under another path: for CSV the header line and the rows), ` +
        `or pass ${opts.allowDuplicatesFlag} to replay from row ${fromRow} unchecked (nothing is then deduplicated)`,
    );
  if (fromRow > lastRow + 1)
    throw new Error(
      `${what}: the file has ${lastRow} data row(s), so ${rowsText(lastRow + 1, prev)} do${lastRow + 1 === prev ? 'es' : ''} not exist and could never be replayed; ${nothing}. Pass --from-row ${lastRow + 1} (or less)`,
    );
  const unchecked = `pass ${opts.allowDuplicatesFlag} to replay from row ${fromRow} unchecked (then nothing is deduplicated)`;
  if (covered < prev && legacyFrom !== undefined)
    throw new Error(
      `${what}: the log holds ${covered === 0 ? '' : `${rowsText(1, covered)} of this file, then `}a replay of it by an older Tessera from row ${legacyFrom} on, whose keys do not say which row it ended at, so whether ${rowsText(legacyFrom, prev)} ${legacyFrom === prev ? 'is' : 'are'} in the log cannot be checked; ${nothing}. ` +
        `Replay the file without --from-row (chunks in the log are then deduplicated under the older keys; a chunk that grew since is refused), or ${unchecked}`,
    );
  if (covered < prev)
    throw new Error(
      `${what}: no replay of this file in the log (within the dedupe window) appended ${rowsText(covered + 1, prev)}: none read them, or one skipped them as bad (--on-bad-row skip: a chunk of ${n} rows all skipped leaves no trace in the log), so starting at row ${fromRow} could leave them out; ${nothing}. ` +
        (covered === 0
          ? `Replay the file without --from-row: rows in the log are deduplicated, the others appended. `
          : `${covered === 1 ? 'Row 1 is' : `Rows 1-${covered} are`} in the log: pass --from-row ${covered + 1} to append the rest (rows in the log after them are deduplicated). `) +
        `If they were appended longer ago than the log's dedupe window (${IDEMPOTENCY_WINDOW_ENV}, 24 h by default) or by a Tessera older than these checks, the log cannot tell: ${unchecked}`,
    );
  throw new Error(
    `${what}: ${rowsText(fromRow, covered)} of the file ${fromRow === covered ? 'was' : 'were'} appended by an earlier replay (the log holds ${rowsText(1, covered)} of it), so starting at row ${fromRow} would append ${fromRow === covered ? 'it' : 'them'} again; ${nothing}. ` +
      `Pass --from-row ${covered + 1} to append the rows after ${fromRow === covered ? 'it' : 'them'}, or replay without --from-row: rows in the log are then deduplicated`,
  );
}

/**
 * The last row of the segments the log holds from row 1 on, followed one after the other (0: none): per
 * chunk one key when a segment fills it, else each row of the chunk as a possible last row. `legacyFrom`:
 * the row after them starts a chunk an older Tessera's replay appended (its end unknown).
 */
async function coveredThrough(
  opts: PlanOptions,
  held: Held,
): Promise<{ covered: number; legacyFrom?: number }> {
  const { fileId, chunkRows: n } = opts;
  let p = 1;
  for (;;) {
    const ce = Math.ceil(p / n) * n;
    if ((await held([segmentKey(fileId, p, ce)]))[0]) {
      p = ce + 1;
      continue;
    }
    const ends = Array.from({ length: ce - p }, (_, i) => p + i);
    const answers = await held(ends.map((x) => segmentKey(fileId, p, x)));
    const found = ends.filter((_, i) => answers[i]);
    if (found.length > 0) {
      p = found[found.length - 1] + 1;
      continue;
    }
    if ((p - 1) % n === 0 && (await held([legacyKey(fileId, p, n)]))[0])
      return { covered: p - 1, legacyFrom: p };
    return { covered: p - 1 };
  }
}

/**
 * Regroups a replay's events (any grouping, in file order, `rows` their 1-based file rows) by the segments
 * of `planReplaySegments`: one group per segment, with its index, also a segment with no events (all its
 * rows skipped) before the last one with events. Rows before the first segment are dropped (read for a
 * re-sent segment's chunk). `segments` is read as it goes: the consumer may replace the segments after
 * the one just yielded (`planReplayRest`).
 */
export async function* bySegment<E>(
  chunks: AsyncIterable<{ readonly rows: readonly number[]; readonly events: readonly E[] }>,
  segments: readonly ReplaySegment[],
): AsyncGenerator<{ segment: ReplaySegment; index: number; rows: number[]; events: E[] }> {
  let i = 0;
  let rows: number[] = [];
  let events: E[] = [];
  for await (const chunk of chunks)
    for (let j = 0; j < chunk.rows.length; j++) {
      const row = chunk.rows[j];
      if (segments.length > 0 && row < segments[0].first) continue;
      while (i < segments.length && row > segments[i].last) {
        yield { segment: segments[i], index: i, rows, events };
        rows = [];
        events = [];
        i++;
      }
      if (i === segments.length || row < segments[i].first)
        throw new Error(`internal error: replay row ${row} is in no planned segment`);
      rows.push(row);
      events.push(chunk.events[j]);
    }
  if (rows.length > 0) yield { segment: segments[i], index: i, rows, events };
}
