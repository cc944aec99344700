/**
 * A small seeded PRNG and the samplers the charge generator needs.
 *
 * Math.random cannot be seeded, and the demo promises "same seed → same data", so every random choice in
 * the generator goes through one `Rng`. The core is sfc32 (a 128-bit-state counter generator): fast in JS,
 * good statistical quality for simulation, and trivially seedable from a 32-bit integer via splitmix32.
 */
export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  /** Uniform float in [lo, hi). */
  float(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** Standard normal variate (Box–Muller). */
  normal(): number;
  /** Log-normal variate: exp(mu + sigma * N(0,1)). */
  logNormal(mu: number, sigma: number): number;
  /** An independent generator derived from this one (so sub-streams don't shift when one changes). */
  fork(): Rng;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Creates a seeded generator.
 *
 * @example
 * const rng = createRng(42);
 * rng.int(1, 6); // same sequence of dice for seed 42, on every machine
 */
export function createRng(seed: number): Rng {
  const init = splitmix32(seed);
  let a = init();
  let b = init();
  let c = init();
  let d = init();
  const nextU32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  // Warm up: the first outputs of sfc32 are correlated with the seed.
  for (let i = 0; i < 12; i++) nextU32();
  const next = (): number => nextU32() / 4294967296;
  const rng: Rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    float: (lo, hi) => lo + next() * (hi - lo),
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)],
    normal: () => {
      const u = 1 - next(); // (0, 1]: log(0) would be -Infinity
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    logNormal: (mu, sigma) => Math.exp(mu + sigma * rng.normal()),
    fork: () => createRng(nextU32()),
  };
  return rng;
}

/**
 * Samples indices 0..n-1 with probability proportional to `weights[i]`, in O(log n) per draw.
 *
 * @example
 * const zipf = weightedSampler(Array.from({ length: 100 }, (_, r) => 1 / (r + 1)));
 * zipf(rng); // 0 is the most frequent index
 */
export function weightedSampler(weights: ArrayLike<number>): (rng: Rng) => number {
  const cdf = new Float64Array(weights.length);
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    total += weights[i];
    cdf[i] = total;
  }
  if (!(total > 0)) throw new Error(`weightedSampler: weights must have a positive sum (got ${total}).`);
  return (rng) => {
    const x = rng.next() * total;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/** Zipf weights 1/rank^s for ranks 1..n: a few very popular items and a long tail. */
export function zipfWeights(n: number, s: number): Float64Array {
  const w = new Float64Array(n);
  for (let r = 0; r < n; r++) w[r] = 1 / Math.pow(r + 1, s);
  return w;
}
