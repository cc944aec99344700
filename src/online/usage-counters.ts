/**
 * Names and helpers of the usage counters kept in the online store (`OnlineStore.addCounters`), so fetch
 * costs survive restarts and add up across serving nodes that share a store.
 *
 * Names (group-bys by store id, see group-by-id.ts; joins by name, `groupby:<name>` for direct group-by
 * fetches):
 * - `usage/gb/<id>/fetches`: `(group-by, key)` pairs read by fetches (each distinct pair once per request);
 * - `usage/gb/<id>/fetch_us`: the group-by's share of fetch latency in µs (a request's latency split over its
 *   group-bys by their share of the request's reads);
 * - `usage/gb/<id>/upload_ms`, `usage/gb/<id>/upload_events`: `tessera upload` wall time and events;
 * - `usage/join/<join>/requests`, `.../rows`, `.../fetch_us`: requests, rows and summed latency;
 * - `usage/join/<join>/lookups/<id>`: key lookups of the join's parts on that group-by (row × part with a
 *   non-null key), the basis for splitting a shared group-by's cost across joins;
 * - `usage/join/<join>/latency/<b>`: requests per latency bucket `b` (see `latencyBucket`).
 */
export const USAGE_PREFIX = 'usage/';

export const gbCounter = (id: string, what: 'fetches' | 'fetch_us' | 'upload_ms' | 'upload_events') =>
  `usage/gb/${id}/${what}`;
export const joinCounter = (join: string, what: 'requests' | 'rows' | 'fetch_us') =>
  `usage/join/${join}/${what}`;
export const joinLookups = (join: string, id: string) => `usage/join/${join}/lookups/${id}`;
export const joinLatencyBucket = (join: string, bucket: number) => `usage/join/${join}/latency/${bucket}`;

/** Latency buckets grow by 2^(1/4) (~19%) from 10 µs; the last one (~335 s) takes everything above. */
const BUCKET_BASE_US = 10;
const BUCKETS_PER_DOUBLING = 4;
export const LATENCY_BUCKETS = 101;

/**
 * The bucket of a latency: bucket `b` holds latencies in `(upper(b-1), upper(b)]`, bucket 0 everything up
 * to 10 µs. Fixed buckets, so histograms from many nodes add up counter by counter.
 *
 * @example
 * latencyBucket(0.25); // 22: (~0.24 ms, ~0.27 ms]
 */
export function latencyBucket(ms: number): number {
  const us = ms * 1000;
  if (!(us > BUCKET_BASE_US)) return 0;
  const b = Math.ceil(BUCKETS_PER_DOUBLING * Math.log2(us / BUCKET_BASE_US) - 1e-9);
  return Math.min(b, LATENCY_BUCKETS - 1);
}

/** Upper bound (ms) of a latency bucket. */
export function bucketUpperMs(b: number): number {
  return (BUCKET_BASE_US * 2 ** (b / BUCKETS_PER_DOUBLING)) / 1000;
}

/**
 * The `q` quantile (0..1) of a bucketed histogram, as the upper bound of the bucket holding it: an
 * over-estimate by at most one bucket width (19%). Null without observations.
 *
 * @example
 * quantileMs(new Map([[22, 99], [40, 1]]), 0.99); // ~0.27 ms
 */
export function quantileMs(buckets: ReadonlyMap<number, number>, q: number): number | null {
  let total = 0;
  for (const n of buckets.values()) total += n;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const b of [...buckets.keys()].sort((x, y) => x - y)) {
    seen += buckets.get(b)!;
    if (seen >= rank) return bucketUpperMs(b);
  }
  return bucketUpperMs(LATENCY_BUCKETS - 1);
}

/** A parsed usage counter name (see the list at the top of this file); null for unknown names. */
export type ParsedCounter =
  | { readonly kind: 'gb'; readonly id: string; readonly what: string }
  | { readonly kind: 'join'; readonly join: string; readonly what: string }
  | { readonly kind: 'lookups'; readonly join: string; readonly id: string }
  | { readonly kind: 'latency'; readonly join: string; readonly bucket: number };

export function parseCounterName(name: string): ParsedCounter | null {
  const parts = name.split('/');
  if (parts[0] !== 'usage') return null;
  if (parts[1] === 'gb' && parts.length === 4) return { kind: 'gb', id: parts[2]!, what: parts[3]! };
  if (parts[1] !== 'join') return null;
  const join = parts[2]!;
  if (parts.length === 4) return { kind: 'join', join, what: parts[3]! };
  if (parts.length === 5 && parts[3] === 'lookups') return { kind: 'lookups', join, id: parts[4]! };
  if (parts.length === 5 && parts[3] === 'latency')
    return { kind: 'latency', join, bucket: Number(parts[4]) };
  return null;
}

/**
 * Collects counter deltas in memory and adds them to the store in one `addCounters` call per flush; a
 * failed flush keeps its deltas for the next one, so no counted fetch is lost while the store is down.
 */
export class CounterBuffer {
  private pending = new Map<string, number>();

  add(name: string, delta: number): void {
    // A non-finite delta would make every later flush fail (the store takes safe integers only).
    if (!Number.isFinite(delta)) throw new Error(`usage counter '${name}': delta ${delta} is not finite`);
    if (delta !== 0) this.pending.set(name, (this.pending.get(name) ?? 0) + delta);
  }

  /** Adds the whole part of every delta to the store; fractions (e.g. of a µs) stay for the next flush. */
  async flushTo(store: { addCounters(d: Record<string, number>): Promise<void> }): Promise<void> {
    const batch: Record<string, number> = {};
    let any = false;
    for (const [name, d] of this.pending) {
      const whole = Math.trunc(d);
      if (whole === 0) continue;
      batch[name] = whole;
      any = true;
      const rest = d - whole;
      if (rest === 0) this.pending.delete(name);
      else this.pending.set(name, rest);
    }
    if (!any) return;
    try {
      await store.addCounters(batch);
    } catch (error) {
      for (const [name, d] of Object.entries(batch)) this.add(name, d);
      throw error;
    }
  }
}
