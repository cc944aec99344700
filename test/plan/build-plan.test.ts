import { describe, expect, it } from 'vitest';
import {
  buildPlan,
  canonicalJson,
  col,
  count,
  diffPlans,
  eventSource,
  groupBy,
  join,
  lastK,
  renderPlanDiff,
  renderPlanSummary,
  sum,
} from '../../src/index.ts';

const charges = eventSource({
  name: 'charges',
  path: 'data/charges.csv',
  timeColumn: 'ts',
  schema: { card_id: col.string(), merchant_id: col.string(), amount: col.float(), ts: col.timestamp() },
  filter: (r) => r.amount > 0,
});

function repo(options: { window?: string; owner?: string; extraJoin?: boolean } = {}) {
  const cardStats = groupBy({
    name: 'card_stats',
    source: charges,
    keys: ['card_id'],
    owner: options.owner ?? 'risk',
    aggregations: [count({ windows: ['1h', options.window ?? '1d'] }), sum('amount', { windows: ['7d'] })],
  });
  const cardStatsCopy = groupBy({
    name: 'card_stats_copy',
    source: charges,
    keys: ['card_id'],
    description: 'the same computation under another name',
    aggregations: [sum('amount', { windows: ['7d'] }), count({ windows: [options.window ?? '1d', '1h'] })],
  });
  const merchantStats = groupBy({
    name: 'merchant_stats',
    source: charges,
    keys: ['merchant_id'],
    aggregations: [lastK('card_id', { k: 3, windows: ['lifetime'] })],
  });
  const model = join({
    name: 'fraud_model',
    left: charges,
    parts: [
      { groupBy: cardStats, keys: { card_id: 'card_id' } },
      { groupBy: merchantStats, keys: { merchant_id: 'merchant_id' }, prefix: 'm' },
    ],
    derive: { big: { type: col.bool(), fn: (_f, row) => row.amount > 100 } },
  });
  const joins = options.extraJoin
    ? [
        model,
        join({
          name: 'other',
          left: charges,
          parts: [{ groupBy: cardStatsCopy, keys: { card_id: 'card_id' } }],
        }),
      ]
    : [model];
  return { sources: [], groupBys: [cardStatsCopy], joins };
}

describe('buildPlan', () => {
  it('produces sorted, frozen, function-free canonical JSON', () => {
    const plan = buildPlan(repo());
    expect(plan.groupBys.map((g) => g.name)).toEqual(['card_stats', 'card_stats_copy', 'merchant_stats']);
    expect(Object.isFrozen(plan.groupBys[0]!.aggregations[0]!.windows)).toBe(true);
    const json = canonicalJson(plan);
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(plan)));
    expect(canonicalJson(buildPlan(repo()))).toBe(json);
    const joinNode = plan.joins[0]!;
    expect(canonicalJson(joinNode, 2)).toMatchInlineSnapshot(`
      "{
        "derivations": [
          {
            "code": "(_f,row)=>row.amount>100",
            "name": "big",
            "type": "bool"
          }
        ],
        "features": [
          "card_stats_count_1h",
          "card_stats_count_1d",
          "card_stats_amount_sum_7d",
          "m_merchant_stats_card_id_last_k_lifetime",
          "big"
        ],
        "kind": "join",
        "left": "charges",
        "name": "fraud_model",
        "parts": [
          {
            "groupBy": "card_stats",
            "hash": "dfd4c5c2f556649f00fbf1866bfca09bd8d8d4938c70ca31146f85a4b3db76c9",
            "keyMapping": {
              "card_id": "card_id"
            }
          },
          {
            "groupBy": "merchant_stats",
            "hash": "f305e950749a75652fca76ef803c756ee1dd18b634d070bbe868c5d37499f7c9",
            "keyMapping": {
              "merchant_id": "merchant_id"
            },
            "prefix": "m"
          }
        ]
      }"
    `);
  });

  it('gives equal computations equal hashes', () => {
    const plan = buildPlan(repo());
    const [a, copy, m] = plan.groupBys;
    expect(a!.hash).toBe(copy!.hash);
    expect(a!.hash).not.toBe(m!.hash);
    expect(plan.joins[0]!.parts[0]!.hash).toBe(a!.hash);
  });

  it('renders a readable summary', () => {
    const summary = renderPlanSummary(buildPlan(repo())).replace(/#[0-9a-f]{10}/g, '#<hash>');
    expect(summary).toMatchInlineSnapshot(`
      "Plan: 1 source, 3 group-bys, 1 join

      Sources
        charges  data/charges.csv  time ts  4 columns

      Group-bys
        card_stats       #<hash>  source charges  keys card_id      3 features  owner risk
        card_stats_copy  #<hash>  source charges  keys card_id      3 features
        merchant_stats   #<hash>  source charges  keys merchant_id  1 feature

      Joins
        fraud_model  left charges  parts card_stats, m:merchant_stats  5 features (1 derived)

      Shared computations (equal semantic hash, computed and stored once)
        #<hash>  card_stats, card_stats_copy"
    `);
  });
});

describe('canonicalJson', () => {
  it('sorts keys, drops undefined and rejects functions and non-finite numbers', () => {
    expect(canonicalJson({ b: 1, a: { d: undefined, c: [2, 1] } })).toBe('{"a":{"c":[2,1]},"b":1}');
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/\$\.f is a function/);
    expect(() => canonicalJson({ x: [NaN] })).toThrow(/\$\.x\[0\] is NaN/);
  });
});

describe('diffPlans', () => {
  it('is empty for equal plans', () => {
    expect(diffPlans(buildPlan(repo()), buildPlan(repo())).empty).toBe(true);
  });

  it('separates semantic changes from metadata-only changes and lists added joins', () => {
    const before = buildPlan(repo());
    const after = buildPlan(repo({ window: '30d', owner: 'payments', extraJoin: true }));
    const diff = diffPlans(before, after);
    expect(diff.empty).toBe(false);
    expect(diff.groupBys.added).toEqual([]);
    expect(diff.groupBys.changed.map((c) => [c.name, c.semantic, c.fromHash === c.toHash])).toEqual([
      ['card_stats', true, false],
      ['card_stats_copy', true, false],
    ]);
    expect(diff.joins).toEqual({
      added: ['other'],
      removed: [],
      changed: ['fraud_model'],
      featureChanges: [
        {
          name: 'fraud_model',
          featuresAdded: ['card_stats_count_30d'],
          featuresRemoved: ['card_stats_count_1d'],
        },
      ],
    });
    expect(renderPlanDiff(diff)).toContain(
      '~ join fraud_model  features +card_stats_count_30d -card_stats_count_1d',
    );
    const ownerOnly = diffPlans(before, buildPlan(repo({ owner: 'payments' })));
    expect(ownerOnly.groupBys.changed).toEqual([
      expect.objectContaining({ name: 'card_stats', semantic: false }),
    ]);
    expect(ownerOnly.joins.changed).toEqual([]);
    const removed = diffPlans(after, before);
    expect(removed.joins.removed).toEqual(['other']);
  });

  it('shows a group-by renamed with the same computation as a rename, not a removal and an addition', () => {
    const before = buildPlan(repo());
    const plan = buildPlan(repo());
    const renamedPlan = {
      ...plan,
      groupBys: plan.groupBys.map((g) => (g.name === 'merchant_stats' ? { ...g, name: 'merch' } : g)),
    };
    const diff = diffPlans(before, renamedPlan);
    const hash = before.groupBys.find((g) => g.name === 'merchant_stats')!.hash;
    expect(diff.groupBys).toMatchObject({
      added: [],
      removed: [],
      renamed: [{ from: 'merchant_stats', to: 'merch', hash }],
    });
    expect(renderPlanDiff(diff)).toBe(
      `> groupBy merchant_stats → merch  #${hash.slice(0, 10)}  (renamed: same computation, stored tiles kept)`,
    );
    // A removed group-by whose computation another new name does not carry stays a removal.
    const dropped = { ...plan, groupBys: plan.groupBys.filter((g) => g.name !== 'merchant_stats') };
    expect(diffPlans(before, dropped).groupBys).toMatchObject({
      removed: [{ name: 'merchant_stats' }],
      renamed: [],
    });
  });
});
