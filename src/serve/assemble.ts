import { featureRefs } from '../define/feature-refs.ts';
import type { DerivationDef, JoinDef, Row, Scalar } from '../define/types.ts';
import { fitsType } from '../offline/column-kinds.ts';
import type { PlannedJoin } from './fetch-plan.ts';
import type { FeatureStatus, GroupValues } from './feature-status.ts';

/** One served row of a join: values and status by feature name (aggregates in order, then derivations). */
export interface FeatureRow {
  features: Record<string, unknown>;
  /** Frozen and shared between rows with the same statuses. */
  status: Readonly<Record<string, FeatureStatus>>;
}

/** @internal Per-join lookup table from output column to (part, aggregation, window); built once per join. */
interface JoinLayout {
  readonly names: readonly string[];
  readonly part: Int32Array;
  readonly aggregation: Int32Array;
  readonly window: Int32Array;
  /**
   * Every name (null values), to copy per row: a row's features object is a clone of it with the values
   * set, not 50+ properties added one by one, which V8 turns into a slow dictionary-mode object.
   * Built with JSON.parse, which makes a fast-mode object of any width (the clone keeps that shape).
   */
  readonly template: Readonly<Record<string, unknown>>;
  /** Frozen status objects by pattern of part statuses: rows with the same pattern share one object. */
  readonly statuses: Map<number | string, Readonly<Record<string, FeatureStatus>>>;
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
      template: JSON.parse(`{${refs.map((r) => `${JSON.stringify(r.name)}:null`).join(',')}}`),
      statuses: new Map(),
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
      // `inexact` (null values) outranks `stale`: the value is not merely old but absent.
      partStatus[p] =
        v.status === 'inexact'
          ? 'inexact'
          : staleGroups.has(g)
            ? 'stale'
            : slot < 0
              ? 'missing_key'
              : v.status;
    }
    const features: Record<string, unknown> = { ...layout.template };
    for (let i = 0; i < layout.names.length; i++) {
      features[layout.names[i]!] =
        partValues[layout.part[i]!]!.values[layout.aggregation[i]!]![layout.window[i]!];
    }
    if (join.derivations.length > 0) {
      // Like the backfill, every derivation sees the part features only (not other derivations).
      const derived = join.derivations.map((d) => runDerivation(join, d, features, rows[r]!));
      join.derivations.forEach((d, k) => (features[d.name] = derived[k]));
    }
    out[r] = { features, status: statusOf(layout, join, partStatus) };
  }
  return out;
}

/**
 * The status map of a row. Status is per part (all features of a part share it), so a join has few distinct
 * maps; they are built once and frozen instead of writing every feature name for every row.
 */
function statusOf(
  layout: JoinLayout,
  join: JoinDef,
  partStatus: readonly FeatureStatus[],
): Readonly<Record<string, FeatureStatus>> {
  // The pattern as a number (2 bits per part) where it fits, saving a string per row.
  let pattern: number | string = 0;
  if (partStatus.length <= 26) {
    for (let p = 0; p < partStatus.length; p++) pattern = pattern * 4 + STATUS_CODE[partStatus[p]!];
  } else pattern = partStatus.join('|');
  let status = layout.statuses.get(pattern);
  if (status === undefined) {
    const built: Record<string, FeatureStatus> = {};
    for (let i = 0; i < layout.names.length; i++) built[layout.names[i]!] = partStatus[layout.part[i]!]!;
    const derived: FeatureStatus = partStatus.includes('stale')
      ? 'stale'
      : partStatus.includes('inexact')
        ? 'inexact'
        : 'ok';
    for (const d of join.derivations) built[d.name] = derived;
    status = Object.freeze(built);
    // Bounded: at most 4^parts patterns, and in practice a handful per join.
    if (layout.statuses.size < 4096) layout.statuses.set(pattern, status);
  }
  return status;
}

const STATUS_CODE: Readonly<Record<FeatureStatus, number>> = { ok: 0, missing_key: 1, stale: 2, inexact: 3 };

/**
 * One derivation value with the backfill's rules: `undefined` and non-finite numbers become null; a throw or
 * a value of the wrong type is an error naming the join, the derivation and the fix.
 */
function runDerivation(
  join: JoinDef,
  d: DerivationDef,
  features: Record<string, unknown>,
  row: Row,
): unknown {
  let value: unknown;
  try {
    value = d.fn(features, row);
  } catch (error) {
    throw new Error(
      `join '${join.name}': derivation '${d.name}' threw: ${error instanceof Error ? error.message : String(error)}. ` +
        'Fix: guard the function against this input (e.g. null features).',
      { cause: error },
    );
  }
  if (value === undefined || (typeof value === 'number' && !Number.isFinite(value))) return null;
  if (value !== null && !fitsType(value as Scalar, d.type)) {
    throw new Error(
      `join '${join.name}': derivation '${d.name}' returned ${JSON.stringify(value)}, but it is declared ${d.type}. ` +
        `Fix: return a ${d.type} or null, or change its declared type.`,
    );
  }
  return value;
}
