import { deepFreeze } from '../define/deep-freeze.ts';
import { featureNames } from '../define/feature-refs.ts';
import type { GroupByDef, JoinDef, SourceDef } from '../define/types.ts';
import { refuseBroken } from '../define/definition-context.ts';
import { closeRepo, type RepoDefs } from '../define/validate-repo.ts';
import type { Plan, PlanGroupBy, PlanJoin, PlanSource } from './plan-ir.ts';
import { canonicalCode } from './canonical-code.ts';
import { semanticHash } from './semantic-hash.ts';

/** Plan node of a source. */
export function sourceNode(source: SourceDef): PlanSource {
  return {
    kind: 'source',
    name: source.name,
    path: source.path,
    format: source.format,
    timeColumn: source.timeColumn,
    schema: Object.fromEntries(
      Object.entries(source.schema).map(([n, c]) => [n, { type: c.type, nullable: c.nullable }]),
    ),
    derived: Object.entries(source.derived).map(([n, d]) => ({
      name: n,
      type: d.type,
      nullable: d.nullable,
      code: canonicalCode(d.code),
    })),
    filter: source.filterCode === undefined ? null : canonicalCode(source.filterCode),
    ...(source.owner !== undefined ? { owner: source.owner } : {}),
    ...(source.description !== undefined ? { description: source.description } : {}),
  };
}

/** Plan node of a group-by, with its semantic hash. */
export function groupByNode(groupBy: GroupByDef): PlanGroupBy {
  return {
    kind: 'groupBy',
    name: groupBy.name,
    hash: semanticHash(groupBy),
    source: groupBy.source.name,
    keys: [...groupBy.keys],
    aggregations: groupBy.aggregations.map((a) => ({
      op: a.op,
      input: a.input,
      params: { ...a.params },
      windows: a.windows.map((w) => ({ label: w.label, sizeMs: w.sizeMs, hopMs: w.hopMs })),
      names: [...a.names],
    })),
    ...(groupBy.owner !== undefined ? { owner: groupBy.owner } : {}),
    ...(groupBy.description !== undefined ? { description: groupBy.description } : {}),
  };
}

/** Plan node of a join. */
export function joinNode(join: JoinDef): PlanJoin {
  return {
    kind: 'join',
    name: join.name,
    left: join.left.name,
    parts: join.parts.map((p) => ({
      groupBy: p.groupBy.name,
      hash: semanticHash(p.groupBy),
      keyMapping: { ...p.keyMapping },
      ...(p.prefix !== undefined ? { prefix: p.prefix } : {}),
    })),
    derivations: join.derivations.map((d) => ({ name: d.name, type: d.type, code: canonicalCode(d.code) })),
    features: featureNames(join),
    ...(join.owner !== undefined ? { owner: join.owner } : {}),
    ...(join.description !== undefined ? { description: join.description } : {}),
  };
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Compiles definitions (plus everything they reference) into the canonical plan, each list sorted by name.
 * Throws `TesseraDefinitionError` for a definition a failed `loadRepo` left broken in the module cache.
 *
 * @example
 * canonicalJson(buildPlan({ sources: [], groupBys: [], joins: [fraudModel] }), 2) // what `tessera plan --json` prints
 */
export function buildPlan(repo: RepoDefs): Plan {
  const all = closeRepo(repo);
  refuseBroken([...all.sources, ...all.groupBys, ...all.joins]);
  return deepFreeze({
    kind: 'plan',
    version: 1,
    sources: all.sources.map(sourceNode).sort(byName),
    groupBys: all.groupBys.map(groupByNode).sort(byName),
    joins: all.joins.map(joinNode).sort(byName),
  });
}
