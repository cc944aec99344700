import { featureRefs } from '../define/feature-refs.ts';
import type { JoinDef, Row } from '../define/types.ts';
import type { PlannedJoin } from './fetch-plan.ts';
import type { FeatureStatus, GroupValues } from './feature-status.ts';

/** One served row of a join: values and status by feature name (aggregates in order, then derivations). */
export interface FeatureRow {
  features: Record<string, unknown>;
  status: Record<string, FeatureStatus>;
}

/** @internal Per-join lookup table from output column to (part, aggregation, window); built once per join. */
interface JoinLayout {
  readonly names: readonly string[];
  readonly part: Int32Array;
  readonly aggregation: Int32Array;
  readonly window: Int32Array;
}

const layouts = new WeakMap<JoinDef, JoinLayout>();

function layoutOf(join: JoinDef): JoinLayout {
  let layout = layouts.get(join);
  if (layout === undefined) {
    const refs = featureRefs(join);
    layout = {
      names: refs.map((r) => r.name),
      part: Int32Array.from(refs, (r) => r.partIndex),
      aggregation: Int32Array.from(refs, (r) => r.aggregationIndex),
      window: Int32Array.from(refs, (r) => r.windowIndex),
    };
    layouts.set(join, layout);
  }
  return layout;
}

/**
 * Builds each row's feature vector of one planned join from the fetched group values, then runs the join's
 * derivations on it (with the request row as `row`, like the backfill does with the left row).
 * `staleGroups` holds plan group indexes whose source is behind; their features get status `stale`.
 *
 * @example
 * const plan = planFetch([fraudModel], rows, groupById);
 * const values = await fetchGroups(plan.groups, at);
 * const out = assembleJoin(plan.joins[0], values, rows, new Set());
 * out[0].features.card_stats_count_1h; // 3
 */
export function assembleJoin(
  planned: PlannedJoin,
  values: readonly (readonly GroupValues[])[],
  rows: readonly Row[],
  staleGroups: ReadonlySet<number>,
  emptyOf: (groupIndex: number) => GroupValues,
): FeatureRow[] {
  const { join, groupOfPart, slots } = planned;
  const layout = layoutOf(join);
  const out: FeatureRow[] = new Array(rows.length);
  const partValues: GroupValues[] = new Array(join.parts.length);
  const partStatus: FeatureStatus[] = new Array(join.parts.length);
  for (let r = 0; r < rows.length; r++) {
    const rowSlots = slots[r]!;
    for (let p = 0; p < partValues.length; p++) {
      const g = groupOfPart[p]!;
      const slot = rowSlots[p]!;
      const v = slot < 0 ? emptyOf(g) : values[g]![slot]!;
      partValues[p] = v;
      partStatus[p] = staleGroups.has(g) ? 'stale' : slot < 0 ? 'missing_key' : v.status;
    }
    const features: Record<string, unknown> = {};
    const status: Record<string, FeatureStatus> = {};
    for (let i = 0; i < layout.names.length; i++) {
      const p = layout.part[i]!;
      const name = layout.names[i]!;
      features[name] = partValues[p]!.values[layout.aggregation[i]!]![layout.window[i]!];
      status[name] = partStatus[p]!;
    }
    if (join.derivations.length > 0) {
      const derivedStatus: FeatureStatus = partStatus.includes('stale') ? 'stale' : 'ok';
      for (const d of join.derivations) {
        const value = d.fn(features, rows[r]!);
        features[d.name] = value === undefined ? null : value;
        status[d.name] = derivedStatus;
      }
    }
    out[r] = { features, status };
  }
  return out;
}
