import { canonicalJson } from './canonical-json.ts';
import type { Plan } from './plan-ir.ts';

export interface GroupByChange {
  readonly name: string;
  readonly fromHash: string;
  readonly toHash: string;
  /** True when the computation changed (values must be recomputed); false for names/docs/owners only. */
  readonly semantic: boolean;
}

export interface PlanDiff {
  readonly groupBys: {
    readonly added: readonly { readonly name: string; readonly hash: string }[];
    readonly removed: readonly { readonly name: string; readonly hash: string }[];
    readonly changed: readonly GroupByChange[];
  };
  readonly joins: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly string[];
  };
  /** True when nothing differs. */
  readonly empty: boolean;
}

function byNameMap<T extends { name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((item) => [item.name, item]));
}

/**
 * Differences between two plans by name: added, removed and changed group-bys (with old and new semantic
 * hash) and joins. Deploys use it to decide what to backfill or upload again.
 *
 * @example
 * diffPlans(before, after).groupBys.changed // [{ name: 'card_stats', fromHash: 'ab…', toHash: 'cd…', semantic: true }]
 */
export function diffPlans(a: Plan, b: Plan): PlanDiff {
  const ga = byNameMap(a.groupBys);
  const gb = byNameMap(b.groupBys);
  const added = b.groupBys.filter((g) => !ga.has(g.name)).map((g) => ({ name: g.name, hash: g.hash }));
  const removed = a.groupBys.filter((g) => !gb.has(g.name)).map((g) => ({ name: g.name, hash: g.hash }));
  const changed: GroupByChange[] = [];
  for (const g of b.groupBys) {
    const old = ga.get(g.name);
    if (old && canonicalJson(old) !== canonicalJson(g)) {
      changed.push({ name: g.name, fromHash: old.hash, toHash: g.hash, semantic: old.hash !== g.hash });
    }
  }
  const ja = byNameMap(a.joins);
  const jb = byNameMap(b.joins);
  const joins = {
    added: b.joins.filter((j) => !ja.has(j.name)).map((j) => j.name),
    removed: a.joins.filter((j) => !jb.has(j.name)).map((j) => j.name),
    changed: b.joins
      .filter((j) => ja.has(j.name) && canonicalJson(ja.get(j.name)) !== canonicalJson(j))
      .map((j) => j.name),
  };
  const empty =
    added.length +
      removed.length +
      changed.length +
      joins.added.length +
      joins.removed.length +
      joins.changed.length ===
    0;
  return { groupBys: { added, removed, changed }, joins, empty };
}
