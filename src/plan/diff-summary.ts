import type { PlanDiff } from './diff-plans.ts';

const short = (hash: string) => `#${hash.slice(0, 10)}`;

/**
 * The human-readable form of a plan diff, one line per change; group-bys whose hash changed need their
 * tiles and backfills recomputed, metadata-only changes do not.
 *
 * @example
 * renderPlanDiff(diffPlans(before, after))
 * // ~ groupBy card_stats  #ab12…  → #cd34…  (recompute)
 * // > groupBy merchant_stats → merch  #ef56…  (renamed: same computation, stored tiles kept)
 * // ~ join fraud_model  features +card_stats_count_30d -card_stats_count_1d
 */
export function renderPlanDiff(diff: PlanDiff): string {
  if (diff.empty) return 'No changes.';
  const lines: string[] = [];
  for (const g of diff.groupBys.added) lines.push(`+ groupBy ${g.name}  ${short(g.hash)}`);
  for (const g of diff.groupBys.removed) lines.push(`- groupBy ${g.name}  ${short(g.hash)}`);
  for (const g of diff.groupBys.renamed)
    lines.push(
      `> groupBy ${g.from} → ${g.to}  ${short(g.hash)}  (renamed: same computation, stored tiles kept)`,
    );
  for (const g of diff.groupBys.changed) {
    lines.push(
      g.semantic
        ? `~ groupBy ${g.name}  ${short(g.fromHash)} → ${short(g.toHash)}  (recompute)`
        : `~ groupBy ${g.name}  ${short(g.toHash)}  (names, owner or docs only)`,
    );
  }
  for (const name of diff.joins.added) lines.push(`+ join ${name}`);
  for (const name of diff.joins.removed) lines.push(`- join ${name}`);
  for (const j of diff.joins.featureChanges) {
    const features = [...j.featuresAdded.map((f) => `+${f}`), ...j.featuresRemoved.map((f) => `-${f}`)];
    lines.push(
      features.length > 0
        ? `~ join ${j.name}  features ${features.join(' ')}`
        : `~ join ${j.name}  (same features: parts, keys, derivation code or docs changed)`,
    );
  }
  return lines.join('\n');
}
