import { approxUniqueCount, avg, count, firstK, groupBy, sum, uniqueCount } from '../../../src/index.ts';
import { charges } from './charges.ts';

/** Per-IP fan-out: one IP paying with many cards is a fraud farm. Charges without an IP (POS) are skipped. */
export const ipStats = groupBy({
  name: 'ip_stats',
  source: charges,
  keys: ['ip'],
  owner: 'risk-team',
  description: 'Traffic and card fan-out per IP address.',
  aggregations: [
    count({ windows: ['10m', '1h', '1d'] }),
    uniqueCount('card_id', { windows: ['1h', '1d', '7d'] }),
    approxUniqueCount('card_id', { windows: ['30d'] }),
    sum('amount', { windows: ['1d'] }),
    uniqueCount('email_domain', { windows: ['7d'] }),
  ],
});

/** Per-device fan-out: a device used with many cards is an emulator farm or a shared fraud kit. */
export const deviceStats = groupBy({
  name: 'device_stats',
  source: charges,
  keys: ['device_id'],
  owner: 'risk-team',
  description: 'Traffic and card fan-out per device fingerprint.',
  aggregations: [
    count({ windows: ['1h', '1d'] }),
    uniqueCount('card_id', { windows: ['1d', '7d'] }),
    firstK('card_id', { k: 3, windows: ['30d'] }),
  ],
});

/**
 * Per e-mail domain: throw-away domains light up with bursts of charges from few IPs. Distinct IPs use an
 * exact count over one hour: the sets stay small even for the biggest domains, whereas a day-long sketch
 * per domain would cost more than it tells.
 */
export const emailDomainStats = groupBy({
  name: 'email_domain_stats',
  source: charges,
  keys: ['email_domain'],
  owner: 'identity-team',
  description: 'Traffic and card fan-out per e-mail domain.',
  aggregations: [
    count({ windows: ['1h', '1d'] }),
    uniqueCount('ip', { windows: ['1h'] }),
    avg('amount', { windows: ['7d'] }),
  ],
});
