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
  readonly keys: string[];
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

/**
 * Plans a request for several joins over the same rows (or one join: pass a one-element array).
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
  const groups: { id: string; groupBy: GroupByDef; keys: string[]; index: Map<string, number> }[] = [];
  const groupIndex = new Map<string, number[]>();
  const plannedJoins: PlannedJoin[] = [];
  for (const join of joins) {
    const groupOfPart: number[] = [];
    const partKeyColumns: string[][] = [];
    for (const part of join.parts) {
      const id = groupById(part.groupBy);
      const candidates = groupIndex.get(id) ?? [];
      let gi = candidates.find((i) => sameLayout(groups[i]!.groupBy, part.groupBy));
      if (gi === undefined) {
        gi = groups.length;
        groupIndex.set(id, [...candidates, gi]);
        groups.push({ id, groupBy: part.groupBy, keys: [], index: new Map() });
      }
      groupOfPart.push(gi);
      partKeyColumns.push(part.groupBy.keys.map((k) => part.keyMapping[k]!));
    }
    const slots: Int32Array[] = [];
    const values: (Row[string] | undefined)[] = [];
    for (const row of rows) {
      const rowSlots = new Int32Array(join.parts.length);
      for (let p = 0; p < join.parts.length; p++) {
        const columns = partKeyColumns[p]!;
        values.length = columns.length;
        for (let c = 0; c < columns.length; c++) values[c] = row[columns[c]!];
        const key = entityKey(values);
        if (key === null) {
          rowSlots[p] = -1;
          continue;
        }
        const group = groups[groupOfPart[p]!]!;
        let slot = group.index.get(key);
        if (slot === undefined) {
          slot = group.keys.length;
          group.index.set(key, slot);
          group.keys.push(key);
        }
        rowSlots[p] = slot;
      }
      slots.push(rowSlots);
    }
    plannedJoins.push({ join, groupOfPart, slots });
  }
  return {
    groups: groups.map(({ id, groupBy, keys }) => ({ id, groupBy, keys })),
    joins: plannedJoins,
  };
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
