import { join as joinPath } from 'node:path';
import { describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy, join, lastK, sum, uniqueCount } from '../../src/index.ts';
import { runBackfill } from '../../src/offline/backfill.ts';
import { inWindow } from './naive-oracle.ts';
import { readOutput, rng, same, tempDir, writeCsv } from './support.ts';

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;

describe('joins: derived columns as keys, source filter, several parts, derivations', () => {
  it('matches a naive oracle', async () => {
    const dir = tempDir();
    const r = rng(5);
    const events = Array.from({ length: 400 }, (_, i) => ({
      card: `c${Math.floor(r() * 8)}`,
      email: `u${i}@${['a.com', 'b.org', 'c.net'][Math.floor(r() * 3)]}`,
      amount: Math.round(r() * 200) - 20, // some refunds (<= 0) the filter drops
      ts: T0 + Math.floor(r() * 48 * HOUR),
    }));
    writeCsv(joinPath(dir, 'events.csv'), ['card', 'email', 'amount', 'ts'], events);
    const left = Array.from({ length: 150 }, (_, i) => ({
      id: i,
      card: `c${Math.floor(r() * 9)}`,
      domain: ['a.com', 'b.org', 'c.net', 'd.io'][Math.floor(r() * 4)],
      ts: T0 + Math.floor(r() * 50 * HOUR),
      amount: Math.round(r() * 100),
    }));
    writeCsv(joinPath(dir, 'left.csv'), ['id', 'card', 'domain', 'ts', 'amount'], left);

    const payments = eventSource({
      name: 'payments',
      path: joinPath(dir, 'events.csv'),
      timeColumn: 'ts',
      schema: { card: col.string(), email: col.string(), amount: col.int(), ts: col.timestamp() },
      derive: {
        domain: { type: col.string(), fn: (row) => row.email.split('@')[1] },
        big: { type: col.bool(), fn: (row) => row.amount > 100 },
      },
      filter: (row) => row.amount > 0,
    });
    const cards = groupBy({
      name: 'card',
      source: payments,
      keys: ['card'],
      aggregations: [
        count({ windows: ['1h', '1d'] }),
        sum('amount', { windows: ['1d'] }),
        lastK('big', { k: 2, windows: ['1d'] }),
      ],
    });
    const domains = groupBy({
      name: 'domain',
      source: payments,
      keys: ['domain'],
      aggregations: [count({ windows: ['1d'] }), uniqueCount('card', { windows: ['1d'] })],
    });
    const pairs = groupBy({
      name: 'pair',
      source: payments,
      keys: ['card', 'domain'],
      aggregations: [count({ windows: ['1d'] })],
    });
    const labels = eventSource({
      name: 'labels',
      path: joinPath(dir, 'left.csv'),
      timeColumn: 'ts',
      schema: {
        id: col.int(),
        card: col.string(),
        domain: col.string(),
        ts: col.timestamp(),
        amount: col.int(),
      },
    });
    const model = join({
      name: 'model',
      left: labels,
      parts: [
        { groupBy: cards, keys: { card: 'card' } },
        { groupBy: domains, keys: { domain: 'domain' }, prefix: 'd' },
        { groupBy: pairs, keys: { domain: 'domain', card: 'card' } },
      ],
      derive: {
        share: {
          type: col.float().nullable(),
          fn: (f, row) => (f.card_amount_sum_1d === null ? null : row.amount / f.card_amount_sum_1d),
        },
        busy: { type: col.bool(), fn: (f) => f.d_domain_count_1d > f.card_count_1d },
      },
    });
    const out = joinPath(dir, 'out.parquet');
    const result = await runBackfill({ join: model, left: joinPath(dir, 'left.csv'), out, progress: false });
    expect(result.features).toBe(9);
    const rows = await readOutput(out);
    expect(Object.keys(rows[0])).toEqual([
      'id',
      'card',
      'domain',
      'ts',
      'amount',
      'card_count_1h',
      'card_count_1d',
      'card_amount_sum_1d',
      'card_big_last_k_1d',
      'd_domain_count_1d',
      'd_domain_card_unique_count_1d',
      'pair_count_1d',
      'share',
      'busy',
    ]);
    const kept = events
      .map((e, seq) => ({ ...e, seq, domain: e.email.split('@')[1] }))
      .filter((e) => e.amount > 0);
    for (const [i, l] of left.entries()) {
      const w = (size: number, hop: number) => (e: { ts: number }) => inWindow(e.ts, l.ts, size, hop);
      const card1h = kept.filter((e) => e.card === l.card).filter(w(HOUR, 300_000));
      const card1d = kept.filter((e) => e.card === l.card).filter(w(24 * HOUR, HOUR));
      const dom1d = kept.filter((e) => e.domain === l.domain).filter(w(24 * HOUR, HOUR));
      const sum1d = card1d.length === 0 ? null : card1d.reduce((a, e) => a + e.amount, 0);
      const lastBig =
        card1d.length === 0
          ? null
          : [...card1d]
              .sort((a, b) => b.ts - a.ts || b.seq - a.seq)
              .slice(0, 2)
              .map((e) => e.amount > 100);
      const expected = {
        id: l.id,
        card_count_1h: card1h.length,
        card_count_1d: card1d.length,
        card_amount_sum_1d: sum1d,
        card_big_last_k_1d: lastBig,
        d_domain_count_1d: dom1d.length,
        d_domain_card_unique_count_1d: new Set(dom1d.map((e) => e.card)).size,
        pair_count_1d: dom1d.filter((e) => e.card === l.card).length,
        share: sum1d === null ? null : l.amount / sum1d,
        busy: dom1d.length > card1d.length,
      };
      for (const [k, v] of Object.entries(expected)) {
        if (!same(rows[i][k], v))
          throw new Error(`row ${i} ${k}: got ${JSON.stringify(rows[i][k])}, expected ${JSON.stringify(v)}`);
      }
    }
  });
});
