import { featureRefs } from '../define/feature-refs.ts';
import type { DerivationDef, JoinDef, Row, Scalar } from '../define/types.ts';
import { fitsType } from '../offline/column-kinds.ts';
import { VALUE_STATUSES, valueLayout, type FetchedValues } from '../online/fetch-group-bys.ts';
import type { PlannedJoin } from './fetch-plan.ts';
import type { FeatureStatus, GroupValues } from './feature-status.ts';

/** One served row of a join: values and status by feature name (aggregates in order, then derivations). */
export interface FeatureRow {
  features: Record<string, unknown>;
  /** Frozen and shared between rows with the same statuses. */
  status: Readonly<Record<string, FeatureStatus>>;
}

/** @internal Per-join lookup table from output column to (part, flat value position); built once per join. */
interface JoinLayout {
  readonly names: readonly string[];
  readonly part: Int32Array;
  /** Position of the column's value in its part's flat values (`valueLayout` of the part's group-by). */
  readonly position: Int32Array;
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
      position: Int32Array.from(
        refs,
        (r) => valueLayout(join.parts[r.partIndex]!.groupBy).offset[r.aggregationIndex]! + r.windowIndex,
      ),
      template: JSON.parse(`{${refs.map((r) => `${JSON.stringify(r.name)}:null`).join(',')}}`),
      statuses: new Map(),
    };
    layouts.set(join, layout);
  }
  return layout;
}

/** Values for a part whose key is null (no read): status and values in the flat layout. */
export interface EmptyValues {
  readonly status: GroupValues['status'];
  readonly values: readonly unknown[];
}

/**
 * The served rows of one planned join over one fetch. Rows are read from the fetched flat values when
 * asked for (`select` then `value`, or `row`), so a response can be serialized without building a features
 * object per row (feature-json.ts); `row` builds one, running the join's derivations on it with the request
 * row as `row`, like the backfill does with the left row. `staleGroups[g]` tells whether plan group `g`'s
 * source is behind; its features get status `stale`.
 *
 * @example
 * const plan = planFetch([fraudModel], rows, groupById);
 * const joinRows = new JoinRows(plan.joins[0], await fetchGroups.values(plan.groups, at), rows, stale, emptyOf);
 * joinRows.row(0).features.card_stats_count_1h; // 3
 */
export class JoinRows {
  readonly join: JoinDef;
  readonly length: number;
  /** Aggregate feature names in output order (derivations follow them in a row's features). */
  readonly names: readonly string[];
  private readonly layout: JoinLayout;
  /** The values array and start of each part of the selected row. */
  private readonly partValues: (readonly unknown[])[];
  private readonly partBase: Int32Array;
  private readonly partStatus: FeatureStatus[];

  constructor(
    private readonly planned: PlannedJoin,
    private readonly fetched: FetchedValues,
    private readonly rows: readonly Row[],
    private readonly staleGroups: readonly boolean[],
    private readonly emptyOf: (groupIndex: number) => EmptyValues,
  ) {
    this.join = planned.join;
    this.length = rows.length;
    this.layout = layoutOf(planned.join);
    this.names = this.layout.names;
    const parts = planned.join.parts.length;
    this.partValues = new Array(parts);
    this.partBase = new Int32Array(parts);
    this.partStatus = new Array(parts);
  }

  /** Makes row `r` the one `value` reads, and returns its status map (frozen, shared between rows). */
  select(r: number): Readonly<Record<string, FeatureStatus>> {
    const { groupOfPart, slots } = this.planned;
    const { fetched, partValues, partBase, partStatus } = this;
    const rowSlots = slots[r]!;
    for (let p = 0; p < partStatus.length; p++) {
      const g = groupOfPart[p]!;
      const slot = rowSlots[p]!;
      let status: GroupValues['status'];
      if (slot < 0) {
        const empty = this.emptyOf(g);
        partValues[p] = empty.values;
        partBase[p] = 0;
        status = empty.status;
      } else {
        const e = fetched.entity[g]![slot]!;
        partValues[p] = fetched.values;
        partBase[p] = fetched.base[e]!;
        status = VALUE_STATUSES[fetched.status[e]!]!;
      }
      // `inexact` (null values) outranks `stale`: the value is not merely old but absent.
      partStatus[p] =
        status === 'inexact' ? 'inexact' : this.staleGroups[g] ? 'stale' : slot < 0 ? 'missing_key' : status;
    }
    return statusOf(this.layout, this.join, partStatus);
  }

  /** Aggregate feature `i` (index into `names`) of the selected row. */
  value(i: number): unknown {
    const p = this.layout.part[i]!;
    return this.partValues[p]![this.partBase[p]! + this.layout.position[i]!];
  }

  /** Row `r` as an object: features (aggregates in order, then derivations) and status. */
  row(r: number): FeatureRow {
    let status = this.select(r);
    const { names } = this.layout;
    const features: Record<string, unknown> = { ...this.layout.template };
    for (let i = 0; i < names.length; i++) features[names[i]!] = this.value(i);
    const { join } = this;
    if (join.derivations.length > 0) {
      // Like the backfill, every derivation sees the part features only (not other derivations).
      if (this.partStatus.includes('inexact'))
        status = this.deriveOverInexact(features, this.rows[r]!, status);
      else {
        const derived = join.derivations.map((d) => runDerivation(join, d, features, this.rows[r]!));
        join.derivations.forEach((d, k) => (features[d.name] = derived[k]));
      }
    }
    return { features, status };
  }

  /**
   * Derivations of a row with an `inexact` part (rare: a fetch before an entity's exact-from time). That
   * part's features are null whatever their type says (a count is `number`), so a derivation that reads
   * one is `inexact` and null, whether it returned or threw; one that reads none (e.g. only the request
   * row) is computed as usual, with the status of the other parts. Reads are seen through getters.
   */
  private deriveOverInexact(
    features: Record<string, unknown>,
    row: Row,
    status: Readonly<Record<string, FeatureStatus>>,
  ): Readonly<Record<string, FeatureStatus>> {
    const { join, layout, partStatus } = this;
    let readInexact = false;
    const view: Record<string, unknown> = {};
    for (let i = 0; i < layout.names.length; i++) {
      const name = layout.names[i]!;
      if (partStatus[layout.part[i]!] !== 'inexact') view[name] = features[name];
      else
        Object.defineProperty(view, name, {
          enumerable: true,
          get: () => {
            readInexact = true;
            return null;
          },
        });
    }
    const exact: FeatureStatus = partStatus.includes('stale') ? 'stale' : 'ok';
    const out = { ...status };
    const derived = join.derivations.map((d) => {
      readInexact = false;
      let value: unknown = null;
      try {
        value = runDerivation(join, d, view, row);
      } catch (error) {
        if (!readInexact) throw error;
      }
      out[d.name] = readInexact ? 'inexact' : exact;
      return readInexact ? null : value;
    });
    join.derivations.forEach((d, k) => (features[d.name] = derived[k]));
    return Object.freeze(out);
  }

  /** Every row as an object. */
  toRows(): FeatureRow[] {
    const out: FeatureRow[] = new Array(this.length);
    for (let r = 0; r < this.length; r++) out[r] = this.row(r);
    return out;
  }
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
    // As for features, `inexact` (null values) outranks `stale`.
    const derived: FeatureStatus = partStatus.includes('inexact')
      ? 'inexact'
      : partStatus.includes('stale')
        ? 'stale'
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
