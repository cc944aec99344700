import { aggSpec, type AggOptions, type AggSpec, type WindowInput } from './aggregation-spec.ts';

type Names = readonly string[] | undefined;
type Windows = readonly WindowInput[];

/**
 * Number of events (no input column) or of events whose input is non-null. Empty window → 0.
 *
 * @example
 * count({ windows: ['5m', '1h'] })            // card_stats_count_5m, card_stats_count_1h
 * count('ip', { windows: ['1d'] })            // card_stats_ip_count_1d
 */
export function count<const W extends Windows, const N extends Names = undefined>(
  options: AggOptions<W, N>,
): AggSpec<'count', null, W, N>;
export function count<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
): AggSpec<'count', C, W, N>;
export function count(a: string | AggOptions<Windows, Names>, b?: AggOptions<Windows, Names>): AggSpec {
  return typeof a === 'string' ? aggSpec('count', a, {}, b) : aggSpec('count', null, {}, a);
}

/** Sum of non-null inputs; null for an empty window. @example sum('amount', { windows: ['1h'] }) // card_stats_amount_sum_1h */
export function sum<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('sum', input, {}, options);
}

/** Mean (sum / count in float64); null for an empty window. @example avg('amount', { windows: [{ size: '1d', hop: '10m' }] }) */
export function avg<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('avg', input, {}, options);
}

/** Smallest input; null for an empty window. @example min('amount', { windows: ['1d'] }) // card_stats_amount_min_1d */
export function min<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('min', input, {}, options);
}

/** Largest input; null for an empty window. @example max('amount', { windows: ['1d'] }) // card_stats_amount_max_1d */
export function max<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('max', input, {}, options);
}

/** Population variance (Welford); null for an empty window. @example variance('amount', { windows: ['7d'] }) */
export function variance<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('variance', input, {}, options);
}

/** Population standard deviation; null for an empty window. @example stddev('amount', { windows: ['7d'] }) */
export function stddev<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('stddev', input, {}, options);
}

/** Value of the earliest event by time. @example first('merchant_id', { windows: ['lifetime'] }) // card_stats_merchant_id_first_lifetime */
export function first<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('first', input, {}, options);
}

/** Value of the latest event by time. @example last('merchant_id', { windows: ['1d'] }) // card_stats_merchant_id_last_1d */
export function last<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('last', input, {}, options);
}

/** Options of the *_k ops: how many values to keep. */
export interface KOptions<W extends Windows, N extends Names> extends AggOptions<W, N> {
  readonly k: number;
}

/** Up to k earliest values, oldest first. @example firstK('merchant_id', { k: 3, windows: ['1d'] }) // ..._merchant_id_first_k_1d */
export function firstK<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: KOptions<W, N>,
) {
  return aggSpec('first_k', input, { k: options?.k }, options);
}

/** Up to k latest values, newest first. @example lastK('merchant_id', { k: 5, windows: ['lifetime'] }) */
export function lastK<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: KOptions<W, N>,
) {
  return aggSpec('last_k', input, { k: options?.k }, options);
}

/** The k largest values, largest first. @example topK('amount', { k: 3, windows: ['7d'] }) // ..._amount_top_k_7d */
export function topK<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: KOptions<W, N>,
) {
  return aggSpec('top_k', input, { k: options?.k }, options);
}

/** The k smallest values, smallest first. @example bottomK('amount', { k: 3, windows: ['7d'] }) */
export function bottomK<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: KOptions<W, N>,
) {
  return aggSpec('bottom_k', input, { k: options?.k }, options);
}

/** Exact number of distinct values; 0 for an empty window. @example uniqueCount('merchant_id', { windows: ['7d'] }) */
export function uniqueCount<
  const C extends string,
  const W extends Windows,
  const N extends Names = undefined,
>(input: C, options: AggOptions<W, N>) {
  return aggSpec('unique_count', input, {}, options);
}

/** HyperLogLog estimate of distinct values (same number offline and online). @example approxUniqueCount('ip', { windows: ['30d'] }) */
export function approxUniqueCount<
  const C extends string,
  const W extends Windows,
  const N extends Names = undefined,
>(input: C, options: AggOptions<W, N>) {
  return aggSpec('approx_unique_count', input, {}, options);
}

/** Options of approx_percentile: the quantiles to report, each in [0, 1]. */
export interface PercentileOptions<W extends Windows, N extends Names> extends AggOptions<W, N> {
  readonly percentiles: readonly number[];
}

/**
 * Quantiles from a deterministic sketch (1% relative accuracy); one array per window.
 *
 * @example
 * approxPercentile('amount', { percentiles: [0.5, 0.95], windows: ['7d'] }) // card_stats_amount_approx_percentile_7d: [p50, p95]
 */
export function approxPercentile<
  const C extends string,
  const W extends Windows,
  const N extends Names = undefined,
>(input: C, options: PercentileOptions<W, N>) {
  const percentiles = options?.percentiles;
  return aggSpec(
    'approx_percentile',
    input,
    { percentiles: Array.isArray(percentiles) ? Object.freeze([...percentiles]) : percentiles },
    options,
  );
}

/** Map from value (as a string) to its count; `{}` for an empty window. @example histogram('country', { windows: ['30d'] }) */
export function histogram<const C extends string, const W extends Windows, const N extends Names = undefined>(
  input: C,
  options: AggOptions<W, N>,
) {
  return aggSpec('histogram', input, {}, options);
}
