/**
 * The candidate nearest to `name` by edit distance (case-insensitive; adjacent swaps count 1), if within
 * a quarter of its length (at least 1); the first such candidate on ties. Null when none is that close.
 *
 * @example
 * closestName('ipp', ['ip', 'amount']); // 'ip'
 * closestName('Amuont', ['ip', 'amount']); // 'amount'
 */
export function closestName(name: string, candidates: readonly string[]): string | null {
  let a: string | undefined;
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const limit = Math.max(1, Math.floor(c.length / 4));
    // Lengths first: a client's megabyte-long name is not lowercased for nothing.
    if (Math.abs(name.length - c.length) > limit) continue;
    a ??= name.toLowerCase();
    const d = editDistance(a, c.toLowerCase(), limit);
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance, or `limit + 1` as soon as it must exceed `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, prev2[j - 2]! + 1);
      cur.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    prev2 = prev;
    prev = cur;
  }
  return prev[b.length]!;
}
