/**
 * Legitimate card traffic: habitual merchants, home devices and IPs, daily and weekly seasonality.
 */
import type { Charge } from './charge.ts';
import type { Rng } from './random.ts';
import { weightedSampler } from './random.ts';
import { channelFor, randomIp, ticketAmount, type World } from './world.ts';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** Relative traffic per hour of day (UTC): quiet nights, lunch and evening peaks. */
const HOUR_WEIGHTS = [
  0.2, 0.12, 0.08, 0.07, 0.08, 0.15, 0.35, 0.6, 0.85, 1, 1.05, 1.1, 1.2, 1.1, 1.05, 1.05, 1.1, 1.2, 1.3, 1.3,
  1.15, 0.9, 0.6, 0.35,
];
/** Relative traffic per weekday, Sunday first (Date#getUTCDay order). */
const WEEKDAY_WEIGHTS = [0.9, 1, 1, 1.02, 1.05, 1.15, 1.2];
const sampleHour = weightedSampler(HOUR_WEIGHTS);

/** Share of legitimate charges labeled fraud anyway (friendly fraud, disputes): realistic label noise. */
const LABEL_NOISE = 0.001;
const REFUND_SHARE = 0.005;

/**
 * Splits `total` charges over `days` days starting at `startMs`, following weekly seasonality and mild
 * growth. Cumulative rounding makes the counts sum to exactly `total`.
 */
export function dailyCounts(total: number, days: number, startMs: number): number[] {
  const weights = Array.from({ length: days }, (_, d) => {
    const weekday = new Date(startMs + d * DAY_MS).getUTCDay();
    return WEEKDAY_WEIGHTS[weekday] * (1 + (0.15 * d) / days);
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts: number[] = [];
  let cumulative = 0;
  let assigned = 0;
  for (const w of weights) {
    cumulative += w;
    const upTo = Math.round((cumulative / sum) * total);
    counts.push(upTo - assigned);
    assigned = upTo;
  }
  return counts;
}

/** A random time within the day starting at `dayStartMs`, following the hourly traffic curve. */
export function timeInDay(rng: Rng, dayStartMs: number): number {
  return dayStartMs + sampleHour(rng) * HOUR_MS + Math.floor(rng.next() * HOUR_MS);
}

/**
 * One legitimate charge at `ts` by a card drawn by activity.
 *
 * @example
 * const charge = normalCharge(rng, world, Date.UTC(2026, 4, 1, 12));
 * charge.is_fraud; // almost always false
 */
export function normalCharge(rng: Rng, world: World, ts: number): Charge {
  const card = world.cards[world.sampleCard(rng)];
  const merchant = world.merchants[rng.chance(0.7) ? rng.pick(card.favorites) : world.sampleMerchant(rng)];
  const channel = channelFor(rng, merchant);
  let amount = ticketAmount(rng, merchant, card);
  if (rng.chance(REFUND_SHARE)) amount = -amount;
  const online = channel !== 'pos';
  const isFraud = rng.chance(LABEL_NOISE);
  return {
    ts,
    charge_id: '',
    card_id: card.id,
    merchant_id: merchant.id,
    merchant_category: merchant.category.name,
    amount,
    email_domain: card.emailDomain,
    ip: online ? (rng.chance(0.95) ? rng.pick(card.ips) : randomIp(rng)) : null,
    device_id: channel === 'app' || (channel === 'web' && rng.chance(0.9)) ? rng.pick(card.devices) : null,
    country: online ? card.country : rng.chance(0.95) ? card.country : merchant.country,
    card_bin: card.bin,
    channel,
    is_fraud: isFraud,
    fraud_pattern: isFraud ? 'other' : null,
  };
}
