import type { GroupByDef, JoinDef, Row, SourceDef } from '../define/types.ts';
import { assembleJoin, type FeatureRow } from './assemble.ts';
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
 * `groups[g].keys[k]`. The embedded runtime implements it with the online fetch primitive.
 */
export type FetchGroups = (groups: readonly PlannedGroup[], at: number) => Promise<GroupValues[][]>;

export interface FeatureServiceOptions {
  readonly repo: ServedRepo;
  readonly groupById: (g: GroupByDef) => string;
  readonly fetchGroups: FetchGroups;
  /** Empty-window values of a group-by (DESIGN §1), used for null keys that need no read. */
  readonly emptyValues: (g: GroupByDef) => GroupValues;
  /** Whether a group-by's source is behind (its features get status `stale`); default never. */
  readonly isStale?: (g: GroupByDef) => boolean;
  readonly now?: () => number;
  /** Called after each served fetch with its plan and service time (usage accounting, usage-recorder.ts). */
  readonly onFetch?: (plan: FetchPlan, ms: number) => void;
}

/** Result of a fetch: the `at` used and, per requested join, one feature row per request row. */
export interface FetchResult {
  readonly at: number;
  readonly joins: Record<string, FeatureRow[]>;
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
  join(name: string): JoinDef;
  groupBy(name: string): GroupByDef;
}

/** Creates a feature service over a repo and a fetch function. */
export function createFeatureService(opts: FeatureServiceOptions): FeatureService {
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
  ): Promise<{ at: number; rows: FeatureRow[][] }> {
    const started = performance.now();
    const at = resolveAt(atInput, now);
    const rows: Row[] = toLeftRows(defs, raw, at, fromQuery);
    const plan = planFetch(defs, rows, opts.groupById);
    const values = await opts.fetchGroups(plan.groups, at);
    const stale = new Set<number>();
    const empties: (GroupValues | undefined)[] = [];
    plan.groups.forEach((g, i) => {
      if (opts.isStale?.(g.groupBy)) stale.add(i);
    });
    const emptyOf = (g: number) => (empties[g] ??= opts.emptyValues(plan.groups[g]!.groupBy));
    const assembled = plan.joins.map((pj) => assembleJoin(pj, values, rows, stale, emptyOf));
    opts.onFetch?.(plan, performance.now() - started);
    return { at, rows: assembled };
  }

  return {
    repo: opts.repo,
    join,
    groupBy,
    async fetchJoins(joinNames, raw, at, o) {
      const defs = [...new Set(joinNames)].map(join);
      const { at: used, rows } = await run(defs, raw, at, o?.fromQuery ?? false);
      const out: Record<string, FeatureRow[]> = {};
      defs.forEach((d, i) => (out[d.name] = rows[i]!));
      return { at: used, joins: out };
    },
    async fetchGroupBy(name, raw, at, o) {
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
      const { at: used, rows } = await run([def], raw, at, o?.fromQuery ?? false);
      return { at: used, rows: rows[0]! };
    },
  };
}

function list(names: Iterable<string>): string {
  const all = [...names].map((n) => `'${n}'`);
  return all.length === 0 ? 'nothing' : all.join(', ');
}
