import { createGroupAggregator, type GroupAggregator } from '../aggregate/group-aggregator.ts';
import { allWindows, windowGroups, type WindowGroup } from '../aggregate/window.ts';
import { deepFreeze } from '../define/deep-freeze.ts';
import type { GroupByDef, WindowDef } from '../define/types.ts';
import { columnsExactFrom, markerCount } from './exact-from.ts';
import type { OnlineStore, StoredTile, TileRequest } from './store.ts';
import { StoredWindowReader } from './stored-windows.ts';
import { TileColumns } from './tile-pack.ts';

/** One group-by to fetch (by store id, see group-by-id.ts) for some entity keys (entity-key.ts). */
export interface FetchGroupRequest {
  readonly id: string;
  readonly groupBy: GroupByDef;
  readonly keys: readonly string[];
}

/**
 * Finalized feature values of one `(group-by, key)`: `values[aggregation][window]` in definition order.
 * `missing_key` means the entity has no tiles; values are then the empty-window values (DESIGN §1).
 * `inexact` means `t` is before the entity's exact-from time (exact-from.ts): tiles older than that were
 * compacted away, so no exact answer exists online; values are then all null (use the backfill).
 */
export interface GroupValues {
  readonly status: 'ok' | 'missing_key' | 'inexact';
  readonly values: readonly (readonly unknown[])[];
}

/** Work counters, for tests of request-time dedupe and for metrics. */
export interface FetchCounters {
  /** Store round trips (`readTiles` calls). */
  storeReads: number;
  /** `(group-by, key)` pairs read from the store. */
  entitiesRead: number;
  /** Stored tiles read for window merges (each decoded at most once, and only when a window covers it). */
  tilesDecoded: number;
}

interface Compiled {
  readonly agg: GroupAggregator;
  readonly windows: readonly WindowDef[];
  readonly groups: readonly WindowGroup[];
  /** Deeply frozen: shared by every response that needs them (a mutation must not leak into the next). */
  readonly empty: readonly (readonly unknown[])[];
  readonly nulls: readonly (readonly unknown[])[];
  readonly reader: StoredWindowReader;
  /** Number of windows per aggregation (the values layout). */
  readonly shape: Int32Array;
}

const compiledCache = new WeakMap<GroupByDef, Compiled>();

/** @internal The aggregator, windows and empty values of a group-by, built once per definition object. */
export function compileGroupBy(groupBy: GroupByDef): Compiled {
  let c = compiledCache.get(groupBy);
  if (c === undefined) {
    const agg = createGroupAggregator(groupBy);
    const empty = deepFreeze(groupBy.aggregations.map((a, i) => a.windows.map(() => agg.emptyValue(i))));
    const nulls = deepFreeze(groupBy.aggregations.map((a) => a.windows.map(() => null)));
    const windows = allWindows(groupBy);
    const groups = windowGroups(groupBy);
    const shape = Int32Array.from(groupBy.aggregations, (a) => a.windows.length);
    c = { agg, windows, groups, empty, nulls, reader: new StoredWindowReader(agg, windows, groups), shape };
    compiledCache.set(groupBy, c);
  }
  return c;
}

/** Empty-window values of a group-by (status `missing_key`), e.g. for rows whose key is null; frozen. */
export function emptyGroupValues(groupBy: GroupByDef): GroupValues {
  return { status: 'missing_key', values: compileGroupBy(groupBy).empty };
}

/**
 * Computes every window of a group-by at time `t` from one entity's stored tiles (each decoded at most
 * once, see stored-windows.ts). Before the entity's exact-from time the status is `inexact` and every
 * value null. `missing_key` and `inexact` values are shared and frozen; `ok` values are fresh.
 *
 * @example
 * const [tiles] = await store.readTiles([{ groupBy: id, key: 'card_1' }]);
 * valuesFromTiles(cardStats, tiles, Date.now()).values[0][0]; // first aggregation, first window
 */
export function valuesFromTiles(
  groupBy: GroupByDef,
  stored: readonly StoredTile[],
  t: number,
  counters?: FetchCounters,
): GroupValues {
  return valuesFromColumns(groupBy, scratch.fromTiles(stored), t, counters);
}

/** Reused by `valuesFromTiles` (synchronous, so one call uses it at a time). */
const scratch = new TileColumns();

/** `valuesFromTiles` of an entity read as columns (tile-pack.ts; `OnlineStore.readEntities`). */
export function valuesFromColumns(
  groupBy: GroupByDef,
  stored: TileColumns,
  t: number,
  counters?: FetchCounters,
): GroupValues {
  const c = compileGroupBy(groupBy);
  if (t < columnsExactFrom(stored)) return { status: 'inexact', values: c.nulls };
  const first = markerCount(stored);
  if (stored.length === first) return { status: 'missing_key', values: c.empty };
  const irs = c.reader.windows(stored, first, t);
  if (counters) counters.tilesDecoded += stored.length - first;
  const { agg, groups, shape } = c;
  const values: unknown[][] = new Array(shape.length);
  for (let a = 0; a < shape.length; a++) values[a] = new Array(shape[a]!);
  for (let g = 0; g < groups.length; g++) {
    const list = groups[g]!.aggregations;
    for (let k = 0; k < list.length; k++) {
      const { aggregationIndex, windowIndex } = list[k]!;
      values[aggregationIndex]![windowIndex] = agg.finalize(irs[g]!, aggregationIndex);
    }
  }
  return { status: 'ok', values };
}

/**
 * The online fetch primitive: reads every `(group-by, key)` of a request in ONE store round trip, decodes
 * each distinct pair once (even when several requests or keys repeat it) and finalizes all its windows at
 * `t`. Result `[g][k]` belongs to `groups[g].keys[k]`. Serving (src/serve) plans requests on top of this.
 * Stores with `readEntities` (LMDB) are read in place: no copy of a value, no object per stored tile.
 *
 * @example
 * const fetchGroups = createFetchGroupBys(store);
 * const [[card]] = await fetchGroups([{ id: groupById(cardStats), groupBy: cardStats, keys: ['card_1'] }], Date.now());
 * card.status; // 'ok' | 'missing_key' | 'inexact'
 */
export function createFetchGroupBys(store: OnlineStore, counters?: FetchCounters) {
  const columns = new TileColumns();
  return async function fetchGroupBys(
    groups: readonly FetchGroupRequest[],
    t: number,
  ): Promise<GroupValues[][]> {
    const requests: TileRequest[] = [];
    // defs[i]: the definition request i is computed for. Equal ids are equal computations, but window order
    // (hence the values layout) follows each definition object, so another object with the same id gets
    // its own values from the same read (`more`).
    const defs: GroupByDef[] = [];
    let more: Map<number, GroupByDef[]> | null = null;
    // Request index by key, per store id (no `${id}\0${key}` string per key).
    const indexOf = new Map<string, Map<string, number>>();
    const slots = groups.map((g) => {
      let index = indexOf.get(g.id);
      if (index === undefined) indexOf.set(g.id, (index = new Map()));
      const s = new Int32Array(g.keys.length);
      for (let k = 0; k < g.keys.length; k++) {
        const key = g.keys[k]!;
        let i = index.get(key);
        if (i === undefined) {
          i = requests.length;
          index.set(key, i);
          requests.push({ groupBy: g.id, key });
          defs.push(g.groupBy);
        } else if (defs[i] !== g.groupBy) {
          more ??= new Map();
          const list = more.get(i);
          if (list === undefined) more.set(i, [g.groupBy]);
          else if (!list.includes(g.groupBy)) list.push(g.groupBy);
        }
        s[k] = i;
      }
      return s;
    });
    const computed: GroupValues[] = new Array(requests.length);
    const computedMore = new Map<number, GroupValues[]>();
    const visit = (i: number, tiles: TileColumns) => {
      computed[i] = valuesFromColumns(defs[i]!, tiles, t, counters);
      const others = more?.get(i);
      if (others)
        computedMore.set(
          i,
          others.map((d) => valuesFromColumns(d, tiles, t, counters)),
        );
    };
    if (requests.length > 0) {
      if (store.readEntities) await store.readEntities(requests, visit);
      else {
        const stored = await store.readTiles(requests);
        for (let i = 0; i < stored.length; i++) visit(i, columns.fromTiles(stored[i]!));
      }
    }
    if (counters) {
      counters.storeReads++;
      counters.entitiesRead += requests.length;
    }
    return groups.map((g, gi) => {
      const s = slots[gi]!;
      const out: GroupValues[] = new Array(s.length);
      for (let k = 0; k < s.length; k++) {
        const i = s[k]!;
        out[k] =
          defs[i] === g.groupBy ? computed[i]! : computedMore.get(i)![more!.get(i)!.indexOf(g.groupBy)]!;
      }
      return out;
    });
  };
}
