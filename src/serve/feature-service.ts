import { refuseBroken } from '../define/definition-context.ts';
import type { GroupByDef, JoinDef, Row, SourceDef } from '../define/types.ts';
import { VALUE_STATUSES, type FetchedValues, type FetchGroupBys } from '../online/fetch-group-bys.ts';
import { JoinRows, type EmptyValues, type FeatureRow } from './assemble.ts';
import type { GroupValues } from './feature-status.ts';
import { planFetch, type FetchPlan, type PlannedGroup } from './fetch-plan.ts';
import { RequestError, resolveAt, toLeftRows } from './request-rows.ts';

/** The definitions a server serves, by name. */
export interface ServedRepo {
  readonly sources: readonly SourceDef[];
  readonly groupBys: readonly GroupByDef[];
  readonly joins: readonly JoinDef[];
}

/**
 * Reads and finalizes planned groups at time `at` in ONE store round trip; result `[g][k]` belongs to
 * `groups[g].keys[k]`. The embedded runtime implements it with the online fetch primitive
 * (`createFetchGroupBys`), whose flat `values` variant the service then uses instead.
 */
export type FetchGroups = ((groups: readonly PlannedGroup[], at: number) => Promise<GroupValues[][]>) & {
  readonly values?: FetchGroupBys['values'];
};

export interface FeatureServiceOptions {
  readonly repo: ServedRepo;
  readonly groupById: (g: GroupByDef) => string;
  readonly fetchGroups: FetchGroups;
  /** Empty-window values of a group-by (DESIGN §1), used for null keys that need no read. */
  readonly emptyValues: (g: GroupByDef) => GroupValues;
  /** Whether a group-by's source is behind (its features get status `stale`); default never. */
  readonly isStale?: (g: GroupByDef) => boolean;
  readonly now?: () => number;
  /**
   * Called after each served fetch with its plan and service time (plan, read and finalize; usage
   * accounting, usage-recorder.ts).
   */
  readonly onFetch?: (plan: FetchPlan, ms: number) => void;
}

/** Result of a fetch: the `at` used and, per requested join, one feature row per request row. */
export interface FetchResult {
  readonly at: number;
  readonly joins: Record<string, FeatureRow[]>;
}

/** `FetchResult` with the rows unbuilt, per join in request order (for serialization, feature-json.ts). */
export interface FetchRowsResult {
  readonly at: number;
  readonly joins: readonly JoinRows[];
}

/**
 * Serves feature vectors without HTTP (the HTTP routes, `tessera fetch` and tests use it).
 *
 * @example
 * const service = createFeatureService({ repo, groupById, fetchGroups, emptyValues });
 * const { at, joins } = await service.fetchJoins(['fraud_model'], [{ card_id: 'c1', merchant_id: 'm1' }]);
 * joins.fraud_model[0].features.card_stats_count_1h; // 3
 */
export interface FeatureService {
  readonly repo: ServedRepo;
  /** Features of several joins for the same rows; group-bys they share are read and decoded once. */
  fetchJoins(
    joinNames: readonly string[],
    rows: readonly Record<string, unknown>[],
    at?: unknown,
    opts?: { fromQuery?: boolean },
  ): Promise<FetchResult>;
  /** Features of one group-by for rows carrying its key columns. */
  fetchGroupBy(
    name: string,
    rows: readonly Record<string, unknown>[],
    at?: unknown,
    opts?: { fromQuery?: boolean },
  ): Promise<{ at: number; rows: FeatureRow[] }>;
  /** `fetchJoins` with the rows unbuilt (joins deduplicated, in request order). */
  fetchJoinRows(
    joinNames: readonly string[],
    rows: readonly Record<string, unknown>[],
    at?: unknown,
    opts?: { fromQuery?: boolean },
  ): Promise<FetchRowsResult>;
  /** `fetchGroupBy` with the rows unbuilt. */
  fetchGroupByRows(
    name: string,
    rows: readonly Record<string, unknown>[],
    at?: unknown,
    opts?: { fromQuery?: boolean },
  ): Promise<{ at: number; rows: JoinRows }>;
  join(name: string): JoinDef;
  groupBy(name: string): GroupByDef;
}

/** Creates a feature service over a repo and a fetch function. */
export function createFeatureService(opts: FeatureServiceOptions): FeatureService {
  refuseBroken([...opts.repo.joins, ...opts.repo.groupBys]); // left broken by a failed loadRepo
  const joins = new Map(opts.repo.joins.map((j) => [j.name, j]));
  const groupBys = new Map(opts.repo.groupBys.map((g) => [g.name, g]));
  const now = opts.now ?? Date.now;
  // A single group-by is served as a one-part join without prefix, so both paths share planning/assembly.
  const groupByJoins = new Map<string, JoinDef>();

  const join = (name: string): JoinDef => {
    const j = joins.get(name);
    if (j === undefined) {
      throw new RequestError(`unknown join '${name}'; this server serves ${list(joins.keys())}`, 404);
    }
    return j;
  };
  const groupBy = (name: string): GroupByDef => {
    const g = groupBys.get(name);
    if (g === undefined) {
      throw new RequestError(`unknown group-by '${name}'; this server serves ${list(groupBys.keys())}`, 404);
    }
    return g;
  };

  async function run(
    defs: readonly JoinDef[],
    raw: readonly Record<string, unknown>[],
    atInput: unknown,
    fromQuery: boolean,
  ): Promise<FetchRowsResult> {
    const started = performance.now();
    const at = resolveAt(atInput, now);
    const rows: Row[] = toLeftRows(defs, raw, at, fromQuery);
    const plan = planFetch(defs, rows, opts.groupById);
    const { fetchGroups } = opts;
    const fetched =
      fetchGroups.values !== undefined
        ? await fetchGroups.values(plan.groups, at, { distinctKeys: true })
        : flatten(plan.groups, await fetchGroups(plan.groups, at));
    const stale = plan.groups.map((g) => opts.isStale?.(g.groupBy) ?? false);
    const empties: (EmptyValues | undefined)[] = [];
    const emptyOf = (g: number) => (empties[g] ??= flatEmpty(opts.emptyValues(plan.groups[g]!.groupBy)));
    const joinRows = plan.joins.map((pj) => new JoinRows(pj, fetched, rows, stale, emptyOf));
    opts.onFetch?.(plan, performance.now() - started);
    return { at, joins: joinRows };
  }

  const groupByJoin = (name: string): JoinDef => {
    const g = groupBy(name);
    let def = groupByJoins.get(name);
    if (def === undefined) {
      const keyMapping = Object.fromEntries(g.keys.map((k) => [k, k]));
      def = Object.freeze({
        kind: 'join',
        name: `groupby:${name}`,
        left: g.source,
        parts: [Object.freeze({ kind: 'joinPart', groupBy: g, keyMapping })],
        derivations: [],
      } satisfies JoinDef);
      groupByJoins.set(name, def);
    }
    return def;
  };

  const service: FeatureService = {
    repo: opts.repo,
    join,
    groupBy,
    fetchJoinRows: (joinNames, raw, at, o) =>
      run([...new Set(joinNames)].map(join), raw, at, o?.fromQuery ?? false),
    async fetchGroupByRows(name, raw, at, o) {
      const { at: used, joins } = await run([groupByJoin(name)], raw, at, o?.fromQuery ?? false);
      return { at: used, rows: joins[0]! };
    },
    async fetchJoins(joinNames, raw, at, o) {
      const { at: used, joins } = await service.fetchJoinRows(joinNames, raw, at, o);
      const out: Record<string, FeatureRow[]> = {};
      for (const rows of joins) out[rows.join.name] = rows.toRows();
      return { at: used, joins: out };
    },
    async fetchGroupBy(name, raw, at, o) {
      const { at: used, rows } = await service.fetchGroupByRows(name, raw, at, o);
      return { at: used, rows: rows.toRows() };
    },
  };
  return service;
}

/** The flat form of nested group values (for a `FetchGroups` without `values`). */
function flatten(
  groups: readonly PlannedGroup[],
  nested: readonly (readonly GroupValues[])[],
): FetchedValues {
  const entity: Int32Array[] = [];
  const status: number[] = [];
  const base: number[] = [];
  const values: unknown[] = [];
  groups.forEach((g, gi) => {
    const list = nested[gi]!;
    entity.push(Int32Array.from(list, (_, k) => status.length + k));
    for (const v of list) {
      status.push(VALUE_STATUSES.indexOf(v.status));
      base.push(values.length);
      pushFlat(values, g.groupBy, v);
    }
  });
  return { entity, status: Uint8Array.from(status), base, values };
}

function flatEmpty(v: GroupValues): EmptyValues {
  return { status: v.status, values: v.values.flat() };
}

/** Appends `v.values` in the group-by's flat layout, checking its shape (a wrong one would misplace values). */
function pushFlat(out: unknown[], groupBy: GroupByDef, v: GroupValues): void {
  const shaped =
    v.values.length === groupBy.aggregations.length &&
    v.values.every((list, a) => list.length === groupBy.aggregations[a]!.windows.length);
  if (!shaped) {
    throw new Error(
      `fetched values of group-by '${groupBy.name}' are not values[aggregation][window] of its definition; the FetchGroups function must return one value per window of each aggregation`,
    );
  }
  for (const list of v.values) for (const x of list) out.push(x);
}

function list(names: Iterable<string>): string {
  const all = [...names].map((n) => `'${n}'`);
  return all.length === 0 ? 'nothing' : all.join(', ');
}
