import { canonicalJson } from './canonical-json.ts';
import type { Plan } from './plan-ir.ts';

export interface GroupByChange {
  readonly name: string;
  readonly fromHash: string;
  readonly toHash: string;
  /** True when the computation changed (values must be recomputed); false for names/docs/owners only. */
  readonly semantic: boolean;
}

/** A join whose definition changed, and the feature columns it gained and lost. */
export interface JoinChange {
  readonly name: string;
  readonly featuresAdded: readonly string[];
  readonly featuresRemoved: readonly string[];
}

export interface PlanDiff {
  readonly groupBys: {
    readonly added: readonly { readonly name: string; readonly hash: string }[];
    readonly removed: readonly { readonly name: string; readonly hash: string }[];
    /**
     * A removed name and an added one with the same semantic hash: the same computation renamed, so its
     * stored tiles are kept (they are keyed by hash). Such pairs are in neither `added` nor `removed`.
     */
    readonly renamed: readonly { readonly from: string; readonly to: string; readonly hash: string }[];
    readonly changed: readonly GroupByChange[];
  };
  readonly joins: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly string[];
    /** Per changed join (same order as `changed`), its features added and removed. */
    readonly featureChanges: readonly JoinChange[];
  };
  /** True when nothing differs. */
  readonly empty: boolean;
}

function byNameMap<T extends { name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((item) => [item.name, item]));
}

/**
 * Differences between two plans by name: added, removed, renamed and changed group-bys (with old and new
 * semantic hash) and joins (with the features they gained and lost). Deploys use it to decide what to backfill or upload again.
 *
 * @example
 * diffPlans(before, after).groupBys.changed // [{ name: 'card_stats', fromHash: 'ab…', toHash: 'cd…', semantic: true }]
 */
export function diffPlans(a: Plan, b: Plan): PlanDiff {
  const ga = byNameMap(a.groupBys);
  const gb = byNameMap(b.groupBys);
  let added = b.groupBys.filter((g) => !ga.has(g.name)).map((g) => ({ name: g.name, hash: g.hash }));
  let removed = a.groupBys.filter((g) => !gb.has(g.name)).map((g) => ({ name: g.name, hash: g.hash }));
  // Pair each removed name with an added one of the same hash, one to one, in name order.
  const renamed: { from: string; to: string; hash: string }[] = [];
  for (const r of removed) {
    const to = added.find((x) => x.hash === r.hash && !renamed.some((p) => p.to === x.name));
    if (to !== undefined) renamed.push({ from: r.name, to: to.name, hash: r.hash });
  }
  added = added.filter((x) => !renamed.some((p) => p.to === x.name));
  removed = removed.filter((x) => !renamed.some((p) => p.from === x.name));
  const changed: GroupByChange[] = [];
  for (const g of b.groupBys) {
    const old = ga.get(g.name);
    if (old && canonicalJson(old) !== canonicalJson(g)) {
      changed.push({ name: g.name, fromHash: old.hash, toHash: g.hash, semantic: old.hash !== g.hash });
    }
  }
  const ja = byNameMap(a.joins);
  const jb = byNameMap(b.joins);
  const joinsChanged = b.joins.filter(
    (j) => ja.has(j.name) && canonicalJson(ja.get(j.name)) !== canonicalJson(j),
  );
  const joins = {
    added: b.joins.filter((j) => !ja.has(j.name)).map((j) => j.name),
    removed: a.joins.filter((j) => !jb.has(j.name)).map((j) => j.name),
    changed: joinsChanged.map((j) => j.name),
    featureChanges: joinsChanged.map((j) => {
      const before = new Set(ja.get(j.name)!.features);
      const after = new Set(j.features);
      return {
        name: j.name,
        featuresAdded: j.features.filter((f) => !before.has(f)),
        featuresRemoved: [...before].filter((f) => !after.has(f)),
      };
    }),
  };
  const empty =
    added.length +
      removed.length +
      renamed.length +
      changed.length +
      joins.added.length +
      joins.removed.length +
      joins.changed.length ===
    0;
  return { groupBys: { added, removed, renamed, changed }, joins, empty };
}
