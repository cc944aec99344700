/**
 * Acceptance: the online path as a user drives it. `tessera serve` (embedded) in a child process, events
 * POSTed in time order, features fetched at explicit times and compared with the DESIGN §1 oracle and with
 * `tessera backfill` at the same times; a `kill -9` mid-stream and a restart on the same data dir; token
 * auth, 4xx on bad bodies, /healthz /readyz /metrics.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, inWindow, oWindow, type OEvent } from './oracle.ts';
import {
  ALL_WINDOWS,
  DAY,
  FULL_AGGS,
  KEYS,
  LEFT_SCHEMA,
  SOURCE_SCHEMA,
  T0,
  aggCode,
  featureName,
  makeScenario,
  writeDefs,
} from './scenario.ts';
import { checkOnline, oracleAccepts, type OnlineAnswer } from './online-check.ts';
import { ServeProcess } from './serve-process.ts';
import { close, readOutput, runCli, tempDir, writeJsonl, removeTempDirs } from './support.ts';

const TOKEN = 'acceptance-s3cret';
const WINDOWS = ALL_WINDOWS.map(oWindow);
const FEATURES = FULL_AGGS.flatMap((agg) =>
  WINDOWS.map((w) => ({ agg, w, name: featureName(undefined, 'act', agg, w) })),
);
// Ingest order is source order online (the log offset breaks ties), so the oracle's seq is the ingest position.
const events: OEvent[] = makeScenario(4242, 900, 0)
  .events.slice()
  .sort((a, b) => a.ts - b.ts || a.seq - b.seq)
  .map((e, seq) => ({ ...e, seq }));
/** Phase boundaries: query times of a phase lie in (previous cut, cut]. */
const CUTS = [T0 + 3 * DAY, T0 + 6 * DAY, T0 + 9 * DAY];
const QUERY_KEYS = [...KEYS, 'ghost'];

let dir = '';
let repo = '';
let dataDir = '';
let srv: ServeProcess;
let sent = 0;
/** Every online answer: (key, at) → features, for the online == offline check. */
const answers: OnlineAnswer[] = [];
let url = '';
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
  srv.post(path, body, headers);
const metric = (name: string, label: string) => srv.metric(name, label);
const waitApplied = () => srv.waitApplied('ev', 'act', sent);

/** Sends (in batches) every not-yet-sent event with ts <= upTo: an event at exactly `at` must not count. */
async function ingestThrough(upTo: number): Promise<void> {
  const batch = events.filter((e) => e.seq >= sent && e.ts <= upTo);
  for (let i = 0; i < batch.length; i += 200) {
    const chunk = batch.slice(i, i + 200);
    const res = await post('/v1/events/ev', {
      events: chunk.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.accepted).toBe(chunk.length);
    sent += chunk.length;
  }
}

/**
 * Query times in (from, to]: exact event times (some with a tie), hop boundaries of every window, the
 * sawtooth edge (an event time plus a window size), and plain random instants; ascending.
 */
function queryTimes(from: number, to: number, n: number, seed: number): number[] {
  let a = seed;
  const r = () => (a = (a * 1103515245 + 12345) % 2147483648) / 2147483648;
  const inRange = events.filter((e) => e.ts > from && e.ts <= to);
  const out = new Set<number>();
  for (let i = 0; out.size < n && i < 50 * n; i++) {
    const mode = r();
    const e = inRange[Math.floor(r() * inRange.length)]!;
    const w = WINDOWS[Math.floor(r() * (WINDOWS.length - 1))]!;
    let t: number;
    if (mode < 0.35) t = e.ts;
    else if (mode < 0.6) {
      const h = [1000, 300_000, 1_200_000, 3_600_000, 21_600_000, DAY][Math.floor(r() * 6)]!;
      t = Math.ceil((from + r() * (to - from)) / h) * h;
    } else if (mode < 0.8)
      t = e.ts - (w.sizeMs ?? 0) + (w.sizeMs ?? 0) * Math.ceil(r() * 2) + (r() < 0.5 ? 0 : 1);
    else t = Math.floor(from + r() * (to - from));
    if (t > from && t <= to) out.add(t);
  }
  return [...out].sort((x, y) => x - y);
}

/** Online at "now" = t: ingest every event with ts <= t, wait until applied, fetch at t, check. */
async function stepTo(t: number): Promise<string[]> {
  await ingestThrough(t);
  await waitApplied();
  return queryAndCheck(t);
}

async function queryAndCheck(at: number, record = true): Promise<string[]> {
  const { problems, answers: got } = await checkOnline(srv, 'model', QUERY_KEYS, FEATURES, events, at);
  if (record) answers.push(...got);
  return problems;
}

beforeAll(async () => {
  dir = tempDir();
  repo = join(dir, 'repo');
  dataDir = join(dir, 'state');
  mkdirSync(join(repo, 'data'), { recursive: true });
  writeJsonl(
    join(repo, 'data/events.jsonl'),
    events.map((e) => ({ user: e.key, ...e.values, ts: e.ts })),
  );
  writeJsonl(join(repo, 'data/left.jsonl'), [{ row_id: 1, uid: 'u0', ts: T0, label: null }]);
  writeDefs(
    repo,
    'defs.ts',
    `
export const ev = eventSource({ name: 'ev', path: 'data/events.jsonl', timeColumn: 'ts', schema: ${SOURCE_SCHEMA} });
export const q = eventSource({ name: 'q', path: 'data/left.jsonl', timeColumn: 'ts', schema: ${LEFT_SCHEMA} });
export const act = groupBy({ name: 'act', source: ev, keys: ['user'], aggregations: [
    ${aggCode(FULL_AGGS, ALL_WINDOWS)}
] });
export const recent = groupBy({ name: 'recent', source: ev, keys: ['user'], aggregations: [
    count({ windows: ['1h'] }), sum('n', { windows: ['10m'] }),
] });
export const model = join({ name: 'model', left: q, parts: [
  { groupBy: act, keys: { user: 'uid' } },
  { groupBy: recent, keys: { user: 'uid' } },
], derive: {
  x_per_event_1d: { type: col.float().nullable(), fn: (f) => (f.act_count_1d > 0 && f.act_x_sum_1d !== null ? f.act_x_sum_1d / f.act_count_1d : null) },
} });
`,
  );
  srv = new ServeProcess(['--repo', repo, '--data-dir', dataDir], TOKEN);
  await srv.start();
  url = srv.url;
}, 60_000);

afterAll(async () => {
  await srv?.stop('SIGTERM');
  removeTempDirs();
});

describe('tessera serve (embedded) as a user drives it', () => {
  it('health and readiness answer without a token; the API and /metrics need it', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const noToken = await post(
      '/v1/features/model',
      { keys: { uid: 'u0' } },
      { 'content-type': 'application/json' },
    );
    expect(noToken.status).toBe(401);
    const wrong = await post(
      '/v1/features/model',
      { keys: { uid: 'u0' } },
      { ...auth, authorization: 'Bearer nope' },
    );
    expect(wrong.status).toBe(401);
    const ev = await post('/v1/events/ev', { events: [] }, { 'content-type': 'application/json' });
    expect(ev.status).toBe(401);
  });

  it('rejects bad bodies with 4xx and a reason, and a bad event batch whole', async () => {
    for (const body of [
      {},
      { rows: 'u0' },
      { rows: [] },
      { rows: [{ nope: 1 }] },
      { rows: [{ uid: 'u0' }], at: 'yesterday' },
    ]) {
      const res = await post('/v1/features/model', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(typeof res.json.message).toBe('string');
    }
    const tooMany = await post('/v1/features/model', {
      rows: Array.from({ length: 1001 }, () => ({ uid: 'u0' })),
    });
    expect(tooMany.status).toBe(400);
    const full = await post('/v1/features/model', {
      rows: Array.from({ length: 1000 }, (_, i) => ({ uid: `k${i}` })),
    });
    expect(full.status, JSON.stringify(full.json).slice(0, 300)).toBe(200);
    expect(full.json.rows.length).toBe(1000);
    expect((await post('/v1/features/nope', { keys: { uid: 'u0' } })).status).toBe(404);
    expect((await post('/v1/events/nope', { events: [] })).status).toBe(404);
    const bad = await post('/v1/events/ev', {
      events: [
        { user: 'u0', n: 1, x: 1, s: 'a', ts: T0 },
        { user: 'u0', n: 'two', x: 1, s: 'a', ts: T0 },
        { user: 'u0', n: 1, x: 1, s: 'a', ts: 'not a time' },
      ],
    });
    expect(bad.status).toBe(400);
    const text = JSON.stringify(bad.json);
    expect(text).toMatch(/\bn\b/);
    expect(text).toMatch(/\bts\b/);
    expect(bad.json.issues?.length).toBe(2);
    // Nothing of the rejected batch was accepted.
    await new Promise((r) => setTimeout(r, 200));
    expect(await metric('tessera_groupby_events_applied', 'group_by="act"')).toBe(0);
  });

  it('phase 1: fetches at "now" (event times, hop boundaries, sawtooth edges) equal the oracle', async () => {
    const problems: string[] = [];
    for (const t of queryTimes(T0, CUTS[0]!, 10, 1)) problems.push(...(await stepTo(t)));
    expect(problems).toEqual([]);
  });

  it('statuses: a key with events is ok, a key with none is missing_key with empty values', () => {
    const lastAt = answers.at(-1)!.at;
    const last = answers.filter((a) => a.at === lastAt);
    expect(last.find((a) => a.uid === 'u0')!.status.act_count_lifetime).toBe('ok');
    const ghost = last.find((a) => a.uid === 'ghost')!;
    expect(ghost.status.act_count_lifetime).toBe('missing_key');
    expect(ghost.features.act_count_lifetime).toBe(0);
    expect(ghost.features.act_s_histogram_1d).toEqual({});
    expect(ghost.features.act_x_sum_1d).toBe(null);
  });

  it('a kill -9 right after ingest, then a restart on the same data dir, loses and double-counts nothing', async () => {
    const times = queryTimes(CUTS[0]!, CUTS[1]!, 8, 2);
    const problems: string[] = [];
    for (const t of times.slice(0, 4)) problems.push(...(await stepTo(t)));
    await ingestThrough(times[4]!);
    await srv.stop('SIGKILL');
    await srv.start();
    for (const t of times.slice(4)) problems.push(...(await stepTo(t)));
    expect(problems).toEqual([]);
  });

  it('phase 3 after the restart, and GET with ?at= (ISO) gives the same as POST', async () => {
    const problems: string[] = [];
    for (const t of queryTimes(CUTS[1]!, CUTS[2]!, 8, 3)) problems.push(...(await stepTo(t)));
    expect(problems).toEqual([]);
    const at = answers.at(-1)!.at;
    const get = await fetch(`${url}/v1/features/model?uid=u0&at=${new Date(at).toISOString()}`, {
      headers: auth,
    });
    expect(get.status).toBe(200);
    const body = (await get.json()) as { features: Record<string, unknown> };
    const viaPost = answers.find((a) => a.uid === 'u0' && a.at === at)!;
    expect(body.features).toEqual(viaPost.features);
  });

  it('/metrics reports fetch latency by join, ingest by source, freshness by group-by', async () => {
    const text = await (await fetch(`${url}/metrics`, { headers: auth })).text();
    expect(text).toMatch(/tessera_fetch_seconds_bucket\{[^}]*join="model"/);
    expect(text).toMatch(/tessera_events_ingested_total\{[^}]*source="ev"[^}]*\} \d+/);
    expect(text).toMatch(/tessera_groupby_freshness_seconds\{[^}]*group_by="act"/);
  });

  // qa-findings F2 (fixed in 3ae1f4a): tiles are compacted to the watermark, so a fetch at a past `at` used
  // to be silently inexact. Now: exact within --exact-history (default 1h) of the newest event, and beyond
  // that either exact or flagged `inexact`, never a wrong value marked `ok`.
  async function pastProblems(ats: number[], allowFlagged: boolean): Promise<string[]> {
    const problems: string[] = [];
    for (const at of ats) {
      const res = await post('/v1/features/model', { rows: QUERY_KEYS.map((uid) => ({ uid })), at });
      if (allowFlagged && res.status >= 400 && res.status < 500) continue;
      if (res.status !== 200) problems.push(`at=${at}: HTTP ${res.status}`);
      QUERY_KEYS.forEach((uid, i) => {
        const row = res.json.rows?.[i];
        const mine = events.filter((e) => e.key === uid);
        for (const f of FEATURES) {
          const status = row?.status[f.name];
          if (allowFlagged && status !== 'ok' && status !== 'missing_key') continue; // the user is told
          const evs = inWindow(mine, f.w, at);
          if (
            (status === 'inexact' || !oracleAccepts(f.agg, row?.features[f.name], evs)) &&
            problems.length < 10
          )
            problems.push(
              `${f.name} uid=${uid} at=${at} status ${status}: got ${JSON.stringify(row?.features[f.name])}`,
            );
        }
      });
    }
    return problems;
  }

  it('a fetch at a past `at` within the exact history (1h) is exact', async () => {
    const newest = answers.at(-1)!.at;
    expect(await pastProblems([newest - 1500, newest - 61_000, newest - 59 * 60_000], false)).toEqual([]);
  });

  it('a fetch at an `at` older than that is exact or flagged, never wrong and ok', async () => {
    const newest = answers.at(-1)!.at;
    expect(await pastProblems([newest - 3 * 3_600_000 - 1234, newest - 2 * DAY], true)).toEqual([]);
  });

  it('a late event within retention counts; one beyond retention is counted and reported, not dropped', async () => {
    const now = answers.at(-1)!.at;
    const late: OEvent = {
      key: 'u1',
      ts: now - 20 * 60_000,
      seq: events.length,
      values: { n: 7, x: 1.5, s: 'late' },
    };
    const ancient: OEvent = {
      key: 'u2',
      ts: T0 - 30 * DAY,
      seq: events.length + 1,
      values: { n: 1, x: 2.5, s: 'old' },
    };
    for (const e of [late, ancient]) {
      const res = await post('/v1/events/ev', [{ user: e.key, ...e.values, ts: e.ts }]);
      expect(res.status, JSON.stringify(res.json)).toBe(200);
    }
    const deadline = Date.now() + 20_000;
    let lateCount: number | null = null;
    while (Date.now() < deadline) {
      lateCount = await metric('tessera_groupby_events_late_beyond_retention', 'group_by="recent"');
      if (lateCount === 1 && (await metric('tessera_source_lag_events', 'source="ev"')) === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lateCount).toBe(1);
    const at = now + 1;
    const res = await post('/v1/features/model', { rows: [{ uid: 'u1' }, { uid: 'u2' }], at });
    expect(res.status).toBe(200);
    const all = [...events, late, ancient];
    for (const [i, uid] of ['u1', 'u2'].entries()) {
      const mine = all.filter((e) => e.key === uid);
      const f = res.json.rows[i].features;
      expect(f.recent_count_1h).toBe(inWindow(mine, oWindow('1h'), at).length);
      expect(f.act_count_lifetime).toBe(inWindow(mine, oWindow('lifetime'), at).length);
      expect(f.act_s_histogram_lifetime).toEqual(
        evaluate({ op: 'histogram', input: 's' }, inWindow(mine, oWindow('lifetime'), at)),
      );
    }
  });

  it('GET /v1/groupbys/:name returns the same values as the join', async () => {
    const at = answers.at(-1)!.at;
    const viaJoin = answers.find((a) => a.uid === 'u3' && a.at === at)!;
    const res = await fetch(`${url}/v1/groupbys/act?user=u3&at=${at}`, { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { features: Record<string, unknown> };
    for (const f of FEATURES) expect(body.features[f.name], f.name).toEqual(viaJoin.features[f.name]);
  });

  it('online equals the offline backfill at the same (key, time), sketches identically', async () => {
    const left = answers.map((a, i) => ({ row_id: i, uid: a.uid, ts: a.at, label: null }));
    writeJsonl(join(dir, 'probe.jsonl'), left);
    const r = await runCli([
      'backfill',
      '--repo',
      repo,
      '--join',
      'model',
      '--left',
      join(dir, 'probe.jsonl'),
      '--out',
      join(dir, 'probe.parquet'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const offline = await readOutput(join(dir, 'probe.parquet'));
    const problems: string[] = [];
    answers.forEach((a, i) => {
      const derived = offline[i]!.x_per_event_1d;
      expect(typeof a.features.x_per_event_1d === 'number' || a.features.x_per_event_1d === null).toBe(true);
      if (!close(a.features.x_per_event_1d, derived) && problems.length < 10)
        problems.push(
          `x_per_event_1d uid=${a.uid} at=${a.at}: online ${a.features.x_per_event_1d} offline ${derived}`,
        );
      for (const f of FEATURES) {
        let off = offline[i]![f.name];
        if (f.agg.op === 'histogram') off = JSON.parse(String(off));
        if (!close(a.features[f.name], off) && problems.length < 10)
          problems.push(
            `${f.name} uid=${a.uid} at=${a.at}: online ${JSON.stringify(a.features[f.name])} offline ${JSON.stringify(off)}`,
          );
      }
    });
    expect(problems).toEqual([]);
    expect(answers.filter((a) => typeof a.features.x_per_event_1d === 'number').length).toBeGreaterThan(10);
  });
});
