import { createGroupAggregator, type GroupAggregator } from '../aggregate/group-aggregator.ts';
import { allWindows, windowGroups, type WindowGroup } from '../aggregate/window.ts';
import { deepFreeze } from '../define/deep-freeze.ts';
import type { GroupByDef, WindowDef } from '../define/types.ts';
import { columnsExactFrom, markerCount } from './exact-from.ts';
import type { OnlineStore, TileRequest } from './store.ts';
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

/** `GroupValues.status` by the codes of `FetchedValues.status`. */
export const VALUE_STATUSES = ['ok', 'missing_key', 'inexact'] as const;
const OK = 0;
const MISSING_KEY = 1;
const INEXACT = 2;

/**
 * Where a group-by's values sit in a flat values array: value `(aggregation a, window w)` of an entity whose
 * values start at `base` is at `base + offset[a] + w`, and an entity takes `width` slots.
 */
export interface ValueLayout {
  readonly width: number;
  readonly offset: Int32Array;
}

const layoutCache = new WeakMap<GroupByDef, ValueLayout>();

/** The flat layout of a group-by's values (definition order), computed once per definition object. */
export function valueLayout(groupBy: GroupByDef): ValueLayout {
  let layout = layoutCache.get(groupBy);
  if (layout === undefined) {
    const offset = new Int32Array(groupBy.aggregations.length);
    let width = 0;
    groupBy.aggregations.forEach((a, i) => {
      offset[i] = width;
      width += a.windows.length;
    });
    layout = { width, offset };
    layoutCache.set(groupBy, layout);
  }
  return layout;
}

/**
 * The finalized values of a whole fetch in ONE flat array, instead of arrays per entity (most of a wide
 * fetch's garbage): the values of `(groups[g], keys[k])` start at `base[e]` with `e = entity[g][k]`, laid out
 * by `valueLayout(groups[g].groupBy)`, and their status is `VALUE_STATUSES[status[e]]`. `missing_key` and
 * `inexact` entities hold the shared empty-window values or nulls, `ok` ones fresh values.
 */
export interface FetchedValues {
  readonly entity: readonly Int32Array[];
  readonly status: Uint8Array;
  readonly base: ArrayLike<number>;
  readonly values: readonly unknown[];
}

interface Compiled {
  readonly agg: GroupAggregator;
  readonly windows: readonly WindowDef[];
  readonly groups: readonly WindowGroup[];
  /** Deeply frozen: shared by every response that needs them (a mutation must not leak into the next). */
  readonly empty: readonly (readonly unknown[])[];
  readonly nulls: readonly (readonly unknown[])[];
  /** `empty` and `nulls` in the flat layout. */
  readonly emptyFlat: readonly unknown[];
  readonly nullsFlat: readonly unknown[];
  readonly reader: StoredWindowReader;
  readonly layout: ValueLayout;
  /** The finalize plan, one entry per value: window group, aggregation and flat position of the value. */
  readonly finalizeGroup: Int32Array;
  readonly finalizeAggregation: Int32Array;
  readonly finalizePosition: Int32Array;
  /**
   * Per finalize entry: what `finalize` gives for an empty IR row when that is a primitive (an untouched
   * window, `StoredWindowReader.touched`, takes it without a call), else `NOT_PRIMITIVE`: objects are
   * finalized afresh, as a response may own and change them.
   */
  readonly emptyFinal: readonly unknown[];
}

const NOT_PRIMITIVE = Symbol('not primitive');

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
    const layout = valueLayout(groupBy);
    const plan = groups.flatMap((g, gi) =>
      g.aggregations.map((a) => [gi, a.aggregationIndex, layout.offset[a.aggregationIndex]! + a.windowIndex]),
    );
    c = {
      agg,
      windows,
      groups,
      empty,
      nulls,
      emptyFlat: Object.freeze(empty.flat()),
      nullsFlat: Object.freeze(nulls.flat()),
      reader: new StoredWindowReader(agg, windows, groups),
      layout,
      finalizeGroup: Int32Array.from(plan, (p) => p[0]!),
      finalizeAggregation: Int32Array.from(plan, (p) => p[1]!),
      finalizePosition: Int32Array.from(plan, (p) => p[2]!),
      emptyFinal: plan.map(([, a]) => {
        const v = agg.finalize(agg.init(), a!);
        return v !== null && (typeof v === 'object' || typeof v === 'function') ? NOT_PRIMITIVE : v;
      }),
    };
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
 * once, see stored-windows.ts) into `out` from `base` on (`valueLayout`), and returns the status code.
 * Before the entity's exact-from time the status is `inexact` and every value null.
 */
function finalizeInto(
  c: Compiled,
  stored: TileColumns,
  t: number,
  out: unknown[],
  base: number,
  counters: FetchCounters | undefined,
): number {
  const first = markerCount(stored);
  const status = t < columnsExactFrom(stored) ? INEXACT : stored.length === first ? MISSING_KEY : OK;
  if (status !== OK) {
    const fill = status === INEXACT ? c.nullsFlat : c.emptyFlat;
    for (let k = 0; k < fill.length; k++) out[base + k] = fill[k];
    return status;
  }
  const { reader } = c;
  const irs = reader.windows(stored, first, t);
  if (counters) counters.tilesDecoded += stored.length - first;
  const { agg, finalizeGroup, finalizeAggregation, finalizePosition, emptyFinal } = c;
  const { touched } = reader;
  for (let k = 0; k < finalizeGroup.length; k++) {
    const g = finalizeGroup[k]!;
    const empty = touched[g] === 0 ? emptyFinal[k] : NOT_PRIMITIVE;
    out[base + finalizePosition[k]!] =
      empty !== NOT_PRIMITIVE ? empty : agg.finalize(irs[g]!, finalizeAggregation[k]!);
  }
  return status;
}

/** `GroupValues` of entity `e` of a flat fetch; `missing_key` and `inexact` ones are the shared frozen values. */
function groupValuesOf(groupBy: GroupByDef, fetched: FetchedValues, e: number): GroupValues {
  const c = compileGroupBy(groupBy);
  const status = VALUE_STATUSES[fetched.status[e]!]!;
  if (status === 'missing_key') return { status, values: c.empty };
  if (status === 'inexact') return { status, values: c.nulls };
  const { offset } = c.layout;
  const base = fetched.base[e]!;
  const values: unknown[][] = new Array(offset.length);
  for (let a = 0; a < offset.length; a++) {
    const n = groupBy.aggregations[a]!.windows.length;
    const list: unknown[] = new Array(n);
    for (let w = 0; w < n; w++) list[w] = fetched.values[base + offset[a]! + w];
    values[a] = list;
  }
  return { status, values };
}

/** The online fetch primitive (see `createFetchGroupBys`). */
export interface FetchGroupBys {
  (groups: readonly FetchGroupRequest[], t: number): Promise<GroupValues[][]>;
  /**
   * The same fetch with its values flat (what serving uses). `distinctKeys` promises that no group lists a
   * key twice (fetch-plan.ts guarantees it), which saves the dedupe maps when group ids are distinct too.
   */
  values(
    groups: readonly FetchGroupRequest[],
    t: number,
    opts?: { distinctKeys?: boolean },
  ): Promise<FetchedValues>;
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
export function createFetchGroupBys(store: OnlineStore, counters?: FetchCounters): FetchGroupBys {
  const columns = new TileColumns();

  async function values(
    groups: readonly FetchGroupRequest[],
    t: number,
    opts?: { distinctKeys?: boolean },
  ): Promise<FetchedValues> {
    // Results: one per (request, definition). Equal ids are equal computations, but window order (hence the
    // values layout) follows each definition object, so another object with the same id gets its own result
    // from the same read, chained after the request's first one (`next`). Each key adds at most one
    // request and one result, so the arrays are sized once.
    let total = 0;
    for (const g of groups) total += g.keys.length;
    const requests: TileRequest[] = new Array(total);
    const firstResult = new Int32Array(total);
    const compiled: Compiled[] = new Array(total);
    const next = new Int32Array(total);
    const base = new Int32Array(total);
    let requestCount = 0;
    let resultCount = 0;
    let width = 0;
    const addResult = (c: Compiled): number => {
      const e = resultCount++;
      compiled[e] = c;
      next[e] = -1;
      base[e] = width;
      width += c.layout.width;
      return e;
    };
    const entity: Int32Array[] = new Array(groups.length);
    let dedupe = opts?.distinctKeys !== true;
    for (let g = 0; g < groups.length && !dedupe; g++)
      for (let h = 0; h < g; h++) if (groups[h]!.id === groups[g]!.id) dedupe = true;
    // Request index by key, per store id (no `${id}\0${key}` string per key); only when keys may repeat.
    const indexOf = dedupe ? new Map<string, Map<string, number>>() : null;
    const compiledOf: Compiled[] = new Array(groups.length);
    const indexOfGroup: (Map<string, number> | undefined)[] = new Array(groups.length);
    const add = (g: number, k: number) => {
      const key = groups[g]!.keys[k]!;
      const c = compiledOf[g]!;
      const index = indexOfGroup[g];
      const i = index?.get(key);
      if (i === undefined) {
        index?.set(key, requestCount);
        requests[requestCount] = { groupBy: groups[g]!.id, key };
        firstResult[requestCount++] = entity[g]![k] = addResult(c);
        return;
      }
      let e = firstResult[i]!;
      while (compiled[e] !== c && next[e]! >= 0) e = next[e]!;
      if (compiled[e] !== c) e = next[e] = addResult(c);
      entity[g]![k] = e;
    };
    // Groups on the same key columns share one keys array (fetch-plan.ts) and are requested key by key, not
    // group by group: one key's group-bys are neighbours in the LMDB B-tree, so the pages the first get
    // walked are still in the CPU caches for the next ones (a 100-row, 10-group-by fetch on a 1M-key store:
    // ~10% less CPU). The order of requests is free: results are found through `entity`, not by position.
    const walked = new Uint8Array(groups.length);
    const members: number[] = [];
    for (let g = 0; g < groups.length; g++) {
      if (walked[g] === 1) continue;
      const keys = groups[g]!.keys;
      members.length = 0;
      for (let h = g; h < groups.length; h++) {
        if (walked[h] === 1 || groups[h]!.keys !== keys) continue;
        walked[h] = 1;
        members.push(h);
        const { id, groupBy } = groups[h]!;
        compiledOf[h] = compileGroupBy(groupBy);
        entity[h] = new Int32Array(keys.length);
        if (indexOf !== null) {
          let index = indexOf.get(id);
          if (index === undefined) indexOf.set(id, (index = new Map()));
          indexOfGroup[h] = index;
        }
      }
      for (let k = 0; k < keys.length; k++) for (let m = 0; m < members.length; m++) add(members[m]!, k);
    }
    requests.length = requestCount;
    const status = new Uint8Array(resultCount);
    const out: unknown[] = new Array(width);
    const visit = (i: number, tiles: TileColumns) => {
      for (let e = firstResult[i]!; e >= 0; e = next[e]!)
        status[e] = finalizeInto(compiled[e]!, tiles, t, out, base[e]!, counters);
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
    return { entity, status, base, values: out };
  }

  async function fetchGroupBys(groups: readonly FetchGroupRequest[], t: number): Promise<GroupValues[][]> {
    const fetched = await values(groups, t);
    // Equal (request, definition) pairs share one GroupValues, as they share one computation.
    const built: GroupValues[] = [];
    return groups.map((g, gi) =>
      Array.from(fetched.entity[gi]!, (e) => (built[e] ??= groupValuesOf(g.groupBy, fetched, e))),
    );
  }
  return Object.assign(fetchGroupBys, { values });
}
