import type { GroupByDef, JoinDef } from '../define/types.ts';
import { groupById as defaultGroupById } from './group-by-id.ts';
import type { OnlineStore } from './store.ts';
import { USAGE_PREFIX, parseCounterName, quantileMs } from './usage-counters.ts';
import type { GroupByCounters } from './worker.ts';

/**
 * The usage (cost) model: what every group-by and join costs, attributed to owners (DESIGN §2 "Visibility").
 *
 * Sources of the numbers, all in the online store, so any process pointed at it reports the same:
 * - stream events and CPU: the workers' per-group-by counters, persisted with their offsets
 *   (`counters/<topic>/<partition>`, worker.ts), summed over topics and partitions;
 * - stored keys, tiles and bytes: `store.stats()` (a scan);
 * - fetches, latency and upload time: the usage counters (usage-counters.ts).
 *
 * Attribution rules (so every total adds up exactly once):
 * 1. A group-by is identified by its store id: group-bys with the same semantic hash share tiles and are
 *    listed once, with all their names and owners.
 * 2. A group-by's cost is split across the joins that use it by their share of its key lookups (a join part
 *    looking up one key for one row counts 1; direct `/v1/groupbys` fetches count for a `groupby:<name>`
 *    consumer). Before any lookup is recorded it is split evenly across the joins that declare it; a
 *    group-by no join uses stays unattributed. Per join, the sum of its shares is its attributed cost; the
 *    joins' attributed costs plus the unattributed cost equal the total.
 * 3. Owners: `produced` is the full cost of the group-bys they own (split evenly when one store id has
 *    several owners); `consumed` is the attributed cost of the joins they own, plus the unattributed cost
 *    of group-bys they own. Both columns sum to the total.
 */

/** Costs that add up across group-bys, joins and owners. */
export interface Cost {
  /** Events applied to tiles by stream workers. */
  readonly events: number;
  readonly streamCpuMs: number;
  /** `tessera upload` wall time. */
  readonly uploadMs: number;
  readonly keys: number;
  readonly tiles: number;
  readonly bytes: number;
  /** `(group-by, key)` pairs read by fetches. */
  readonly fetches: number;
  /** Share of fetch latency (ms). */
  readonly fetchMs: number;
}

export interface GroupByUsage {
  readonly id: string;
  /** Names defining this store id (several when equal definitions are shared under different names). */
  readonly names: readonly string[];
  readonly owners: readonly string[];
  readonly source: string | null;
  /** Whether the repo defines it (false: found in the store only, e.g. from another repo or an old version). */
  readonly defined: boolean;
  readonly events: {
    readonly applied: number;
    readonly lateBeyondRetention: number;
    readonly beforeUploadCutoff: number;
    readonly nullKey: number;
    /** Events whose entity key was too long for the store (worker.ts invariant 10). */
    readonly keyTooLong: number;
    readonly filtered: number;
    /** Records of its source's topics that were not valid events (worker.ts invariant 10). */
    readonly invalid: number;
    readonly uploaded: number;
  };
  readonly cost: Cost;
  /** Share of this group-by's cost per consumer join (rule 2); sums to 1 unless unattributed. */
  readonly shares: Readonly<Record<string, number>>;
}

export interface JoinUsage {
  readonly name: string;
  readonly owner: string;
  /** Group-by names of its parts (for `groupby:<name>` consumers, that group-by). */
  readonly groupBys: readonly string[];
  readonly defined: boolean;
  readonly requests: number;
  readonly rows: number;
  /** Key lookups of its parts (row × part with a non-null key). */
  readonly lookups: number;
  /** Fetch latency over requests (service time, without HTTP), from fixed buckets: ±19%. */
  readonly latency: { readonly meanMs: number; readonly p50Ms: number; readonly p99Ms: number } | null;
  /** The sum of its shares of its group-bys' costs (rule 2). */
  readonly attributed: Cost;
}

export interface OwnerUsage {
  readonly owner: string;
  readonly groupBys: readonly string[];
  readonly joins: readonly string[];
  readonly produced: Cost;
  readonly consumed: Cost;
}

export interface UsageReport {
  readonly generatedAt: string;
  readonly store: 'lmdb' | 'redis';
  readonly groupBys: readonly GroupByUsage[];
  readonly joins: readonly JoinUsage[];
  readonly owners: readonly OwnerUsage[];
  readonly total: Cost;
  /** Cost of group-bys no join uses (rule 2). */
  readonly unattributed: Cost;
}

/** Owner shown for definitions without `owner`. */
export const NO_OWNER = '(no owner)';

const COST_FIELDS = [
  'events',
  'streamCpuMs',
  'uploadMs',
  'keys',
  'tiles',
  'bytes',
  'fetches',
  'fetchMs',
] as const satisfies readonly (keyof Cost)[];

type MutableCost = { -readonly [K in keyof Cost]: number };
const zeroCost = (): MutableCost => ({
  events: 0,
  streamCpuMs: 0,
  uploadMs: 0,
  keys: 0,
  tiles: 0,
  bytes: 0,
  fetches: 0,
  fetchMs: 0,
});

function addScaled(into: MutableCost, c: Cost, f: number): void {
  for (const k of COST_FIELDS) into[k] += c[k] * f;
}

/**
 * Computes the usage report from the store for a repo's definitions (plus any group-by or join the store
 * has numbers for that the repo no longer defines).
 *
 * @example
 * const report = await collectUsage({ store, groupBys: repo.groupBys, joins: repo.joins });
 * report.joins.find((j) => j.name === 'fraud_model')?.attributed.bytes; // its share of stored bytes
 */
export async function collectUsage(opts: {
  readonly store: OnlineStore;
  readonly groupBys: readonly GroupByDef[];
  readonly joins: readonly JoinDef[];
  readonly groupById?: (g: GroupByDef) => string;
  readonly now?: () => number;
}): Promise<UsageReport> {
  const { store } = opts;
  const idOf = opts.groupById ?? defaultGroupById;
  const [offsets, counters, stats] = await Promise.all([
    store.readOffsets(),
    store.readCounters(USAGE_PREFIX),
    store.stats(),
  ]);

  // Group-bys by store id (rule 1).
  interface Gb {
    id: string;
    defs: GroupByDef[];
    names: Set<string>;
    events: Record<keyof GroupByUsage['events'], number>;
    cost: MutableCost;
  }
  const gbs = new Map<string, Gb>();
  const gb = (id: string): Gb => {
    let g = gbs.get(id);
    if (g === undefined) {
      g = {
        id,
        defs: [],
        names: new Set(),
        events: {
          applied: 0,
          lateBeyondRetention: 0,
          beforeUploadCutoff: 0,
          nullKey: 0,
          keyTooLong: 0,
          filtered: 0,
          invalid: 0,
          uploaded: 0,
        },
        cost: zeroCost(),
      };
      gbs.set(id, g);
    }
    return g;
  };
  const idByName = new Map<string, string>();
  for (const def of [...opts.groupBys, ...opts.joins.flatMap((j) => j.parts.map((p) => p.groupBy))]) {
    const g = gb(idOf(def));
    if (!g.defs.includes(def)) g.defs.push(def);
    g.names.add(def.name);
    idByName.set(def.name, g.id);
  }

  // Stream counters are keyed by group-by name per worker. Names sharing one id are one computation: events
  // are taken once (the max over names), CPU is summed: the worker applies a shared id once and reports its
  // CPU under the first name (the others report 0; worker.ts invariant 9), so the sum counts it once.
  const byName = new Map<string, GroupByCounters>();
  for (const [name, value] of Object.entries(offsets)) {
    if (!name.startsWith('counters/')) continue;
    let parsed: Record<string, Partial<GroupByCounters>>;
    try {
      parsed = JSON.parse(value);
    } catch (cause) {
      throw new Error(
        `usage: store entry '${name}' is not the JSON a stream worker writes (${(cause as Error).message}); ` +
          'the worker of that partition would fail to start too: check what else writes to this store',
        { cause },
      );
    }
    for (const [gbName, c] of Object.entries(parsed)) {
      const acc = byName.get(gbName) ?? {
        applied: 0,
        lateBeyondRetention: 0,
        beforeUploadCutoff: 0,
        nullKey: 0,
        keyTooLong: 0,
        filtered: 0,
        invalid: 0,
        cpuMs: 0,
      };
      for (const k of Object.keys(acc) as (keyof GroupByCounters)[]) acc[k] += Number(c[k] ?? 0);
      byName.set(gbName, acc);
    }
  }
  for (const [name, c] of byName) {
    const id = idByName.get(name);
    if (id === undefined) continue; // a group-by this repo does not define; its id is unknown
    const g = gb(id);
    for (const k of [
      'applied',
      'lateBeyondRetention',
      'beforeUploadCutoff',
      'nullKey',
      'keyTooLong',
      'filtered',
      'invalid',
    ] as const)
      g.events[k] = Math.max(g.events[k], c[k]);
    g.cost.streamCpuMs += c.cpuMs;
  }
  for (const g of gbs.values()) g.cost.events = g.events.applied;

  for (const [id, s] of Object.entries(stats.byGroupBy)) {
    const g = gb(id);
    g.cost.keys = s.entities;
    g.cost.tiles = s.tiles;
    g.cost.bytes = s.bytes;
  }

  // Usage counters: fetches, latency, uploads, and per-join lookups.
  interface Jn {
    name: string;
    def: JoinDef | null;
    requests: number;
    rows: number;
    fetchUs: number;
    lookups: Map<string, number>;
    buckets: Map<number, number>;
  }
  const jns = new Map<string, Jn>();
  const jn = (name: string): Jn => {
    let j = jns.get(name);
    if (j === undefined) {
      j = { name, def: null, requests: 0, rows: 0, fetchUs: 0, lookups: new Map(), buckets: new Map() };
      jns.set(name, j);
    }
    return j;
  };
  for (const def of opts.joins) jn(def.name).def = def;
  for (const [name, value] of Object.entries(counters)) {
    const c = parseCounterName(name);
    if (c === null) continue;
    if (c.kind === 'gb') {
      const g = gb(c.id);
      if (c.what === 'fetches') g.cost.fetches += value;
      else if (c.what === 'fetch_us') g.cost.fetchMs += value / 1000;
      else if (c.what === 'upload_ms') g.cost.uploadMs += value;
      else if (c.what === 'upload_events') g.events.uploaded += value;
    } else if (c.kind === 'join') {
      const j = jn(c.join);
      if (c.what === 'requests') j.requests += value;
      else if (c.what === 'rows') j.rows += value;
      else if (c.what === 'fetch_us') j.fetchUs += value;
    } else if (c.kind === 'lookups') {
      gb(c.id);
      const j = jn(c.join);
      j.lookups.set(c.id, (j.lookups.get(c.id) ?? 0) + value);
    } else {
      const j = jn(c.join);
      j.buckets.set(c.bucket, (j.buckets.get(c.bucket) ?? 0) + value);
    }
  }

  // Rule 2: shares per group-by across consumer joins.
  const declared = new Map<string, Set<string>>();
  for (const j of jns.values()) {
    const ids = j.def ? j.def.parts.map((p) => idOf(p.groupBy)) : [...j.lookups.keys()];
    for (const id of ids) {
      let s = declared.get(id);
      if (s === undefined) declared.set(id, (s = new Set()));
      s.add(j.name);
    }
  }
  const shares = new Map<string, Record<string, number>>();
  for (const g of gbs.values()) {
    const consumers = [...(declared.get(g.id) ?? [])].sort();
    let total = 0;
    for (const name of consumers) total += jns.get(name)!.lookups.get(g.id) ?? 0;
    const s: Record<string, number> = {};
    for (const name of consumers) {
      const share = total > 0 ? (jns.get(name)!.lookups.get(g.id) ?? 0) / total : 1 / consumers.length;
      if (share > 0) s[name] = share;
    }
    shares.set(g.id, s);
  }

  const total = zeroCost();
  const unattributed = zeroCost();
  const attributed = new Map<string, MutableCost>();
  for (const g of gbs.values()) {
    addScaled(total, g.cost, 1);
    const s = shares.get(g.id)!;
    if (Object.keys(s).length === 0) addScaled(unattributed, g.cost, 1);
    for (const [name, f] of Object.entries(s)) {
      let a = attributed.get(name);
      if (a === undefined) attributed.set(name, (a = zeroCost()));
      addScaled(a, g.cost, f);
    }
  }

  const gbName = (id: string) => {
    const g = gbs.get(id);
    return g && g.names.size > 0 ? [...g.names].sort().join('|') : `#${id}`;
  };
  const ownersOf = (g: Gb) => [...new Set(g.defs.map((d) => d.owner ?? NO_OWNER))].sort();

  const groupBys: GroupByUsage[] = [...gbs.values()]
    .map((g) => ({
      id: g.id,
      names: [...g.names].sort(),
      owners: g.defs.length ? ownersOf(g) : [NO_OWNER],
      source: g.defs[0]?.source.name ?? null,
      defined: g.defs.length > 0,
      events: { ...g.events },
      cost: { ...g.cost },
      shares: shares.get(g.id)!,
    }))
    .sort((a, b) => gbName(a.id).localeCompare(gbName(b.id)));

  const joinOwner = (j: Jn): string => {
    if (j.def) return j.def.owner ?? NO_OWNER;
    // A direct group-by consumer (`groupby:<name>`) belongs to that group-by's owner.
    const id = j.name.startsWith('groupby:') ? idByName.get(j.name.slice('groupby:'.length)) : undefined;
    const g = id === undefined ? undefined : gbs.get(id);
    return g && g.defs.length ? ownersOf(g)[0]! : NO_OWNER;
  };
  const joins: JoinUsage[] = [...jns.values()]
    .map((j) => {
      let lookups = 0;
      for (const n of j.lookups.values()) lookups += n;
      const p50 = quantileMs(j.buckets, 0.5);
      const p99 = quantileMs(j.buckets, 0.99);
      return {
        name: j.name,
        owner: joinOwner(j),
        groupBys: j.def
          ? [...new Set(j.def.parts.map((p) => p.groupBy.name))]
          : [...j.lookups.keys()].map(gbName),
        defined: j.def !== null,
        requests: j.requests,
        rows: j.rows,
        lookups,
        latency:
          j.requests > 0 && p50 !== null && p99 !== null
            ? { meanMs: j.fetchUs / 1000 / j.requests, p50Ms: p50, p99Ms: p99 }
            : null,
        attributed: { ...(attributed.get(j.name) ?? zeroCost()) },
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));

  // Rule 3.
  interface Ow {
    groupBys: Set<string>;
    joins: Set<string>;
    produced: MutableCost;
    consumed: MutableCost;
  }
  const ows = new Map<string, Ow>();
  const ow = (name: string): Ow => {
    let o = ows.get(name);
    if (o === undefined)
      ows.set(
        name,
        (o = { groupBys: new Set(), joins: new Set(), produced: zeroCost(), consumed: zeroCost() }),
      );
    return o;
  };
  for (const g of groupBys) {
    for (const owner of g.owners) {
      const o = ow(owner);
      const defs = gbs.get(g.id)!.defs.filter((d) => (d.owner ?? NO_OWNER) === owner);
      for (const n of defs.length ? defs.map((d) => d.name) : [`#${g.id}`]) o.groupBys.add(n);
      addScaled(o.produced, g.cost, 1 / g.owners.length);
      if (Object.keys(g.shares).length === 0) addScaled(o.consumed, g.cost, 1 / g.owners.length);
    }
  }
  for (const j of joins) {
    const o = ow(j.owner);
    o.joins.add(j.name);
    addScaled(o.consumed, j.attributed, 1);
  }
  const owners: OwnerUsage[] = [...ows]
    .map(([owner, o]) => ({
      owner,
      groupBys: [...o.groupBys].sort(),
      joins: [...o.joins].sort(),
      produced: o.produced,
      consumed: o.consumed,
    }))
    .sort((a, b) => a.owner.localeCompare(b.owner));

  return {
    generatedAt: new Date((opts.now ?? Date.now)()).toISOString(),
    store: store.kind,
    groupBys,
    joins,
    owners,
    total,
    unattributed,
  };
}
