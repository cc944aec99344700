import type { PlanDiff } from './diff-plans.ts';

const short = (hash: string) => `#${hash.slice(0, 10)}`;

/**
 * The human-readable form of a plan diff, one line per change; group-bys whose hash changed need their
 * tiles and backfills recomputed, metadata-only changes do not.
 *
 * @example
 * renderPlanDiff(diffPlans(before, after))
 * // ~ groupBy card_stats  #ab12…  → #cd34…  (recompute)
 */
export function renderPlanDiff(diff: PlanDiff): string {
  if (diff.empty) return 'No changes.';
  const lines: string[] = [];
  for (const g of diff.groupBys.added) lines.push(`+ groupBy ${g.name}  ${short(g.hash)}`);
  for (const g of diff.groupBys.removed) lines.push(`- groupBy ${g.name}  ${short(g.hash)}`);
  for (const g of diff.groupBys.changed) {
    lines.push(
      g.semantic
        ? `~ groupBy ${g.name}  ${short(g.fromHash)} → ${short(g.toHash)}  (recompute)`
        : `~ groupBy ${g.name}  ${short(g.toHash)}  (names, owner or docs only)`,
    );
  }
  for (const name of diff.joins.added) lines.push(`+ join ${name}`);
  for (const name of diff.joins.removed) lines.push(`- join ${name}`);
  for (const name of diff.joins.changed) lines.push(`~ join ${name}`);
  return lines.join('\n');
}
