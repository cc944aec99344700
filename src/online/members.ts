import type { GroupByDef } from '../define/types.ts';
import { offsetName, uploadCutoffName, type MissingHistory } from './worker.ts';

/**
 * Which group-bys a topic partition's stream worker has applied events to ("members"), so a changed
 * group-by (a new store id, group-by-id.ts) is caught up on the log instead of starting at the partition's
 * committed offset (catch-up.ts).
 *
 * Offsets-map entries (store.ts layout 4), all ending in `/<partition>` so a Redis store homes them with the
 * partition's offset and one fenced commit may write them together:
 * - `members/<topic>/<p>`: JSON array of store ids, sorted. Every id in it has had every event of the
 *   partition below the committed offset `stream/<topic>/<p>` applied (or skipped by the worker's rules).
 *   Written before the worker applies anything with a changed list, never after: the worker does not
 *   apply events until its list equals the topic's ids.
 * - `catchup/<id>/stream/<topic>/<p>` (and `watermark/`, `counters/`, `commit/` under the same prefix): the
 *   progress of a catch-up worker for store id `<id>`: its events below that offset are in `<id>`'s tiles. A
 *   member dropped from the topic (its group-by removed or changed) gets its progress set to the partition's
 *   offset, in the commit that drops it, so re-adding it later (a rollback) catches up from there, never
 *   from 0 (that would count its events twice), unless `tessera prune` deleted its tiles with its progress.
 * - `logstart/<topic>/<p>`: epoch ms when the partition's first worker found its topic newer than the
 *   source's history: at `--partitions` > 1 a key list no group-by used before gets a topic of its own, which holds only the events ingested since, while other topics of the
 *   source have applied earlier ones (catch-up.ts invariant 6). Its group-bys lack those events unless an
 *   upload (`upload/<id>`) covered them; written with the partition's first members entry, never removed.
 * A store whose partition has an offset but no members entry predates members (legacy): every id of the
 * current topic is taken as a member, i.e. no group-by changed during the upgrade.
 */

/** The members entry of a topic partition. */
export const membersName = (topic: string, p: number) => `members/${topic}/${p}`;

/** The entry marking a topic partition whose log lacks the source's earlier events. */
export const logStartName = (topic: string, p: number) => `logstart/${topic}/${p}`;

/**
 * The group-bys of `groupBys` missing history on a topic partition: with its `logstart/` entry stored
 * (`logStart`), those whose store id has no upload cutoff in `saved`; null when none.
 */
export function missingHistoryOf(
  groupBys: readonly GroupByDef[],
  logStart: string | undefined,
  saved: Readonly<Record<string, string>>,
  idOf: (g: GroupByDef) => string,
): MissingHistory | null {
  if (logStart === undefined) return null;
  const names = groupBys.filter((g) => saved[uploadCutoffName(idOf(g))] === undefined).map((g) => g.name);
  return names.length === 0 ? null : { groupBys: names, since: Number(logStart) };
}

/** The state-name prefix of the catch-up worker of store id `id` (worker.ts `statePrefix`). */
export const catchUpPrefix = (id: string) => `catchup/${id}/`;

/** The offset name of the catch-up progress of store id `id` on a topic partition. */
export const catchUpOffsetName = (id: string, topic: string, p: number) =>
  catchUpPrefix(id) + offsetName(topic, p);

/** Parses a members entry; null when absent. */
export function parseMembers(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const ids: unknown = JSON.parse(value);
  if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string'))
    throw new Error(`members entry is not a JSON array of store ids: ${value.slice(0, 200)}`);
  return ids;
}

/** A members entry's value for `ids` (deduplicated, sorted: equal sets store equal strings). */
export const formatMembers = (ids: Iterable<string>): string => JSON.stringify([...new Set(ids)].sort());

/**
 * Where stream workers applied events to store id `id`, from all of the store's offsets: the topic
 * partitions (`topic/p`) listing it as a member, and those where a catch-up (or a retired member) applied
 * events to it (progress > 0).
 *
 * @example
 * streamedInto(await store.readOffsets(), groupById(cardStats)); // ['charges/0']
 */
export function streamedInto(offsets: Readonly<Record<string, string>>, id: string): string[] {
  const out = new Set<string>();
  for (const [name, value] of Object.entries(offsets)) {
    if (name.startsWith('members/')) {
      const members = parseMembers(value) ?? [];
      const partition = name.slice('members/'.length);
      // Members of a partition that applied nothing yet (offset 0 or absent) hold no streamed events.
      const [topic, p] = splitPartition(partition);
      const applied = Number(offsets[offsetName(topic, p)] ?? 0) > 0;
      if (applied && members.includes(id)) out.add(partition);
    } else if (name.startsWith(catchUpPrefix(id) + 'stream/') && Number(value) > 0)
      out.add(name.slice((catchUpPrefix(id) + 'stream/').length));
  }
  return [...out].sort();
}

/**
 * The partitions (`topic/p`) of `topics` that applied events (offset > 0) but record no members: a store
 * from before members (legacy), whose workers may have applied events to any store id of their topic.
 *
 * @example
 * unrecordedPartitions({ 'stream/charges/0': '120' }, ['charges']); // ['charges/0']
 */
export function unrecordedPartitions(
  offsets: Readonly<Record<string, string>>,
  topics: readonly string[],
): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(offsets)) {
    if (!name.startsWith('stream/') || !(Number(value) > 0)) continue;
    const [topic, p] = splitPartition(name.slice('stream/'.length));
    if (topics.includes(topic) && offsets[membersName(topic, p)] === undefined) out.push(`${topic}/${p}`);
  }
  return out.sort();
}

/** `topic/p` split at its last slash (topic names may hold dots and pluses, not slashes). */
function splitPartition(s: string): [string, number] {
  const at = s.lastIndexOf('/');
  return [s.slice(0, at), Number(s.slice(at + 1))];
}

/**
 * `prune/<id>`: a `tessera prune` of store id `<id>` started (prune.ts) and has not finished; the id's tiles
 * may be half deleted, so nothing may write or catch it up until a prune finishes it.
 */
export const pruneMarkerName = (id: string) => `prune/${id}`;

/** The error for a write to store ids an interrupted prune left half deleted (`pruneMarkerName`). */
export function halfPrunedError(what: string, ids: readonly string[]): Error {
  return new Error(
    `${what}: store id(s) ${ids.join(', ')} were being deleted by a tessera prune that did not finish, so their tiles are partly gone. ` +
      `Run tessera prune again to finish it (it finishes such ids even when the repo has them again), then start this again: the group-by then catches up from the start of the log.`,
  );
}
