/**
 * The whole synthetic dataset as a stream of days: legitimate traffic plus the planted attacks, each day
 * sorted by time. Streaming by day keeps memory bounded at any size (a day of 50M events over 120 days is
 * about 400k rows), while attacks that cross midnight still land in the right day.
 */
import type { Charge } from './charge.ts';
import { attackCounts, cardTesting, ipRing, velocityBurst } from './fraud-patterns.ts';
import { dailyCounts, normalCharge, timeInDay } from './normal-traffic.ts';
import { createRng } from './random.ts';
import { createWorld, type World } from './world.ts';

const DAY_MS = 86_400_000;

/** Fixed start so that a seed alone determines the data: 2026-05-01T00:00:00Z. */
export const DEFAULT_START_MS = Date.UTC(2026, 4, 1);
export const DEFAULT_DAYS = 120;
/** Below this the planted attacks would dominate the data. */
export const MIN_EVENTS = 500;

export interface ChargeDaysOptions {
  /** Total number of charges, including fraud and refunds. */
  readonly events: number;
  readonly seed: number;
  readonly startMs?: number;
  readonly days?: number;
}

/** What the generator planted, for the caller's summary. */
export interface ChargePlan {
  readonly world: World;
  readonly fraudEvents: number;
  readonly byPattern: Readonly<Record<string, number>>;
  readonly fromMs: number;
  readonly toMs: number;
  readonly days: () => Generator<Charge[]>;
}

/**
 * Plans a dataset and returns a generator of its days. The same options always give the same charges.
 *
 * @example
 * const plan = planCharges({ events: 10_000, seed: 7 });
 * for (const day of plan.days()) console.log(day.length); // 120 days, 10k charges in total
 */
export function planCharges(options: ChargeDaysOptions): ChargePlan {
  const { events, seed } = options;
  const startMs = options.startMs ?? DEFAULT_START_MS;
  const days = options.days ?? DEFAULT_DAYS;
  if (!Number.isInteger(events) || events < MIN_EVENTS) {
    throw new Error(
      `planCharges: events must be an integer >= ${MIN_EVENTS} (got ${events}); pass a larger --events.`,
    );
  }
  if (!Number.isInteger(days) || days < 7) {
    throw new Error(`planCharges: days must be an integer >= 7 (got ${days}) so attacks fit in the period.`);
  }
  const root = createRng(seed);
  const world = createWorld(root.fork(), events);
  const fraudRng = root.fork();
  // The traffic stream is re-created from this seed on every days() call, so days() can run more than once.
  const trafficSeed = Math.floor(root.next() * 4294967296);
  const endMs = startMs + days * DAY_MS;

  // Attacks start anywhere but the last 5 days, so multi-day rings finish inside the period.
  const attackStart = () => startMs + Math.floor(fraudRng.next() * (days - 5) * DAY_MS);
  const counts = attackCounts(events);
  const fraud: Charge[] = [];
  for (let i = 0; i < counts.cardTesting; i++) fraud.push(...cardTesting(fraudRng, world, attackStart()));
  for (let i = 0; i < counts.velocity; i++) fraud.push(...velocityBurst(fraudRng, world, attackStart()));
  for (let i = 0; i < counts.rings; i++)
    fraud.push(...ipRing(fraudRng, world, attackStart(), counts.ringCards));
  const planted = fraud.filter((c) => c.ts < endMs);

  const fraudByDay: Charge[][] = Array.from({ length: days }, () => []);
  const byPattern: Record<string, number> = {};
  for (const c of planted) {
    fraudByDay[Math.floor((c.ts - startMs) / DAY_MS)].push(c);
    byPattern[c.fraud_pattern!] = (byPattern[c.fraud_pattern!] ?? 0) + 1;
  }
  const perDay = dailyCounts(events - planted.length, days, startMs);

  function* generateDays(): Generator<Charge[]> {
    const rng = createRng(trafficSeed);
    let nextId = 0;
    for (let d = 0; d < days; d++) {
      const dayStart = startMs + d * DAY_MS;
      const day = fraudByDay[d].map((c) => ({ ...c }));
      for (let i = 0; i < perDay[d]; i++) day.push(normalCharge(rng, world, timeInDay(rng, dayStart)));
      day.sort((a, b) => a.ts - b.ts);
      for (const c of day) c.charge_id = `ch_${String(nextId++).padStart(10, '0')}`;
      yield day;
    }
  }
  return { world, fraudEvents: planted.length, byPattern, fromMs: startMs, toMs: endMs, days: generateDays };
}
