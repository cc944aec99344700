import { createGroupAggregator, type GroupAggregator } from '../aggregate/group-aggregator.ts';
import { allWindows, windowGroups, type WindowGroup } from '../aggregate/window.ts';
import { deepFreeze } from '../define/deep-freeze.ts';
import type { GroupByDef, WindowDef } from '../define/types.ts';
import { markerCount, readExactFrom } from './exact-from.ts';
import type { OnlineStore, StoredTile, TileRequest } from './store.ts';
import { StoredWindowReader } from './stored-windows.ts';

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
    c = { agg, windows, groups, empty, nulls, reader: new StoredWindowReader(agg, windows, groups) };
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
  const c = compileGroupBy(groupBy);
  if (t < readExactFrom(stored)) return { status: 'inexact', values: c.nulls };
  const first = markerCount(stored);
  if (stored.length === first) return { status: 'missing_key', values: c.empty };
  const irs = c.reader.windows(stored, first, t);
  if (counters) counters.tilesDecoded += stored.length - first;
  const aggregations = groupBy.aggregations;
  const values: unknown[][] = new Array(aggregations.length);
  for (let a = 0; a < aggregations.length; a++) values[a] = new Array(aggregations[a].windows.length);
  for (let g = 0; g < c.groups.length; g++) {
    const list = c.groups[g].aggregations;
    for (let k = 0; k < list.length; k++) {
      const { aggregationIndex, windowIndex } = list[k];
      values[aggregationIndex][windowIndex] = c.agg.finalize(irs[g], aggregationIndex);
    }
  }
  return { status: 'ok', values };
}

/**
 * The online fetch primitive: reads every `(group-by, key)` of a request in ONE store round trip, decodes
 * each distinct pair once (even when several requests or keys repeat it) and finalizes all its windows at
 * `t`. Result `[g][k]` belongs to `groups[g].keys[k]`. Serving (src/serve) plans requests on top of this.
 *
 * @example
 * const fetchGroups = createFetchGroupBys(store);
 * const [[card]] = await fetchGroups([{ id: groupById(cardStats), groupBy: cardStats, keys: ['card_1'] }], Date.now());
 * card.status; // 'ok' | 'missing_key' | 'inexact'
 */
export function createFetchGroupBys(store: OnlineStore, counters?: FetchCounters) {
  return async function fetchGroupBys(
    groups: readonly FetchGroupRequest[],
    t: number,
  ): Promise<GroupValues[][]> {
    const requests: TileRequest[] = [];
    const index = new Map<string, number>();
    const slots: Int32Array[] = groups.map((g) => {
      const s = new Int32Array(g.keys.length);
      g.keys.forEach((key, k) => {
        const id = `${g.id}\u0000${key}`;
        let i = index.get(id);
        if (i === undefined) {
          i = requests.length;
          index.set(id, i);
          requests.push({ groupBy: g.id, key });
        }
        s[k] = i;
      });
      return s;
    });
    const stored = requests.length ? await store.readTiles(requests) : [];
    if (counters) {
      counters.storeReads++;
      counters.entitiesRead += requests.length;
    }
    const computed: (GroupValues | undefined)[] = new Array(requests.length);
    const computedFor: (GroupByDef | undefined)[] = new Array(requests.length);
    return groups.map((g, gi) =>
      g.keys.map((_, k) => {
        const i = slots[gi][k];
        // Equal ids are equal computations, but window order (hence the values layout) follows each
        // definition object, so only the same object reuses a result.
        if (computedFor[i] !== g.groupBy) {
          computed[i] = valuesFromTiles(g.groupBy, stored[i], t, counters);
          computedFor[i] = g.groupBy;
        }
        return computed[i]!;
      }),
    );
  };
}
