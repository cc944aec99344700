/**
 * Planted fraud patterns. Each attack returns its charges (all labeled `is_fraud`), so the demo's features
 * have something real to find:
 *
 * - card testing: a stolen card is tried with tiny amounts at many different merchants within minutes,
 *   often followed by a large cash-out charge;
 * - velocity burst: a stolen card makes a quick series of large purchases from a new device;
 * - IP ring: one IP (a fraud farm) pays with many different cards over a few days, with throw-away e-mails.
 */
import type { Charge, FraudPattern } from './charge.ts';
import type { Rng } from './random.ts';
import {
  CARD_TESTING_CATEGORIES,
  CASH_OUT_CATEGORIES,
  RISKY_COUNTRIES,
  THROWAWAY_DOMAINS,
  randomDevice,
  randomIp,
  type Card,
  type Channel,
  type World,
} from './world.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

interface Attacker {
  readonly ip: string;
  readonly device: string;
  readonly country: string;
}

function attacker(rng: Rng, card: Card): Attacker {
  // Fraudsters often proxy through the victim's country; the rest shows up abroad.
  const country = rng.chance(0.6) ? rng.pick(RISKY_COUNTRIES) : card.country;
  return { ip: randomIp(rng), device: randomDevice(rng), country };
}

function merchantIn(rng: Rng, world: World, categories: readonly string[]): number {
  const list = world.merchantsByCategory.get(rng.pick(categories));
  if (!list || list.length === 0) return world.sampleMerchant(rng);
  return rng.pick(list);
}

function fraudCharge(
  world: World,
  card: Card,
  merchantIndex: number,
  ts: number,
  amount: number,
  who: Attacker,
  channel: Channel,
  pattern: FraudPattern,
  emailDomain = card.emailDomain,
): Charge {
  const merchant = world.merchants[merchantIndex];
  return {
    ts,
    charge_id: '',
    card_id: card.id,
    merchant_id: merchant.id,
    merchant_category: merchant.category.name,
    amount: Math.round(amount * 100) / 100,
    email_domain: emailDomain,
    ip: who.ip,
    device_id: who.device,
    country: who.country,
    card_bin: card.bin,
    channel,
    is_fraud: true,
    fraud_pattern: pattern,
  };
}

/** Card testing: 8–25 tiny charges at distinct merchants a few seconds apart, then maybe a cash-out. */
export function cardTesting(rng: Rng, world: World, startMs: number): Charge[] {
  const card = world.cards[world.sampleCard(rng)];
  const who = attacker(rng, card);
  const out: Charge[] = [];
  const used = new Set<number>();
  let ts = startMs;
  const attempts = rng.int(8, 25);
  for (let i = 0; i < attempts; i++) {
    let m = merchantIn(rng, world, CARD_TESTING_CATEGORIES);
    for (let retry = 0; retry < 5 && used.has(m); retry++)
      m = merchantIn(rng, world, CARD_TESTING_CATEGORIES);
    used.add(m);
    out.push(fraudCharge(world, card, m, ts, rng.float(0.5, 4.99), who, 'web', 'card_testing'));
    ts += rng.int(5, 45) * SECOND;
  }
  if (rng.chance(0.6)) {
    const cashOuts = rng.int(1, 3);
    for (let i = 0; i < cashOuts; i++) {
      ts += rng.int(1, 10) * MINUTE;
      const m = merchantIn(rng, world, CASH_OUT_CATEGORIES);
      out.push(
        fraudCharge(world, card, m, ts, rng.logNormal(Math.log(600), 0.4), who, 'web', 'card_testing'),
      );
    }
  }
  return out;
}

/** Velocity burst: 4–12 large purchases from a new device within about an hour. */
export function velocityBurst(rng: Rng, world: World, startMs: number): Charge[] {
  const card = world.cards[world.sampleCard(rng)];
  const who = attacker(rng, card);
  const channel: Channel = rng.chance(0.5) ? 'app' : 'web';
  const out: Charge[] = [];
  let ts = startMs;
  const n = rng.int(4, 12);
  for (let i = 0; i < n; i++) {
    const m = merchantIn(rng, world, CASH_OUT_CATEGORIES);
    out.push(
      fraudCharge(world, card, m, ts, rng.logNormal(Math.log(350), 0.5), who, channel, 'velocity_burst'),
    );
    ts += rng.int(1, 8) * MINUTE + rng.int(0, 59) * SECOND;
  }
  return out;
}

/**
 * IP ring: one IP and a few devices pay with `cards` different stolen cards (1–3 charges each) spread over
 * 1–4 days, using throw-away e-mail domains.
 */
export function ipRing(rng: Rng, world: World, startMs: number, cards: number): Charge[] {
  const ip = randomIp(rng);
  const devices = Array.from({ length: rng.int(1, 3) }, () => randomDevice(rng));
  const country = rng.pick(RISKY_COUNTRIES);
  const span = rng.int(1, 4) * 24 * HOUR;
  const out: Charge[] = [];
  for (let c = 0; c < cards; c++) {
    const card = world.cards[world.sampleCard(rng)];
    const who: Attacker = { ip, device: rng.pick(devices), country };
    const email = rng.pick(THROWAWAY_DOMAINS);
    let ts = startMs + Math.floor(rng.next() * span);
    const n = rng.int(1, 3);
    for (let i = 0; i < n; i++) {
      const m = merchantIn(rng, world, [...CASH_OUT_CATEGORIES, 'digital_goods']);
      out.push(
        fraudCharge(world, card, m, ts, rng.logNormal(Math.log(120), 0.6), who, 'web', 'ip_ring', email),
      );
      ts += rng.int(2, 90) * MINUTE;
    }
  }
  return out;
}

/** How many attacks of each kind a dataset of `events` charges gets (about 0.5% of charges are fraud). */
export function attackCounts(events: number): {
  cardTesting: number;
  velocity: number;
  rings: number;
  ringCards: number;
} {
  return {
    cardTesting: Math.max(1, Math.round(events / 8000)),
    velocity: Math.max(1, Math.round(events / 6000)),
    // Frequent, mid-sized rings: every month of data holds a few, so a training window sees them.
    rings: Math.max(1, Math.round(events / 20_000)),
    ringCards: Math.max(5, Math.min(30, Math.round(events / 8000))),
  };
}
