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
 *    rows that are skipped (bad, key too long) are only missing from its events, never change its key.
 * 3. From row 1 a replay's segments follow on from each other, and a replay from row N > 1 appends only
 *    if the log holds a segment ending at row N-1 (`verifyStart`). So the segments of a file in the log
 *    cover rows 1..E without gap or overlap (while their keys last: the log's dedupe window), and a
 *    segment ending at N-1 means rows 1..N-1 were appended, by induction.
 * 4. From its first row on, a replay re-sends each segment the log holds under that segment's key (the log
 *    dedupes it if its events are the same, else refuses it: rows edited since), and appends the rows
 *    after the last one on the grid: a file that grew since the last replay gets only its new rows.
 * 5. Keys of older Tessera versions (`legacyKey`: `rows F-L` for rows F..F+n-1 counted from the replay's
 *    first row, L nominal even past the file's end) are still honoured: a segment whose own key is absent
 *    is re-sent under the legacy key of its rows where the log holds one, and a replay from row N > 1 whose
 *    legacy key the log holds repeats that older replay with its keys, unchecked (it could not tell).
 *
 * Finding the segment starting or ending at a row the log does not name (an earlier replay's last row, or
 * N-1) asks the log about each row of that chunk: at most n keys, in one `heldIdempotencyKeys` call.
 */

/** Rows `first`..`last` of the file (1-based data rows), appended as one batch under `key` (none: no dedupe). */
export interface ReplaySegment {
  readonly first: number;
  readonly last: number;
  readonly key?: string;
}

/** The key of the segment of rows `first`..`last` of the file with id `fileId` (invariant 2). */
export function segmentKey(fileId: string, first: number, last: number): string {
  return `tessera-replay ${fileId} rows ${first} to ${last}`;
}

/** The key an older Tessera gave the chunk of `n` rows from `first` (invariant 5). */
export function legacyKey(fileId: string, first: number, n: number): string {
  return `tessera-replay ${fileId} rows ${first}-${first + n - 1}`;
}

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

/**
 * The segments of rows `fromRow`..`lastRow` and their keys. With dedupe, refuses (before anything is
 * appended) a `fromRow` that does not follow on from a replay of the file in the log, naming the rows it
 * would leave out or append twice and the `--from-row` to pass. Without dedupe (the Kafka log cannot), the
 * rows from `fromRow` on in chunks, unkeyed and unchecked.
 *
 * @example
 * await planReplaySegments({ log, source, groupBys, file, fileId, fromRow: 7, lastRow: 8, chunkRows: 4, dedupe: true, allowDuplicatesFlag });
 * // [{ first: 7, last: 8, key: 'tessera-replay … rows 7 to 8' }] if a replay appended rows 1-6
 */
export async function planReplaySegments(opts: PlanOptions): Promise<ReplaySegment[]> {
  const { fileId, fromRow, lastRow, chunkRows: n } = opts;
  const end = (row: number) => Math.ceil(row / n) * n;
  const grid = (from: number, key: (first: number, last: number) => string | undefined) => {
    const out: ReplaySegment[] = [];
    for (let p = from; p <= lastRow; p = end(p) + 1) {
      const last = Math.min(end(p), lastRow);
      const k = key(p, last);
      out.push(k === undefined ? { first: p, last } : { first: p, last, key: k });
    }
    return out;
  };
  if (!opts.dedupe) return grid(fromRow, () => undefined);
  const held = keyLookup(opts);
  if (fromRow > 1) {
    if ((fromRow - 1) % n !== 0 && (await held([legacyKey(fileId, fromRow, n)]))[0]) {
      // An older Tessera's replay from this row: its chunks counted from here (invariant 5).
      const out: ReplaySegment[] = [];
      for (let p = fromRow; p <= lastRow; p += n)
        out.push({ first: p, last: Math.min(p + n - 1, lastRow), key: legacyKey(fileId, p, n) });
      return out;
    }
    await verifyStart(opts, held);
  }
  const out: ReplaySegment[] = [];
  let p = fromRow;
  // Invariant 4: the segments the log holds from `fromRow` on, then the grid.
  const planned = grid(fromRow, (first, last) => segmentKey(fileId, first, last));
  const chunkStarts = planned.filter((s) => (s.first - 1) % n === 0).map((s) => s.first);
  const has = new Map<string, boolean>();
  const ask = async (keys: string[]) => {
    const missing = keys.filter((k) => !has.has(k));
    const answers = missing.length === 0 ? [] : await held(missing);
    missing.forEach((k, i) => has.set(k, answers[i]));
    return keys.map((k) => has.get(k)!);
  };
  await ask([...planned.map((s) => s.key!), ...chunkStarts.map((c) => legacyKey(fileId, c, n))]);
  while (p <= lastRow) {
    const ce = end(p);
    const last = Math.min(ce, lastRow);
    const own = segmentKey(fileId, p, last);
    if ((await ask([own]))[0]) {
      out.push({ first: p, last, key: own });
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
      out.push({ first: p, last: x, key: segmentKey(fileId, p, x) });
      p = x + 1;
      continue;
    }
    if (after.length > 0) {
      out.push({ first: p, last, key: segmentKey(fileId, p, after[0]) });
      p = last + 1;
      continue;
    }
    if ((p - 1) % n === 0 && (await ask([legacyKey(fileId, p, n)]))[0]) {
      out.push({ first: p, last, key: legacyKey(fileId, p, n) });
      p = last + 1;
      continue;
    }
    break;
  }
  return [...out, ...grid(p, (first, last) => segmentKey(fileId, first, last))];
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
 * Throws unless the log holds a segment ending at row `fromRow - 1` (invariant 3), naming the rows a
 * replay from `fromRow` would leave out or append again and the row to start from instead.
 */
async function verifyStart(
  opts: PlanOptions,
  held: (keys: readonly string[]) => Promise<boolean[]>,
): Promise<void> {
  const { file, fileId, fromRow, lastRow, chunkRows: n } = opts;
  const what = `--from-row ${fromRow} of ${file}`;
  const nothing = 'nothing was appended';
  if (fromRow > lastRow + 1)
    throw new Error(
      `${what}: the file has ${lastRow} data row(s), so rows ${lastRow + 1}-${fromRow - 1} do not exist and could never be replayed; ${nothing}. Pass --from-row ${lastRow + 1} (or less)`,
    );
  const prev = fromRow - 1;
  const starts = Array.from({ length: prev - Math.floor((prev - 1) / n) * n }, (_, i) => prev - i);
  if ((await held(starts.map((a) => segmentKey(fileId, a, prev)))).some((x) => x)) return;
  const covered = await coveredThrough(opts, held);
  const unknown =
    `If they were appended longer ago than the log's dedupe window (${IDEMPOTENCY_WINDOW_ENV}, 24 h by default) or by a Tessera older than these checks, ` +
    `the log cannot tell: pass ${opts.allowDuplicatesFlag} to replay from row ${fromRow} unchecked (then nothing is deduplicated)`;
  if (covered < prev)
    throw new Error(
      `${what}: rows ${covered + 1}-${prev} of the file are not in the log (no replay of this file appended them within the dedupe window), so starting at row ${fromRow} would leave them out; ${nothing}. ` +
        (covered === 0
          ? `Replay the file without --from-row to append them too. `
          : `Rows 1-${covered} are in the log: pass --from-row ${covered + 1} to append the rest. `) +
        unknown,
    );
  throw new Error(
    `${what}: rows ${fromRow}-${Math.min(covered, lastRow)} of the file were appended by an earlier replay (the log holds rows 1-${covered} of it), so starting at row ${fromRow} would append them again; ${nothing}. ` +
      `Pass --from-row ${covered + 1} to append the rows after them, or replay without --from-row: rows in the log are then deduplicated`,
  );
}

/**
 * The last row of the segments the log holds from row 1 on, followed one after the other (0: none): per
 * chunk one key when a segment fills it, else each row of the chunk as a possible last row.
 */
async function coveredThrough(
  opts: PlanOptions,
  held: (keys: readonly string[]) => Promise<boolean[]>,
): Promise<number> {
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
    if (found.length === 0) return p - 1;
    p = found[found.length - 1] + 1;
  }
}

/**
 * Regroups a replay's events (any grouping, in file order, `rows` their 1-based file rows) by the segments
 * of `planReplaySegments`: one group per segment with events.
 */
export async function* bySegment<E>(
  chunks: AsyncIterable<{ readonly rows: readonly number[]; readonly events: readonly E[] }>,
  segments: readonly ReplaySegment[],
): AsyncGenerator<{ segment: ReplaySegment; rows: number[]; events: E[] }> {
  let i = 0;
  let rows: number[] = [];
  let events: E[] = [];
  for await (const chunk of chunks)
    for (let j = 0; j < chunk.rows.length; j++) {
      const row = chunk.rows[j];
      while (i < segments.length && row > segments[i].last) {
        if (rows.length > 0) yield { segment: segments[i], rows, events };
        rows = [];
        events = [];
        i++;
      }
      if (i === segments.length || row < segments[i].first)
        throw new Error(`internal error: replay row ${row} is in no planned segment`);
      rows.push(row);
      events.push(chunk.events[j]);
    }
  if (rows.length > 0) yield { segment: segments[i], rows, events };
}
