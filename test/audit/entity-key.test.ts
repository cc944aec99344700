/**
 * Audit finding: a two-column key whose values contain the column separator (\u001f) must not share an
 * entity with another key. DESIGN §1 aggregates the events with `e.key == k` (tuple equality), and the
 * backfill keys by the tuple, so online must too. Seen end to end in serve-oracle.test.ts (group-by `uc`).
 */
import { describe, expect, it } from 'vitest';
import { entityKey } from '../../src/online/entity-key.ts';

describe('entityKey', () => {
  it('distinct key tuples get distinct entity keys, whatever characters the values hold', () => {
    expect(entityKey(['q\u001fUS', 'DE'])).not.toBe(entityKey(['q', 'US\u001fDE']));
    expect(entityKey(['a', 'b\u001f'])).not.toBe(entityKey(['a\u001fb', '']));
    expect(entityKey(['a\u001e', 'b'])).not.toBe(entityKey(['a', '\u001eb']));
    expect(entityKey(['a\u001e\u001f', 'b'])).not.toBe(entityKey(['a', '\u001e\u001fb']));
  });

  it('single-column keys and separator-free tuples keep their encoding (stored layout unchanged)', () => {
    expect(entityKey(['card_1'])).toBe('card_1');
    expect(entityKey(['m_9', 'US'])).toBe('m_9\u001fUS');
    expect(entityKey([42, true])).toBe('42\u001ftrue');
    expect(entityKey(['x', null])).toBe(null);
  });
});
