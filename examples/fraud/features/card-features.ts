import {
  approxPercentile,
  approxUniqueCount,
  avg,
  count,
  groupBy,
  histogram,
  last,
  lastK,
  max,
  stddev,
  sum,
  uniqueCount,
} from '../../../src/index.ts';
import { charges } from './charges.ts';

/** Per-card velocity and spend: the strongest signals for stolen-card bursts and card testing. */
export const cardVelocity = groupBy({
  name: 'card_velocity',
  source: charges,
  keys: ['card_id'],
  owner: 'risk-team',
  description: 'How fast and how much a card spends, and where.',
  aggregations: [
    count({ windows: ['5m', '1h', '1d', '7d', '30d', '90d', 'lifetime'] }),
    // Small-amount probes: many within minutes is the card-testing signature.
    count('small_amount', { windows: ['10m', '1h'] }),
    sum('amount', { windows: ['1h', '1d', '7d'] }),
    // A finer hop than the default (1h) so the daily average tracks the card within 10 minutes.
    avg('amount', { windows: [{ size: '1d', hop: '10m' }, '30d'] }),
    max('amount', { windows: ['1d', '30d'] }),
    stddev('amount', { windows: ['30d'] }),
    approxPercentile('amount', { percentiles: [0.5, 0.95], windows: ['30d'] }),
    uniqueCount('merchant_id', { windows: ['10m', '1h', '1d'] }),
    lastK('merchant_id', { k: 5, windows: ['lifetime'] }),
    last('country', { windows: ['lifetime'] }),
  ],
});

/** Per-card geography and devices: new countries, IPs and devices indicate account takeover. */
export const cardGeo = groupBy({
  name: 'card_geo',
  source: charges,
  keys: ['card_id'],
  owner: 'risk-team',
  description: 'Where and from what a card is used.',
  aggregations: [
    histogram('country', { windows: ['30d'] }),
    uniqueCount('ip', { windows: ['7d'] }),
    uniqueCount('device_id', { windows: ['30d'] }),
    approxUniqueCount('ip', { windows: ['90d'] }),
    last('device_id', { windows: ['lifetime'] }),
  ],
});
