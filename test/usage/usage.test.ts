import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { renderUsage } from '../../src/cli/commands/usage.ts';
import type { GroupByDef, JoinDef } from '../../src/define/types.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import { openStore } from '../../src/online/open-store.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { collectUsage, type Cost, type UsageReport } from '../../src/online/usage.ts';
import { startEmbedded, type EmbeddedServer } from '../../src/serve/embedded.ts';
import { createRng, type Rng } from '../aggregate/support/prng.ts';
import { startRedis } from '../support/servers.ts';
import {
  atoModel,
  cardStats,
  fraudModel,
  merchantAmounts,
  merchantStats,
  tx,
  usageRepo,
} from './fixtures.ts';

const run = promisify(execFile);
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const fixtures = new URL('./fixtures.ts', import.meta.url).pathname;
const redis = await startRedis();
const dirs: string[] = [];
afterAll(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-usage-'));
  dirs.push(d);
  return d;
};

const cardId = groupById(cardStats);
const merchantId = groupById(merchantStats);
const T = Date.now();

function randomEvents(rng: Rng, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    card_id: `c${rng.int(0, 9)}`,
    merchant_id: rng.chance(0.1) ? null : `m${rng.int(0, 4)}`,
    amount: rng.chance(0.1) ? -1 : rng.int(1, 500), // refunds are filtered out
    ts: T - 3_600_000 + i * 1000,
  }));
}

/** Independent expectations: what a fetch reads and looks up, from the definitions alone. */
class Expected {
  readonly fetches = new Map<string, number>();
  readonly lookups = new Map<string, Map<string, number>>();
  readonly requests = new Map<string, number>();
  readonly rows = new Map<string, number>();
  private add(m: Map<string, number>, k: string, n: number) {
    m.set(k, (m.get(k) ?? 0) + n);
  }
  request(parts: { join: string; groupBy: GroupByDef; column: string }[], rows: Record<string, unknown>[]) {
    const reads = new Set<string>();
    for (const join of new Set(parts.map((p) => p.join))) {
      this.add(this.requests, join, 1);
      this.add(this.rows, join, rows.length);
    }
    for (const p of parts) {
      const id = groupById(p.groupBy);
      const keys = rows.map((r) => r[p.column]).filter((v) => v !== null && v !== undefined);
      keys.forEach((k) => reads.add(`${id}\u0000${String(k)}`));
      if (keys.length === 0) continue;
      if (!this.lookups.has(p.join)) this.lookups.set(p.join, new Map());
      this.add(this.lookups.get(p.join)!, id, keys.length);
    }
    for (const r of reads) this.add(this.fetches, r.slice(0, r.indexOf('\u0000')), 1);
  }
}

const partsOf = (j: JoinDef) =>
  j.parts.map((p) => ({ join: j.name, groupBy: p.groupBy, column: p.keyMapping[p.groupBy.keys[0]!]! }));

/** Random fetches through the service (as the HTTP routes call it), recorded in `expected`. */
async function randomFetches(server: EmbeddedServer, rng: Rng, expected: Expected, n: number) {
  for (let i = 0; i < n; i++) {
    const rows = Array.from({ length: rng.int(1, 6) }, () => ({
      card_id: `c${rng.int(0, 12)}`,
      merchant_id: rng.chance(0.2) ? null : `m${rng.int(0, 6)}`,
    }));
    const kind = rng.int(0, 3);
    if (kind === 3) {
      await server.service.fetchGroupBy('merchant_stats', rows);
      expected.request(
        [{ join: 'groupby:merchant_stats', groupBy: merchantStats, column: 'merchant_id' }],
        rows,
      );
    } else {
      const joins = kind === 0 ? [fraudModel] : kind === 1 ? [atoModel] : [fraudModel, atoModel];
      await server.service.fetchJoins(
        joins.map((j) => j.name),
        rows,
      );
      expected.request(joins.flatMap(partsOf), rows);
    }
  }
}

const FIELDS: (keyof Cost)[] = [
  'events',
  'streamCpuMs',
  'uploadMs',
  'keys',
  'tiles',
  'bytes',
  'fetches',
  'fetchMs',
];
function expectSum(parts: readonly Cost[], total: Cost, what: string) {
  for (const f of FIELDS) {
    const s = parts.reduce((a, c) => a + c[f], 0);
    expect(Math.abs(s - total[f]), `${what}: ${f}`).toBeLessThanOrEqual(
      1e-6 * Math.max(1, Math.abs(total[f])),
    );
  }
}

function checkReport(
  report: UsageReport,
  expected: Expected,
  stats: Awaited<ReturnType<OnlineStore['stats']>>,
) {
  // Rule 1: the shared computation is listed once, with both names and owners.
  const card = report.groupBys.find((g) => g.id === cardId)!;
  expect(card.names).toEqual(['card_stats', 'card_stats_twin']);
  expect(card.owners).toEqual(['ato', 'risk']);
  expect(report.groupBys.filter((g) => g.names.includes('card_stats'))).toHaveLength(1);
  // Fetch counts and lookups equal the independent expectation.
  for (const g of report.groupBys)
    expect(g.cost.fetches, g.names.join()).toBe(expected.fetches.get(g.id) ?? 0);
  for (const j of report.joins) {
    expect(j.requests, j.name).toBe(expected.requests.get(j.name) ?? 0);
    expect(j.rows, j.name).toBe(expected.rows.get(j.name) ?? 0);
    const lookups = [...(expected.lookups.get(j.name)?.values() ?? [])].reduce((a, b) => a + b, 0);
    expect(j.lookups, j.name).toBe(lookups);
    if (j.requests > 0) expect(j.latency!.p50Ms).toBeLessThanOrEqual(j.latency!.p99Ms);
  }
  // Rule 2: a shared group-by's cost is split by lookups share.
  const byJoin = (join: string, id: string) => expected.lookups.get(join)?.get(id) ?? 0;
  const cardTotal = byJoin('fraud_model', cardId) + byJoin('ato_model', cardId);
  expect(card.shares.fraud_model).toBeCloseTo(byJoin('fraud_model', cardId) / cardTotal, 12);
  expect(card.shares.ato_model).toBeCloseTo(byJoin('ato_model', cardId) / cardTotal, 12);
  const fraud = report.joins.find((j) => j.name === 'fraud_model')!;
  expect(fraud.attributed.bytes).toBeCloseTo(
    card.cost.bytes * card.shares.fraud_model! +
      report.groupBys.find((g) => g.id === merchantId)!.cost.bytes *
        report.groupBys.find((g) => g.id === merchantId)!.shares.fraud_model!,
    6,
  );
  // Stored sizes are the store's.
  for (const g of report.groupBys) {
    const s = stats.byGroupBy[g.id] ?? { entities: 0, tiles: 0, bytes: 0 };
    expect([g.cost.keys, g.cost.tiles, g.cost.bytes]).toEqual([s.entities, s.tiles, s.bytes]);
  }
  // Every view adds up to the total exactly once.
  expectSum(
    report.groupBys.map((g) => g.cost),
    report.total,
    'group-bys',
  );
  expectSum(
    [...report.joins.map((j) => j.attributed), report.unattributed],
    report.total,
    'joins + unattributed',
  );
  expectSum(
    report.owners.map((o) => o.produced),
    report.total,
    'owners produced',
  );
  expectSum(
    report.owners.map((o) => o.consumed),
    report.total,
    'owners consumed',
  );
  expect(report.owners.find((o) => o.owner === 'risk')).toMatchObject({
    groupBys: ['card_stats'],
    joins: [],
  });
  expect(report.owners.find((o) => o.owner === 'ato')).toMatchObject({
    groupBys: ['card_stats_twin'],
    joins: ['ato_model'],
  });
  // merchant_amounts is used by no join: unattributed, and consumed by its owner (none).
  const unused = report.groupBys.find((g) => g.id === groupById(merchantAmounts))!;
  expect(unused.shares).toEqual({});
  expect(report.unattributed.keys).toBe(unused.cost.keys);
}

describe('usage on LMDB: attribution, restart persistence, the CLI', () => {
  it(
    'counts fetches exactly, splits shared group-bys so totals add up, survives a restart, and the CLI prints the store numbers',
    { timeout: 120_000 },
    async () => {
      const rng = createRng(0xc057);
      const dataDir = join(tempDir(), 'state');
      const expected = new Expected();
      const events = randomEvents(rng, 300);
      const kept = events.filter((e) => e.amount > 0);

      let server = await startEmbedded({ repo: usageRepo, dataDir, port: 0 });
      try {
        await ingestEvents(server.log, tx, usageRepo.groupBys, events);
        await server.drain();
        await randomFetches(server, rng, expected, 40);
      } finally {
        await server.close(); // flushes the counters
      }
      // Restart: counters persist and keep adding up.
      server = await startEmbedded({ repo: usageRepo, dataDir, port: 0 });
      try {
        await randomFetches(server, rng, expected, 25);
        // Prometheus counters of this process (since its start).
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        expect(metrics).toMatch(/tessera_groupby_fetches_total\{group_by="card_stats"\} \d+/);
        // Worker counters are restored from the store after the restart.
        const cpu = /tessera_groupby_stream_cpu_seconds\{group_by="card_stats"\} (\S+)/.exec(metrics);
        expect(Number(cpu?.[1])).toBeGreaterThan(0);
        expect(metrics).toContain(
          `tessera_groupby_events_filtered{group_by="card_stats"} ${events.length - kept.length}`,
        );
        expect(metrics).toMatch(
          /tessera_join_lookups_total\{join="fraud_model",group_by="merchant_stats"\} \d+/,
        );
        // GET /v1/usage flushes this node first, so it already includes the fetches just made.
        const viaHttp = (await (await fetch(`${server.url}/v1/usage`)).json()) as UsageReport;
        const stats = await server.store.stats();
        checkReport(viaHttp, expected, stats);
        // `tessera usage --url` renders what the server reports.
        const remote = await run(
          process.execPath,
          ['--import', 'tsx', main, 'usage', '--url', server.url, '--by', 'owner'],
          {
            timeout: 60_000,
          },
        );
        expect(remote.stdout).toBe(renderUsage(viaHttp, 'owner'));
      } finally {
        await server.close();
      }

      const store = openStore({ kind: 'lmdb', path: join(dataDir, 'store') });
      let report: UsageReport;
      let stats: Awaited<ReturnType<OnlineStore['stats']>>;
      try {
        report = await collectUsage({ store, groupBys: usageRepo.groupBys, joins: usageRepo.joins });
        stats = await store.stats();
      } finally {
        await store.close();
      }
      checkReport(report, expected, stats);
      const card = report.groupBys.find((g) => g.id === cardId)!;
      expect(card.events.applied).toBe(kept.length);
      expect(card.events.filtered).toBe(events.length - kept.length);
      expect(card.cost.streamCpuMs).toBeGreaterThan(0);
      const merchant = report.groupBys.find((g) => g.id === merchantId)!;
      expect(merchant.events.nullKey).toBe(kept.filter((e) => e.merchant_id === null).length);
      expect(Object.keys(merchant.shares).sort()).toEqual(['fraud_model', 'groupby:merchant_stats']);

      // The CLI prints the numbers the store holds (JSON: the same report; table: the same figures).
      const repoDir = tempDir();
      writeFileSync(join(repoDir, 'defs.ts'), `export * from ${JSON.stringify(fixtures)};\n`);
      const cli = (...args: string[]) =>
        run(
          process.execPath,
          ['--import', 'tsx', main, 'usage', '--repo', repoDir, '--data-dir', dataDir, ...args],
          {
            timeout: 60_000,
          },
        );
      const [json, byJoin] = await Promise.all([cli('--json'), cli('--by', 'join')]);
      const fromCli = JSON.parse(json.stdout) as UsageReport;
      expect({ ...fromCli, generatedAt: '' }).toEqual({ ...report, generatedAt: '' });
      // The other views render the same report (the CLI only picks the view).
      const byGroupBy = renderUsage(report, 'groupby');
      const cardLine = byGroupBy.split('\n').find((l) => l.startsWith('card_stats|card_stats_twin'))!;
      expect(cardLine.split(/\s+/)).toEqual(
        expect.arrayContaining([String(kept.length), String(card.cost.bytes), String(card.cost.fetches)]),
      );
      expect(byJoin.stdout).toBe(renderUsage(report, 'join'));
      expect(renderUsage(report, 'owner')).toMatch(/^risk\s+1\s+0\s/m);
      expect(byJoin.stdout).toMatch(
        new RegExp(
          `^fraud_model\\s+fraud\\s+${report.joins.find((j) => j.name === 'fraud_model')!.requests}\\s`,
          'm',
        ),
      );
    },
  );
});

describe.skipIf(!redis)('usage on Redis: two serving nodes', () => {
  it(
    'fetch counters of two stateless nodes on one Redis add up; /v1/usage needs the token',
    { timeout: 60_000 },
    async () => {
      const rng = createRng(0x2ed1);
      const shared = {
        store: 'redis',
        log: 'redis',
        redisUrl: redis!.url,
        redisPrefix: `usage${Date.now()}:`,
      } as const;
      const expected = new Expected();
      const a = await startEmbedded({ repo: usageRepo, ...shared, port: 0, token: 's3cret' });
      const b = await startEmbedded({ repo: usageRepo, ...shared, port: 0, token: 's3cret', workers: false });
      try {
        await ingestEvents(a.log, tx, usageRepo.groupBys, randomEvents(rng, 100));
        await a.drain();
        await Promise.all([
          randomFetches(a, createRng(1), expected, 15),
          randomFetches(b, createRng(2), expected, 15),
        ]);
        // Over HTTP too (the routes call the same service).
        const res = await fetch(`${b.url}/v1/features/fraud_model?card_id=c1&merchant_id=m1`, {
          headers: { authorization: 'Bearer s3cret' },
        });
        expect(res.status).toBe(200);
        expected.request(partsOf(fraudModel), [{ card_id: 'c1', merchant_id: 'm1' }]);
        expect((await fetch(`${a.url}/v1/usage`)).status).toBe(401);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
      const store = openStore({ kind: 'redis', url: redis!.url, prefix: shared.redisPrefix });
      try {
        const report = await collectUsage({ store, groupBys: usageRepo.groupBys, joins: usageRepo.joins });
        checkReport(report, expected, await store.stats());
      } finally {
        await store.close();
      }
    },
  );
});
