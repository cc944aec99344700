import type { GroupByDef, JoinDef, Row } from '../define/types.ts';
import { entityKey } from '../online/entity-key.ts';

/**
 * Request-time planning: which `(group-by, entity key)` pairs a feature request needs.
 *
 * Invariants:
 * 1. Every distinct `(group-by id, entity key)` across all joins and rows of a request appears exactly once
 *    in `groups`, so the store reads and decodes it once, whichever joins share that group-by.
 * 2. Group-bys are identified by store id (online/group-by-id.ts), not by object identity or name: two joins
 *    built from separate but equal definitions share one entry. Equal ids may still list windows in a
 *    different order (the id ignores window lists); such a definition gets its own entry with the same id,
 *    so values are laid out per definition while the fetch primitive still reads the tiles once.
 * 3. A row whose mapped key value is null or absent needs no read: its slot is `-1` and the features get
 *    empty-window values with status `missing_key`.
 */

/** One group-by to read, with its distinct entity keys. */
export interface PlannedGroup {
  readonly id: string;
  readonly groupBy: GroupByDef;
  /** Groups read with the same key columns may share this array: never mutate it. */
  readonly keys: readonly string[];
}

/** Where one join's row finds its parts: `slots[row][part]` is an index into the group's `keys`, or -1. */
export interface PlannedJoin {
  readonly join: JoinDef;
  /** Index into `FetchPlan.groups` per part. */
  readonly groupOfPart: readonly number[];
  readonly slots: readonly Int32Array[];
}

export interface FetchPlan {
  readonly groups: readonly PlannedGroup[];
  readonly joins: readonly PlannedJoin[];
}

/** @internal What planning needs of a list of joins apart from the rows; built once per single join. */
interface RequestShape {
  /** Group-bys to read, in order of first use (invariants 1 and 2). */
  readonly groups: readonly { readonly id: string; readonly groupBy: GroupByDef }[];
  readonly joins: readonly {
    readonly join: JoinDef;
    readonly groupOfPart: readonly number[];
    /** Per part: index into `columns` of the left columns its key is built from. */
    readonly partColumns: Int32Array;
  }[];
  /** Distinct lists of left key columns. */
  readonly columns: readonly (readonly string[])[];
  /** Per group: the one column list all its parts use (its keys are that list's keys), or -1. */
  readonly groupColumns: Int32Array;
}

function requestShape(joins: readonly JoinDef[], groupById: (g: GroupByDef) => string): RequestShape {
  const groups: { id: string; groupBy: GroupByDef }[] = [];
  const groupIndex = new Map<string, number[]>();
  const columns: string[][] = [];
  const columnIndex = new Map<string, number>();
  const groupColumns: number[] = [];
  const shaped = joins.map((join) => {
    const groupOfPart: number[] = [];
    const partColumns = new Int32Array(join.parts.length);
    join.parts.forEach((part, p) => {
      const id = groupById(part.groupBy);
      const candidates = groupIndex.get(id) ?? [];
      let gi = candidates.find((i) => sameLayout(groups[i]!.groupBy, part.groupBy));
      if (gi === undefined) {
        gi = groups.length;
        groupIndex.set(id, [...candidates, gi]);
        groups.push({ id, groupBy: part.groupBy });
        groupColumns.push(-2); // no part yet
      }
      const list = part.groupBy.keys.map((k) => part.keyMapping[k]!);
      const name = JSON.stringify(list);
      let c = columnIndex.get(name);
      if (c === undefined) {
        c = columns.length;
        columnIndex.set(name, c);
        columns.push(list);
      }
      partColumns[p] = c;
      groupColumns[gi] = groupColumns[gi] === -2 || groupColumns[gi] === c ? c : -1;
      groupOfPart.push(gi);
    });
    return { join, groupOfPart, partColumns };
  });
  return { groups, joins: shaped, columns, groupColumns: Int32Array.from(groupColumns) };
}

/** Shapes of single joins (most requests), per `groupById` function (assumed to give stable ids). */
const shapes = new WeakMap<JoinDef, { groupById: (g: GroupByDef) => string; shape: RequestShape }>();

function shapeOf(joins: readonly JoinDef[], groupById: (g: GroupByDef) => string): RequestShape {
  if (joins.length !== 1) return requestShape(joins, groupById);
  const cached = shapes.get(joins[0]!);
  if (cached !== undefined && cached.groupById === groupById) return cached.shape;
  const shape = requestShape(joins, groupById);
  shapes.set(joins[0]!, { groupById, shape });
  return shape;
}

/** Below this many rows a linear scan finds repeated keys faster than a Map. */
const SCAN_ROWS = 16;

/**
 * Plans a request for several joins over the same rows (or one join: pass a one-element array). Entity
 * keys are built once per distinct list of key columns, not once per part: the parts of a wide join
 * usually share their key columns, and so their keys and slots.
 *
 * @example
 * const plan = planFetch([fraudModel, chargebackModel], [{ card_id: 'c1', merchant_id: 'm1' }], groupById);
 * // card_stats is shared: plan.groups has it once, with keys ['c1'].
 */
export function planFetch(
  joins: readonly JoinDef[],
  rows: readonly Row[],
  groupById: (g: GroupByDef) => string,
): FetchPlan {
  const shape = shapeOf(joins, groupById);
  const n = rows.length;
  // Per column list: its distinct keys in first-seen order and each row's slot among them (-1: null key).
  const listKeys: string[][] = [];
  const listSlots: Int32Array[] = [];
  const values: (Row[string] | undefined)[] = [];
  for (const columns of shape.columns) {
    const keys: string[] = [];
    const slots = new Int32Array(n);
    const index = n > SCAN_ROWS ? new Map<string, number>() : null;
    values.length = columns.length;
    for (let r = 0; r < n; r++) {
      const row = rows[r]!;
      for (let c = 0; c < columns.length; c++) values[c] = row[columns[c]!];
      const key = entityKey(values);
      if (key === null) {
        slots[r] = -1;
        continue;
      }
      let slot = index === null ? keys.indexOf(key) : (index.get(key) ?? -1);
      if (slot < 0) {
        slot = keys.length;
        index?.set(key, slot);
        keys.push(key);
      }
      slots[r] = slot;
    }
    listKeys.push(keys);
    listSlots.push(slots);
  }
  const { groupColumns } = shape;
  const groups = shape.groups.map(({ id, groupBy }, g) => ({
    id,
    groupBy,
    keys: groupColumns[g]! >= 0 ? listKeys[groupColumns[g]!]! : ([] as string[]),
  }));
  // Groups whose parts use several column lists collect their own distinct keys (rare).
  const mixed: Map<string, number>[] = [];
  const joined = shape.joins.map(({ join, groupOfPart, partColumns }) => {
    const slots: Int32Array[] = new Array(n);
    for (let r = 0; r < n; r++) {
      const rowSlots = new Int32Array(groupOfPart.length);
      for (let p = 0; p < groupOfPart.length; p++) {
        const c = partColumns[p]!;
        const s = listSlots[c]![r]!;
        const g = groupOfPart[p]!;
        if (s < 0 || groupColumns[g]! >= 0) {
          rowSlots[p] = s;
          continue;
        }
        const key = listKeys[c]![s]!;
        const index = (mixed[g] ??= new Map());
        let slot = index.get(key);
        if (slot === undefined) {
          const keys = groups[g]!.keys as string[];
          slot = keys.length;
          index.set(key, slot);
          keys.push(key);
        }
        rowSlots[p] = slot;
      }
      slots[r] = rowSlots;
    }
    return { join, groupOfPart, slots };
  });
  return { groups, joins: joined };
}

/** Whether two group-bys lay out `values[aggregation][window]` identically (same windows, same order). */
function sameLayout(a: GroupByDef, b: GroupByDef): boolean {
  if (a === b) return true;
  if (a.aggregations.length !== b.aggregations.length) return false;
  return a.aggregations.every((agg, i) => {
    const other = b.aggregations[i]!.windows;
    return (
      agg.windows.length === other.length &&
      agg.windows.every((w, j) => w.sizeMs === other[j]!.sizeMs && w.hopMs === other[j]!.hopMs)
    );
  });
}
