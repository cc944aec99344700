/**
 * Outside-checker audit: a random corpus is posted to a real `tessera serve` child process over HTTP, the
 * process is SIGKILLed at random points (after accepted batches, while workers apply a backlog, and in the
 * middle of a POST) and restarted, then every feature of both joins and of direct group-by fetches is
 * compared, at many times `at`, with an independent brute-force oracle (audit-oracle.ts) written from
 * DESIGN §1. Runs on LMDB and on Redis (a test-owned redis-server). AUDIT_SOAK=1 runs a larger corpus with
 * more kills and more store/partition configurations; AUDIT_RUNS=name,... picks runs (see RUNS);
 * AUDIT_SEED=n picks the seed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { entityKey } from '../../src/online/entity-key.ts';
import { freePort, startRedis, type TestServer } from '../support/servers.ts';
import { rng } from '../support/rng.ts';
import {
  ACC,
  CLICK_MODEL,
  GROUP_BYS,
  MERCH,
  PAIR,
  repoSource,
  TX_MODEL,
  UC,
  USER,
  type FeatureSpec,
  type GroupBySpec,
  type JoinSpec,
} from './audit-repo.ts';
import { compare, emptyValue, makeCorpus, ODD_USERS, Oracle, parseTs, type Row } from './audit-oracle.ts';

const BIN = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url));
const SOAK = process.env.AUDIT_SOAK === '1';
const SEED = Number(process.env.AUDIT_SEED ?? 20261127);
const HOUR = 3_600_000;
const COUNTRIES = ['US', 'DE', 'FR', 'US\u001fDE'];

class Serve {
  url = '';
  log = '';
  /** Time from spawn to ready, per start. */
  readonly startMs: number[] = [];
  private child: ChildProcess | undefined;
  private port = 0;
  /** Arguments of the next start (a run may change them between restarts). */
  constructor(public args: readonly string[]) {}

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const child = spawn(process.execPath, [BIN, 'serve', ...this.args, '--port', String(this.port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.log += `--- start pid ${child.pid}\n`;
    child.stdout!.on('data', (d) => (this.log += d));
    child.stderr!.on('data', (d) => (this.log += d));
    const t0 = Date.now();
    // Generous: on a loaded 2-core machine a cold tsx start has taken 15 s.
    const deadline = t0 + 90_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`tessera serve exited ${child.exitCode}:\n${this.log}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) {
          this.startMs.push(Date.now() - t0);
          return;
        }
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`tessera serve not ready within 90 s:\n${this.log}`);
  }

  /** SIGKILL by the child's own PID, then wait for it to exit. */
  kill(): Promise<void> {
    const child = this.child;
    return new Promise((done) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGKILL');
    });
  }

  async post(path: string, body: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(this.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: safeJson(text) };
  }

  async get(path: string): Promise<{ status: number; json: any }> {
    const res = await fetch(this.url + path);
    return { status: res.status, json: safeJson(await res.text()) };
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.url}/metrics`)).text();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function metric(text: string, name: string, label: string): number | null {
  const m = new RegExp(`^${name}\\{[^}]*${label}[^}]*\\}\\s+(\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

interface RunConfig {
  readonly name: string;
  /**
   * SIGKILL in the middle of a POST and check the batch is all-or-nothing. Only with one partition: with
   * more, a batch is appended topic by topic and may be half-applied (ingest-atomicity.test.ts).
   */
  readonly inflightKills: boolean;
  /**
   * Partition count per start; a start whose count differs from the first must be refused (the log was
   * written with the first), and the run goes on with the first count.
   */
  readonly partitions?: (start: number) => number;
  readonly exactHistoryMs: number;
  /** `start`: how many (re)starts came before, so a run can change options between restarts. */
  readonly args: (dataDir: string, start: number) => string[];
}

interface RunResult {
  failures: string[];
  checked: number;
  statuses: Record<string, number>;
  /** `${join}|${at}|${row}|${feature}` → sketch value, for the cross-store determinism check. */
  sketches: Map<string, string>;
}

const results = new Map<string, RunResult>();

/** Feeds the corpus with kills, waits for the workers, and compares everything with the oracle. */
async function auditRun(cfg: RunConfig): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-audit-${cfg.name}-`));
  const repoDir = join(dir, 'repo');
  mkdirSync(repoDir);
  writeFileSync(join(repoDir, 'features.ts'), repoSource());
  const failures: string[] = [];
  const stateDir = join(dir, 'state');
  let starts = 0;
  const serve = new Serve([]);
  const start = async () => {
    const n = starts++;
    serve.args = ['--repo', repoDir, ...cfg.args(stateDir, n)];
    const first = cfg.partitions?.(0);
    const now = cfg.partitions?.(n);
    if (first === undefined || now === first) return serve.start();
    // Another --partitions on a log written with `first`: must fail at start, naming the count.
    const refused: string | null = await serve.start().then(
      () => null,
      (err: Error) => err.message.slice(err.message.lastIndexOf('--- start')),
    );
    if (refused === null)
      failures.push(`serve started with --partitions ${now} on a log written with ${first}`);
    else if (!refused.includes(`written with ${first} partition`))
      failures.push(
        `--partitions ${now} on a log of ${first}: refused without naming ${first}:\n${refused.slice(-600)}`,
      );
    await serve.kill();
    serve.args = ['--repo', repoDir, ...cfg.args(stateDir, 0)];
    return serve.start();
  };
  const r = rng(SEED ^ 0x5eed);
  const corpus = makeCorpus(SEED, SOAK ? 20_000 : 1_500, SOAK ? 8_000 : 600);
  const oracle = new Oracle(Object.values(GROUP_BYS));
  const result: RunResult = { failures, checked: 0, statuses: {}, sketches: new Map() };
  const t0 = Date.now();
  try {
    await start();

    // Interleaved batches of 1..250 events of both sources.
    const batches: { source: 'tx' | 'clicks'; events: Row[] }[] = [];
    let ti = 0;
    let ci = 0;
    while (ti < corpus.tx.length || ci < corpus.clicks.length) {
      const source = ci >= corpus.clicks.length || (ti < corpus.tx.length && r() < 0.7) ? 'tx' : 'clicks';
      const n = 1 + Math.floor(r() * r() * 250);
      const list = source === 'tx' ? corpus.tx : corpus.clicks;
      const at = source === 'tx' ? ti : ci;
      batches.push({ source, events: list.slice(at, at + n) });
      if (source === 'tx') ti += n;
      else ci += n;
    }
    const kills = new Set<number>();
    const nKills = SOAK ? 12 : 1;
    while (kills.size < nKills) kills.add(1 + Math.floor(r() * (batches.length - 2)));
    const ghostAt = new Set<number>();
    while (cfg.inflightKills && ghostAt.size < (SOAK ? 4 : 1)) ghostAt.add(Math.floor(r() * batches.length));
    const ghosts: { user: string; events: Row[]; acked: boolean }[] = [];
    let lastTs = corpus.base;

    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      const res = await serve.post(`/v1/events/${b.source}`, { events: b.events });
      if (res.status !== 200 || res.json.accepted !== b.events.length) {
        throw new Error(`batch ${i} of ${b.source} not accepted: ${res.status} ${JSON.stringify(res.json)}`);
      }
      oracle.accept(b.source, b.events);
      for (const e of b.events)
        if (typeof e.ts === 'number' && e.ts < Date.now()) lastTs = Math.max(lastTs, e.ts);
      if (kills.has(i)) {
        // Right after an acknowledged batch: the workers are (or are about to be) applying it.
        await sleep(Math.floor(r() * 40));
        await serve.kill();
        await start();
      }
      if (ghostAt.has(i)) {
        // Killed in the middle of a POST: the batch must be all-or-nothing. Its events go to a user no other
        // event has, with null merchant and amount, so resolving it later cannot change other values.
        const user = `ghost${ghosts.length}`;
        const events: Row[] = Array.from({ length: 50 + Math.floor(r() * 200) }, (_, j) => ({
          user_id: user,
          merchant: null,
          amount: null,
          qty: j % 7,
          flag: null,
          country: 'DE',
          ts: lastTs - j * 1000,
        }));
        const pending = serve
          .post('/v1/events/tx', { events })
          .then((x) => x.status === 200)
          .catch(() => false);
        await sleep(Math.floor(r() * 4));
        await serve.kill();
        const acked = await pending;
        ghosts.push({ user, events, acked });
        if (acked) oracle.accept('tx', events);
        await start();
      }
    }
    // Kill once more while the workers drain whatever is left.
    await serve.kill();
    await start();
    // Unresolved ghost batches (user ids of their own, null merchant) touch only these group-bys.
    const behind = await waitCaughtUp(serve, oracle, ['user', 'recent', 'uc']);
    if (behind) failures.push(behind);

    // Resolve the ghost batches: all or nothing, then into the oracle.
    for (const g of ghosts) {
      if (g.acked) continue;
      const res = await serve.post('/v1/groupbys/user', { rows: [{ user_id: g.user }] });
      const n = res.json.rows?.[0]?.features?.user_count_lifetime;
      if (n === g.events.length) oracle.accept('tx', g.events);
      else if (n !== 0) failures.push(`ghost batch ${g.user}: ${n} of ${g.events.length} events applied`);
    }

    const stillBehind = await waitCaughtUp(serve, oracle);
    if (stillBehind && !behind) failures.push(stillBehind);
    const tIngest = Date.now();
    const times = queryTimes(oracle, r);
    const ghostUsers = ghosts.map((g) => g.user);
    for (const at of times) await checkAt(serve, oracle, cfg, at, ghostUsers, r, result);
    // `at` omitted: now.
    await checkAt(serve, oracle, cfg, undefined, ghostUsers, r, result);
    console.log(
      `[audit ${cfg.name}] ingest+kills ${tIngest - t0} ms (starts ${serve.startMs.join(', ')} ms), ${times.length + 1} query times ${Date.now() - tIngest} ms`,
    );
    return result;
  } catch (err) {
    (err as Error).message += `\n--- serve log (tail):\n${serve.log.slice(-4000)}`;
    throw err;
  } finally {
    await serve.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits until no source lags and applied + late of every group-by (but `except`) equals the oracle's count. */
async function waitCaughtUp(
  serve: Serve,
  oracle: Oracle,
  except: readonly string[] = [],
): Promise<string | null> {
  const deadline = Date.now() + 40_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await serve.metrics();
    const lags = ['tx', 'clicks'].map((s) => metric(text, 'tessera_source_lag_events', `source="${s}"`));
    if (lags.every((l) => l === 0)) {
      // applied + late must account for every routed event of each group-by (nothing silently dropped).
      if (expectedRouted(oracle).every(([gb, n]) => except.includes(gb) || routed(text, gb) === n))
        return null;
    }
    await sleep(100);
  }
  // Reported as a failure, and the values are still compared: they show what went missing.
  return (
    `workers did not catch up in 40 s; expected routed ${JSON.stringify(expectedRouted(oracle))}, metrics:\n` +
    text
      .split('\n')
      .filter((l) => /lag_events|events_applied|late_beyond/.test(l))
      .join('\n')
  );
}

function expectedRouted(oracle: Oracle): [string, number][] {
  return Object.values(GROUP_BYS).map((g) => [
    g.name,
    oracle.keys(g).reduce((n, k) => n + oracle.events(g, k).length, 0),
  ]);
}

function routed(text: string, gb: string): number {
  return (
    (metric(text, 'tessera_groupby_events_applied', `group_by="${gb}"`) ?? 0) +
    (metric(text, 'tessera_groupby_events_late_beyond_retention', `group_by="${gb}"`) ?? 0)
  );
}

/** Times to query: random, exact event times and their neighbours, hop boundaries, the newest event, old. */
function queryTimes(oracle: Oracle, r: () => number): number[] {
  const evs = oracle.accepted;
  const maxTs = Math.max(oracle.maxTs.tx, oracle.maxTs.clicks);
  const minTs = maxTs - 2 * 24 * HOUR;
  const out = new Set<number>([maxTs, maxTs + 1, maxTs - HOUR + 1, maxTs + 3 * HOUR]);
  const n = SOAK ? 60 : 5;
  for (let i = 0; i < n; i++) out.add(Math.floor(minTs + r() * (maxTs - minTs)));
  for (let i = 0; i < n; i++) {
    const e = evs[Math.floor(r() * evs.length)]!;
    out.add(e.ts + [0, 1, -1][i % 3]!);
  }
  for (let i = 0; i < n / 2; i++) {
    const t = Math.floor(maxTs - r() * 4 * HOUR);
    out.add(Math.floor(t / HOUR) * HOUR);
    out.add(Math.floor(t / 300_000) * 300_000);
  }
  // A very old time (just after a weeks-late event) and one in 2001.
  const old = evs.filter((e) => e.ts < minTs);
  if (old.length > 0) out.add(old[0]!.ts + 1);
  out.add(Date.UTC(2001, 0, 1, 12));
  out.add(1000 + 12 * HOUR);
  out.add(-12 * HOUR);
  for (const t of oracle.future) {
    out.add(t + 1);
    out.add(t + 30 * 60_000);
  }
  return [...out].sort((a, b) => a - b);
}

interface Target {
  gb: GroupBySpec;
  prefix: string;
  keyValues: unknown[];
}

/** Compares one served row (features + status) with the oracle. */
function checkRow(
  ctx: string,
  at: number,
  cfg: RunConfig,
  oracle: Oracle,
  targets: Target[],
  served: { features: Record<string, unknown>; status: Record<string, string> },
  result: RunResult,
): Map<string, unknown> {
  const okValues = new Map<string, unknown>();
  const seen = new Set<string>();
  for (const t of targets) {
    const expected = oracle.values(t.gb, t.keyValues, at);
    const hasEvents = oracle.events(t.gb, t.keyValues).length > 0;
    const maxTs = oracle.trueMaxTs[t.gb.source];
    for (const f of t.gb.features) {
      const name = t.prefix + f.name;
      seen.add(name);
      if (!(name in served.features)) {
        result.failures.push(`${ctx}: feature ${name} missing from the response`);
        continue;
      }
      const status = served.status?.[name] ?? '(none)';
      const value = served.features[name];
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      result.checked++;
      const where = `${ctx} ${name} [${status}] key=${JSON.stringify(t.keyValues)}`;
      if (status === 'ok') {
        const d = compare(f, expected[f.name], value);
        if (d) result.failures.push(`${where}: ${d}`);
        else okValues.set(name, value);
        if (f.op === 'approx_unique_count' || f.op === 'approx_percentile')
          result.sketches.set(`${ctx}|${name}`, JSON.stringify(value));
      } else if (status === 'missing_key') {
        // No tiles for the entity: the empty value, which must also be the right one (an entity whose events
        // were all dropped as late beyond retention has no tiles either, so `hasEvents` alone is no error).
        const d = compare(f, expected[f.name], value);
        if (d)
          result.failures.push(
            `${where}: missing_key with a wrong value (${hasEvents ? 'entity has events' : 'no events'}): ${d}`,
          );
        else if (JSON.stringify(value) !== JSON.stringify(emptyValue(f)))
          result.failures.push(
            `${where}: missing_key value ${JSON.stringify(value)}, expected the empty value`,
          );
        else okValues.set(name, value);
      } else if (status === 'inexact') {
        if (value !== null)
          result.failures.push(`${where}: inexact with a non-null value ${JSON.stringify(value)}`);
        // The worker's watermark is at most the newest ts and at most its wall clock + 60 s.
        if (at >= Math.min(maxTs, Date.now() + 60_000) - cfg.exactHistoryMs)
          result.failures.push(
            `${where}: inexact at ${at}, within --exact-history of the newest event ${maxTs}`,
          );
      } else {
        result.failures.push(`${where}: unexpected status after catch-up (value ${JSON.stringify(value)})`);
      }
    }
  }
  return okValues;
}

function featureOf(gb: GroupBySpec, name: string): FeatureSpec {
  return gb.features.find((f) => f.name === name)!;
}

async function checkAt(
  serve: Serve,
  oracle: Oracle,
  cfg: RunConfig,
  atIn: number | undefined,
  ghostUsers: string[],
  r: () => number,
  result: RunResult,
): Promise<void> {
  const atField = atIn === undefined ? {} : { at: r() < 0.3 ? new Date(atIn).toISOString() : atIn };

  // tx_model: every user (and ghosts, and an unknown one), merchants cycling through known, null, unknown.
  const merchants = [...oracle.keys(MERCH).map((k) => k[0] as string), null, 'm_unknown'];
  const users = [
    ...new Set([...oracle.keys(USER).map((k) => k[0] as string), ...ODD_USERS, ...ghostUsers, 'nobody']),
  ];
  const txRows = users.map((u, i) => {
    const row: Row = {
      user_id: u,
      merchant: merchants[i % merchants.length]!,
      country: COUNTRIES[i % COUNTRIES.length]!,
    };
    if (i % 3 !== 0) row.amount = Math.round(r() * 10000) / 100;
    return row;
  });
  const txRes = await serve.post(`/v1/features/${TX_MODEL.name}`, { rows: txRows, ...atField });
  if (txRes.status !== 200) {
    result.failures.push(`tx_model at ${atIn}: HTTP ${txRes.status} ${JSON.stringify(txRes.json)}`);
    return;
  }
  const at = parseTs(txRes.json.at);
  if (atIn !== undefined && at !== atIn)
    result.failures.push(`tx_model: response at ${txRes.json.at} != ${atIn}`);
  txRows.forEach((row, i) => {
    const served = txRes.json.rows[i];
    const ctx = `${cfg.name} tx_model at=${at} row=${JSON.stringify(row)}`;
    const ok = checkRow(ctx, at, cfg, oracle, joinTargets(TX_MODEL, row), served, result);
    checkTxDerived(ctx, at, row, ok, served, result);
    checkNoExtra(ctx, TX_MODEL, served, result);
  });

  // click_model: every (a, b) pair, with user ids cycling (some null), plus unknown pairs.
  const pairs = oracle.keys(PAIR);
  const clickRows: Row[] = [...pairs, [99, 'm00'], [1, 'zz']].map(([a, b], i) => ({
    a: a as number,
    b: b as string,
    user_id: i % 4 === 0 ? null : users[i % users.length]!,
  }));
  // The second request body shape: the same `at` as computed for tx_model (so `now` agrees).
  const clickRes = await serve.post(`/v1/features/${CLICK_MODEL.name}`, { rows: clickRows, at });
  if (clickRes.status !== 200) {
    result.failures.push(`click_model at ${at}: HTTP ${clickRes.status} ${JSON.stringify(clickRes.json)}`);
    return;
  }
  clickRows.forEach((row, i) => {
    const served = clickRes.json.rows[i];
    const ctx = `${cfg.name} click_model at=${at} row=${JSON.stringify(row)}`;
    checkRow(ctx, at, cfg, oracle, joinTargets(CLICK_MODEL, row), served, result);
    checkNoExtra(ctx, CLICK_MODEL, served, result);
  });

  // Direct group-by fetches: POST with rows, GET with query strings (values converted by column type).
  // Both joins in one request (POST /v1/features): rows carry the keys of both.
  const bothRows = txRows
    .slice(0, 12)
    .map((row, i) => ({ ...row, ...clickRows[i % clickRows.length]!, user_id: row.user_id }));
  const both = await serve.post('/v1/features', {
    joins: [TX_MODEL.name, CLICK_MODEL.name],
    rows: bothRows,
    at,
  });
  if (both.status !== 200)
    result.failures.push(`POST /v1/features: HTTP ${both.status} ${JSON.stringify(both.json)}`);
  else
    for (const j of [TX_MODEL, CLICK_MODEL])
      bothRows.forEach((row, i) => {
        const ctx = `${cfg.name} /v1/features ${j.name} at=${at} row=${JSON.stringify(row)}`;
        const served = both.json.joins?.[j.name]?.[i];
        if (!served) return void result.failures.push(`${ctx}: no row in the response`);
        const ok = checkRow(ctx, at, cfg, oracle, joinTargets(j, row), served, result);
        if (j === TX_MODEL) checkTxDerived(ctx, at, row, ok, served, result);
        checkNoExtra(ctx, j, served, result);
      });

  // Two string key columns, incl. values containing the \u001f that joins key columns in the store.
  const ucKeys = [
    ...oracle.keys(UC),
    ['q\u001fUS', 'DE'],
    ['q', 'US\u001fDE'],
    ['q', 'US'],
    ['nobody', 'US'],
  ];
  const ucRes = await serve.post('/v1/groupbys/uc', {
    rows: ucKeys.map(([user_id, country]) => ({ user_id, country })),
    at,
  });
  if (ucRes.status !== 200)
    result.failures.push(`groupbys/uc: HTTP ${ucRes.status} ${JSON.stringify(ucRes.json)}`);
  else
    ucKeys.forEach((k, i) =>
      checkRow(
        `${cfg.name} groupbys/uc at=${at}`,
        at,
        cfg,
        oracle,
        [{ gb: UC, prefix: '', keyValues: k }],
        ucRes.json.rows[i],
        result,
      ),
    );

  const accRows = [1, 2, 3, 4, 5, 6, 7].map((a) => ({ a }));
  const accRes = await serve.post('/v1/groupbys/acc', { rows: accRows, at });
  if (accRes.status !== 200)
    result.failures.push(`groupbys/acc: HTTP ${accRes.status} ${JSON.stringify(accRes.json)}`);
  else
    accRows.forEach((row, i) =>
      checkRow(
        `${cfg.name} groupbys/acc at=${at} a=${row.a}`,
        at,
        cfg,
        oracle,
        [{ gb: ACC, prefix: '', keyValues: [row.a] }],
        accRes.json.rows[i],
        result,
      ),
    );
  for (let i = 0; i < 3; i++) {
    const [a, b] = pairs[Math.floor(r() * pairs.length)]!;
    const res = await serve.get(`/v1/groupbys/pair?a=${a}&b=${b}&at=${at}`);
    if (res.status !== 200)
      result.failures.push(`GET groupbys/pair: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    else
      checkRow(
        `${cfg.name} GET groupbys/pair at=${at} a=${a} b=${b}`,
        at,
        cfg,
        oracle,
        [{ gb: PAIR, prefix: '', keyValues: [a, b] }],
        res.json,
        result,
      );
    const u = users[Math.floor(r() * users.length)]!;
    const m = merchants[Math.floor(r() * (merchants.length - 2))]!;
    const amount = Math.round(r() * 1000) / 10;
    const q = new URLSearchParams({
      user_id: u,
      merchant: m,
      country: 'DE',
      amount: String(amount),
      at: new Date(at).toISOString(),
    });
    const g = await serve.get(`/v1/features/tx_model?${q}`);
    if (g.status !== 200)
      result.failures.push(`GET features/tx_model: HTTP ${g.status} ${JSON.stringify(g.json)}`);
    else {
      const row: Row = { user_id: u, merchant: m, country: 'DE', amount };
      const ctx = `${cfg.name} GET tx_model at=${at} row=${JSON.stringify(row)}`;
      const ok = checkRow(ctx, at, cfg, oracle, joinTargets(TX_MODEL, row), g.json, result);
      checkTxDerived(ctx, at, row, ok, g.json, result);
    }
  }
}

function joinTargets(j: JoinSpec, row: Row): Target[] {
  return j.parts.map((p) => ({
    gb: p.groupBy,
    prefix: p.prefix ? `${p.prefix}_` : '',
    keyValues: p.groupBy.keys.map((k) => row[p.keys[k]!] ?? null),
  }));
}

function checkNoExtra(
  ctx: string,
  j: JoinSpec,
  served: { features: Record<string, unknown> },
  result: RunResult,
): void {
  const names = new Set([
    ...j.parts.flatMap((p) => p.groupBy.features.map((f) => (p.prefix ? `${p.prefix}_` : '') + f.name)),
    ...j.derived,
  ]);
  const extra = Object.keys(served.features).filter((n) => !names.has(n));
  if (extra.length > 0) result.failures.push(`${ctx}: unexpected features ${extra.join(', ')}`);
}

function checkTxDerived(
  ctx: string,
  at: number,
  row: Row,
  ok: Map<string, unknown>,
  served: { features: Record<string, unknown> },
  result: RunResult,
): void {
  const hour = new Date(at).getUTCHours();
  if (served.features.at_hour !== hour)
    result.failures.push(`${ctx}: at_hour ${served.features.at_hour}, expected ${hour}`);
  if (!ok.has('user_amount_avg_1d')) return;
  const avg = ok.get('user_amount_avg_1d') as number | null;
  const amount = (row.amount ?? null) as number | null;
  const want = amount === null || avg === null ? null : amount - avg;
  const got = served.features.amt_vs_avg as number | null;
  const same =
    want === null
      ? got === null
      : typeof got === 'number' && Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want));
  if (!same) result.failures.push(`${ctx}: amt_vs_avg ${got}, expected ${want}`);
  void featureOf;
}

/**
 * Known bug (entity-key.test.ts, it.fails): multi-column keys whose values contain \u001f share an entity.
 * While it stands, its mismatches (group-by `uc`, keys with \u001f) are reported but do not fail this test;
 * once entityKey is fixed they count again automatically.
 */
function setAsideKnownBugs(res: RunResult): void {
  if (entityKey(['q\u001fUS', 'DE']) !== entityKey(['q', 'US\u001fDE'])) return;
  const known = res.failures.filter((f) => /\buc_\w+ \[/.test(f) && f.includes('\\u001f'));
  if (known.length === 0) return;
  console.warn(
    `[audit] ${known.length} mismatches of the known entity-key collision set aside, e.g. ${known[0]}`,
  );
  res.failures = res.failures.filter((f) => !known.includes(f));
}

function report(res: RunResult): string {
  const byFeature = new Map<string, number>();
  for (const f of res.failures) {
    const m = / ([a-z_]+_[a-z0-9_]+) \[/.exec(f);
    const k = m ? m[1]! : f.slice(0, 60);
    byFeature.set(k, (byFeature.get(k) ?? 0) + 1);
  }
  return (
    `checked ${res.checked} values, statuses ${JSON.stringify(res.statuses)}, ${res.failures.length} failures\n` +
    [...byFeature].map(([k, n]) => `  ${n}× ${k}`).join('\n') +
    '\nfirst failures:\n' +
    res.failures.slice(0, 15).join('\n')
  );
}

function partitionsAt(spec: RunSpec, start: number): number {
  return typeof spec.partitions === 'number'
    ? spec.partitions
    : spec.partitions[start % spec.partitions.length]!;
}

interface RunSpec {
  readonly name: string;
  readonly store: 'lmdb' | 'redis';
  /** Per start, cycling: a count other than the first must be refused at start (the log keeps its count). */
  readonly partitions: number | readonly number[];
  readonly exactHistory: '1h' | '7d';
  readonly soakOnly: boolean;
}

// Default (npm test): one LMDB and one Redis run. AUDIT_SOAK=1 adds the others, with a larger corpus.
const RUNS: RunSpec[] = [
  { name: 'lmdb-1h', store: 'lmdb', partitions: 1, exactHistory: '1h', soakOnly: false },
  { name: 'redis-1h-p2', store: 'redis', partitions: 2, exactHistory: '1h', soakOnly: false },
  { name: 'lmdb-7d', store: 'lmdb', partitions: 1, exactHistory: '7d', soakOnly: true },
  { name: 'lmdb-1h-p2', store: 'lmdb', partitions: 2, exactHistory: '1h', soakOnly: true },
  { name: 'redis-1h', store: 'redis', partitions: 1, exactHistory: '1h', soakOnly: true },
  { name: 'lmdb-repartition', store: 'lmdb', partitions: [2, 3, 1], exactHistory: '1h', soakOnly: true },
];

describe('audit: tessera serve over HTTP against an independent oracle, with SIGKILLs', () => {
  const only = process.env.AUDIT_RUNS?.split(',');
  for (const spec of RUNS.filter((s) => (only ? only.includes(s.name) : SOAK || !s.soakOnly))) {
    // Concurrent by default (much of a run is waiting for restarts, and npm test must stay short); the soak
    // runs one at a time so five cold starts do not compete for the cores.
    (SOAK ? it : it.concurrent)(
      `${spec.name}: every served value matches the oracle`,
      { timeout: SOAK ? 1_800_000 : 300_000 },
      async (ctx) => {
        let redis: TestServer | null = null;
        if (spec.store === 'redis') {
          redis = await startRedis();
          if (!redis) return ctx.skip();
        }
        try {
          const cfg: RunConfig = {
            name: spec.name,
            inflightKills: true,
            partitions: (n) => partitionsAt(spec, n),
            exactHistoryMs: spec.exactHistory === '1h' ? HOUR : 7 * 24 * HOUR,
            args: (d, n) => [
              '--data-dir',
              d,
              '--exact-history',
              spec.exactHistory,
              '--partitions',
              String(partitionsAt(spec, n)),
              ...(redis ? ['--store', 'redis', '--log', 'redis', '--redis', redis.url] : []),
            ],
          };
          const res = await auditRun(cfg);
          results.set(cfg.name, res);
          console.log(`[audit ${cfg.name}] ${report(res)}`);
          expect(res.failures, report(res)).toEqual([]);
          expect(res.statuses.ok).toBeGreaterThan(1000);
        } finally {
          await redis?.stop();
        }
      },
    );
  }

  it('sketches are identical across stores and runs for the same events', () => {
    const runs = [...results.values()];
    if (runs.length < 2) return;
    const diffs: string[] = [];
    const strip = (k: string) => k.replace(/^\S+ /, '');
    const base = new Map([...runs[0]!.sketches].map(([k, v]) => [strip(k), v]));
    for (const run of runs.slice(1))
      for (const [k, v] of run.sketches) {
        const other = base.get(strip(k));
        if (other !== undefined && other !== v) diffs.push(`${k}: ${v} vs ${other}`);
      }
    expect(diffs.slice(0, 10)).toEqual([]);
  });
});

void GROUP_BYS;
