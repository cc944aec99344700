/**
 * The synthetic population behind the fraud demo: cards, merchants, BINs, countries, e-mail domains.
 *
 * Everything is drawn once from the seed, so a given (events, seed) always yields the same world. Sizes
 * scale with the number of events (about 40 charges per card and 200 per merchant over the period), which
 * keeps per-entity histories realistic whether the demo writes 1k or 50M events.
 */
import { type Rng, weightedSampler, zipfWeights } from './random.ts';

export type Channel = 'web' | 'app' | 'pos';

export interface MerchantCategory {
  readonly name: string;
  /** Median ticket size in dollars; amounts are log-normal around it. */
  readonly medianAmount: number;
  readonly sigma: number;
  /** Share of card-present (POS) charges; the rest split between web and app. */
  readonly posShare: number;
}

export const CATEGORIES: readonly MerchantCategory[] = [
  { name: 'grocery', medianAmount: 42, sigma: 0.6, posShare: 0.85 },
  { name: 'restaurants', medianAmount: 31, sigma: 0.55, posShare: 0.7 },
  { name: 'fuel', medianAmount: 48, sigma: 0.35, posShare: 0.95 },
  { name: 'fashion', medianAmount: 75, sigma: 0.7, posShare: 0.4 },
  { name: 'electronics', medianAmount: 210, sigma: 0.9, posShare: 0.3 },
  { name: 'travel', medianAmount: 380, sigma: 0.8, posShare: 0.05 },
  { name: 'pharmacy', medianAmount: 24, sigma: 0.5, posShare: 0.8 },
  { name: 'digital_goods', medianAmount: 12, sigma: 0.7, posShare: 0 },
  { name: 'gaming', medianAmount: 19, sigma: 0.6, posShare: 0 },
  { name: 'subscriptions', medianAmount: 14, sigma: 0.4, posShare: 0 },
];

/** Categories where fraudsters test stolen cards with tiny amounts: no shipping, instant delivery. */
export const CARD_TESTING_CATEGORIES = ['digital_goods', 'gaming', 'subscriptions'];
/** Categories where fraudsters cash out: resellable goods. */
export const CASH_OUT_CATEGORIES = ['electronics', 'fashion', 'travel'];

const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'CA', 'BR', 'IN', 'ES', 'NL', 'MX'];
const COUNTRY_WEIGHTS = [45, 10, 8, 7, 7, 6, 5, 5, 4, 3];
/** Countries fraud traffic appears to come from (proxies, foreign cash-out rings). */
export const RISKY_COUNTRIES = ['NG', 'RU', 'VN', 'ID', 'RO'];

const EMAIL_DOMAINS = [
  'gmail.com',
  'yahoo.com',
  'outlook.com',
  'icloud.com',
  'hotmail.com',
  'aol.com',
  'proton.me',
];
const EMAIL_WEIGHTS = [50, 12, 12, 10, 8, 4, 4];
/** Throw-away domains used by fraud rings registering accounts in bulk. */
export const THROWAWAY_DOMAINS = ['mailinator.com', 'tempmail.dev', 'guerrillamail.com'];

export interface Card {
  readonly id: string;
  readonly bin: string;
  readonly country: string;
  readonly emailDomain: string;
  readonly devices: readonly string[];
  readonly ips: readonly string[];
  /** Multiplier on merchant ticket sizes: some people spend more. */
  readonly spendFactor: number;
  /** Indices of merchants this card uses habitually. */
  readonly favorites: readonly number[];
}

export interface Merchant {
  readonly id: string;
  readonly category: MerchantCategory;
  readonly country: string;
}

export interface World {
  readonly cards: readonly Card[];
  readonly merchants: readonly Merchant[];
  /** Draws a card index, weighted by how active each card is. */
  readonly sampleCard: (rng: Rng) => number;
  /** Draws a merchant index with Zipf popularity. */
  readonly sampleMerchant: (rng: Rng) => number;
  /** Merchant indices per category name. */
  readonly merchantsByCategory: ReadonlyMap<string, readonly number[]>;
}

/** A random IPv4 address in public-looking space. */
export function randomIp(rng: Rng): string {
  return `${rng.int(11, 223)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
}

/** A random device fingerprint id. */
export function randomDevice(rng: Rng): string {
  return `dev_${Math.floor(rng.next() * 2 ** 32)
    .toString(16)
    .padStart(8, '0')}`;
}

/** Builds the population for a dataset of `events` charges. */
export function createWorld(rng: Rng, events: number): World {
  const nMerchants = Math.max(30, Math.round(events / 200));
  const nCards = Math.max(50, Math.round(events / 40));
  const nBins = Math.max(20, Math.min(400, Math.round(nCards / 50)));
  const sampleCountry = weightedSampler(COUNTRY_WEIGHTS);
  const sampleEmail = weightedSampler(EMAIL_WEIGHTS);

  const bins = Array.from({ length: nBins }, () => ({
    bin: String(rng.int(400000, 559999)),
    country: COUNTRIES[sampleCountry(rng)],
  }));

  const merchants: Merchant[] = [];
  const merchantsByCategory = new Map<string, number[]>();
  for (let i = 0; i < nMerchants; i++) {
    const category = CATEGORIES[i % CATEGORIES.length];
    merchants.push({
      id: `mer_${String(i).padStart(6, '0')}`,
      category,
      country: COUNTRIES[sampleCountry(rng)],
    });
    const list = merchantsByCategory.get(category.name) ?? [];
    list.push(i);
    merchantsByCategory.set(category.name, list);
  }
  // Popularity rank is shuffled against the index so every category has some popular merchants.
  const rankOf = shuffle(
    rng,
    Array.from({ length: nMerchants }, (_, i) => i),
  );
  const zipf = zipfWeights(nMerchants, 1.0);
  const merchantWeights = new Float64Array(nMerchants);
  for (let i = 0; i < nMerchants; i++) merchantWeights[i] = zipf[rankOf[i]];
  const sampleMerchant = weightedSampler(merchantWeights);

  const cards: Card[] = [];
  const activity = new Float64Array(nCards);
  for (let i = 0; i < nCards; i++) {
    const bin = bins[rng.int(0, nBins - 1)];
    const favorites = Array.from({ length: rng.int(3, 8) }, () => sampleMerchant(rng));
    cards.push({
      id: `card_${String(i).padStart(7, '0')}`,
      bin: bin.bin,
      country: bin.country,
      emailDomain: EMAIL_DOMAINS[sampleEmail(rng)],
      devices: Array.from({ length: rng.int(1, 2) }, () => randomDevice(rng)),
      ips: Array.from({ length: rng.int(1, 3) }, () => randomIp(rng)),
      spendFactor: rng.logNormal(0, 0.35),
      favorites,
    });
    activity[i] = rng.logNormal(0, 0.9);
  }
  return { cards, merchants, sampleCard: weightedSampler(activity), sampleMerchant, merchantsByCategory };
}

function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** A log-normal ticket size for a merchant and card, in dollars rounded to cents. */
export function ticketAmount(rng: Rng, merchant: Merchant, card: Card): number {
  const c = merchant.category;
  return Math.max(0.5, Math.round(c.medianAmount * card.spendFactor * rng.logNormal(0, c.sigma) * 100) / 100);
}

/** Picks a channel according to the merchant category's card-present share. */
export function channelFor(rng: Rng, merchant: Merchant): Channel {
  if (rng.chance(merchant.category.posShare)) return 'pos';
  return rng.chance(0.55) ? 'web' : 'app';
}
