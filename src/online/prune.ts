import { parseMembers, pruneMarkerName } from './members.ts';
import type { OnlineStore } from './store.ts';

/**
 * Pruning retired group-by versions: a changed definition is a new store id (group-by-id.ts), and the old
 * id's entities and state stay in the store until `tessera prune` deletes them.
 *
 * A store id is retired when no group-by of the repo has it. What it leaves:
 * - its entities (tiles, runs, exact-from markers), counted as `OnlineStore.stats` counts them;
 * - its upload cutoff `upload/<id>` and catch-up state `catchup/<id>/...` (members.ts): the retired id's
 *   progress, set to the partition's offset when it left its topic, so that re-adding it catches up from
 *   there on top of its tiles. Deleted together with the tiles, a re-add catches up from 0 into an empty id,
 *   which counts every event once.
 * Usage counters (`usage/gb/<id>/...`) are cost history and stay.
 *
 * Safety while workers run: only ids not in the repo are touched, and an id that a members entry still
 * lists (`members/<topic>/<p>`: a worker running its definition, e.g. an older deployment not yet stopped,
 * or a new one still catching up, which keeps retired ids listed until it joins) is refused. State is
 * deleted before entities: a catch-up worker of the id that still runs is fenced by its next commit, which
 * expects its progress (an unfenced writer, an upload of the old definition, is not: see `pruneStoreIds`'
 * final check).
 */

/** A store id present in the store that no group-by of the repo has. */
export interface RetiredId {
  readonly id: string;
  /** As `OnlineStore.stats` counts them (entities holding tiles or run bytes). */
  readonly entities: number;
  readonly tiles: number;
  readonly bytes: number;
  /** Its offsets entries: `upload/<id>`, `catchup/<id>/...`. */
  readonly state: readonly string[];
  /** Topic partitions (`topic/p`) whose members entry still lists it: a worker writes it (refused). */
  readonly writers: readonly string[];
}

/** The store id an offsets entry belongs to (`upload/<id>`, `catchup/<id>/...`, `prune/<id>`), else null. */
function stateOwner(name: string): string | null {
  if (name.startsWith('upload/')) return name.slice('upload/'.length);
  if (name.startsWith('prune/')) return name.slice('prune/'.length);
  if (!name.startsWith('catchup/')) return null;
  const end = name.indexOf('/', 'catchup/'.length);
  return end < 0 ? null : name.slice('catchup/'.length, end);
}

/** Per store id, the topic partitions (`topic/p`) whose members entry lists it. */
function membersById(offsets: Readonly<Record<string, string>>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, value] of Object.entries(offsets)) {
    if (!name.startsWith('members/')) continue;
    for (const id of parseMembers(value) ?? [])
      out.set(id, [...(out.get(id) ?? []), name.slice('members/'.length)]);
  }
  return out;
}

/**
 * The store ids with entities or state in `store` that are not in `keep` (the repo's, `groupById` of each
 * group-by), sorted by id.
 *
 * @example
 * const retired = await findRetired(store, new Set(repo.groupBys.map(groupById)));
 */
export async function findRetired(store: OnlineStore, keep: ReadonlySet<string>): Promise<RetiredId[]> {
  const [stats, offsets] = await Promise.all([store.stats(), store.readOffsets()]);
  // An id a prune started on is listed even when the repo has it again: its tiles are partly gone.
  const halfPruned = new Set(
    Object.keys(offsets)
      .filter((n) => n.startsWith('prune/'))
      .map((n) => stateOwner(n)!),
  );
  const listed = (id: string) => !keep.has(id) || halfPruned.has(id);
  const state = new Map<string, string[]>();
  for (const name of Object.keys(offsets)) {
    const id = stateOwner(name);
    if (id !== null && listed(id)) state.set(id, [...(state.get(id) ?? []), name]);
  }
  const members = membersById(offsets);
  const ids = new Set([...Object.keys(stats.byGroupBy).filter(listed), ...state.keys()]);
  return [...ids].sort().map((id) => {
    const s = stats.byGroupBy[id] ?? { entities: 0, tiles: 0, bytes: 0 };
    return { id, ...s, state: (state.get(id) ?? []).sort(), writers: members.get(id) ?? [] };
  });
}

/** The error for store ids that members entries still list (`RetiredId.writers`). */
export function inUseError(retired: readonly Pick<RetiredId, 'id' | 'writers'>[]): Error {
  const list = retired.map((r) => `${r.id} (members of ${r.writers.join(', ')})`).join('; ');
  return new Error(
    `store id(s) still written by a stream worker: ${list}. A process running their definitions (an older deployment) is still up, or a new deployment is still catching up its changed group-bys (it keeps the old ids listed until it joins). ` +
      `Stop the old-version process (or wait for the catch-up to finish), then run tessera prune again; nothing was deleted.`,
  );
}

/**
 * Deletes the entities and state of `ids` (retired ids, `findRetired`): refuses (deleting nothing) when a
 * members entry lists one, then deletes their state, then their entities in one scan (`onProgress` with
 * the entities deleted so far), then checks that no worker wrote them meanwhile. Returns the entities
 * deleted per id and the state entries deleted. Interrupted, it leaves the ids listed by `findRetired`
 * (entities, or state) and marked `prune/<id>`, which workers, catch-ups and uploads refuse: run it again.
 */
export async function pruneStoreIds(
  store: OnlineStore,
  ids: readonly string[],
  onProgress?: (deleted: number) => void,
): Promise<{ readonly entities: Record<string, number>; readonly state: readonly string[] }> {
  const wanted = new Set(ids);
  const stateOf = (offsets: Readonly<Record<string, string>>) =>
    Object.keys(offsets).filter((n) => wanted.has(stateOwner(n) ?? ''));
  const writers = (offsets: Readonly<Record<string, string>>) => {
    const members = membersById(offsets);
    return ids.filter((id) => members.has(id)).map((id) => ({ id, writers: members.get(id)! }));
  };
  // Read again here, not taken from the listing: a worker may have started since.
  const before = await store.readOffsets();
  const busy = writers(before);
  if (busy.length > 0) throw inUseError(busy);
  const markers = ids.map(pruneMarkerName);
  const state = stateOf(before).filter((n) => !markers.includes(n));
  // Marked first, unmarked last: until then workers, catch-ups and uploads refuse the ids (members.ts
  // `halfPrunedError`), so an interrupted prune is finished by the next one, never caught up on or written
  // to (a re-added id would otherwise catch up from 0 on top of the tiles not yet deleted).
  await store.commit({ tiles: [], offsets: Object.fromEntries(markers.map((m) => [m, String(Date.now())])) });
  await store.deleteOffsets(state);
  const entities = await store.deleteGroupBys(ids, onProgress);
  const after = await store.readOffsets();
  const back = [
    ...writers(after).map((w) => w.id),
    ...stateOf(after)
      .filter((n) => !markers.includes(n))
      .map((n) => stateOwner(n)!),
  ];
  if (back.length > 0)
    throw new Error(
      `store id(s) ${[...new Set(back)].join(', ')} were written while prune deleted them (a worker or upload running their definitions is up): their remaining tiles are incomplete. ` +
        `Stop every process running those definitions, then run tessera prune again.`,
    );
  await store.deleteOffsets(markers);
  return { entities, state };
}
