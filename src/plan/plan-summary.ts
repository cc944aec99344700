import type { Plan } from './plan-ir.ts';

function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => r[i]!.length))) ?? [];
  return rows.map(
    (r) => '  ' + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '),
  );
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The human-readable summary `tessera plan` prints: group-bys with hash prefix and feature count, joins,
 * and group-bys that share a computation (equal semantic hash).
 *
 * @example
 * renderPlanSummary(plan)
 * // Plan: 1 source, 2 group-bys, 1 join
 * // Group-bys
 * //   card_stats  #3f2a9c1e0b  source charges  keys card_id  12 features
 */
export function renderPlanSummary(plan: Plan): string {
  const lines = [
    `Plan: ${plural(plan.sources.length, 'source')}, ${plural(plan.groupBys.length, 'group-by')}, ${plural(plan.joins.length, 'join')}`,
  ];
  if (plan.sources.length > 0) {
    lines.push('', 'Sources');
    lines.push(
      ...table(
        plan.sources.map((s) => [
          s.name,
          s.path,
          `time ${s.timeColumn}`,
          plural(Object.keys(s.schema).length + s.derived.length, 'column'),
        ]),
      ),
    );
  }
  if (plan.groupBys.length > 0) {
    lines.push('', 'Group-bys');
    lines.push(
      ...table(
        plan.groupBys.map((g) => [
          g.name,
          `#${g.hash.slice(0, 10)}`,
          `source ${g.source}`,
          `keys ${g.keys.join(',')}`,
          plural(
            g.aggregations.reduce((n, a) => n + a.names.length, 0),
            'feature',
          ),
          g.owner ? `owner ${g.owner}` : '',
        ]),
      ).map((l) => l.trimEnd()),
    );
  }
  if (plan.joins.length > 0) {
    lines.push('', 'Joins');
    lines.push(
      ...table(
        plan.joins.map((j) => [
          j.name,
          `left ${j.left}`,
          `parts ${j.parts.map((p) => (p.prefix ? `${p.prefix}:${p.groupBy}` : p.groupBy)).join(', ')}`,
          `${plural(j.features.length, 'feature')}${j.derivations.length > 0 ? ` (${j.derivations.length} derived)` : ''}`,
        ]),
      ),
    );
  }
  const byHash = new Map<string, string[]>();
  for (const g of plan.groupBys) byHash.set(g.hash, [...(byHash.get(g.hash) ?? []), g.name]);
  const shared = [...byHash.entries()].filter(([, names]) => names.length > 1);
  if (shared.length > 0) {
    lines.push('', 'Shared computations (equal semantic hash, computed and stored once)');
    lines.push(...shared.map(([hash, names]) => `  #${hash.slice(0, 10)}  ${names.join(', ')}`));
  }
  return lines.join('\n');
}
