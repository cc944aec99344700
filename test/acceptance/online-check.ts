/** Fetches a join's features at `at` over HTTP and compares every feature with the DESIGN §1 oracle. */
import {
  approxCountOk,
  evaluate,
  floatScale,
  inWindow,
  percentilesOk,
  type OAgg,
  type OEvent,
  type OWindow,
} from './oracle.ts';
import type { ServeProcess } from './serve-process.ts';
import { close } from './support.ts';

export interface CheckedFeature {
  readonly name: string;
  readonly agg: OAgg;
  readonly w: OWindow;
}

export interface OnlineAnswer {
  readonly uid: string;
  readonly at: number;
  readonly features: Record<string, unknown>;
  readonly status: Record<string, string>;
}

/** True when a produced value is what the oracle allows (sketches by closeness, the rest exactly/1e-9). */
export function oracleAccepts(agg: OAgg, got: unknown, events: readonly OEvent[]): boolean {
  const want = evaluate(agg, events);
  if (agg.op === 'approx_unique_count') return approxCountOk(got, want as number | null);
  if (agg.op === 'approx_percentile') return percentilesOk(got, want as number[] | null, agg.percentiles!);
  return close(got, want, floatScale(agg, events));
}

/**
 * POSTs one row per key (left column `uid`) at `at`, checks every feature against the oracle over `events`,
 * and returns the problems (at most 10) and the answers.
 */
export async function checkOnline(
  srv: ServeProcess,
  joinName: string,
  keys: readonly string[],
  features: readonly CheckedFeature[],
  events: readonly OEvent[],
  at: number,
): Promise<{ problems: string[]; answers: OnlineAnswer[] }> {
  const res = await srv.post(`/v1/features/${joinName}`, { rows: keys.map((uid) => ({ uid })), at });
  if (res.status !== 200)
    return { problems: [`fetch at ${at}: HTTP ${res.status} ${JSON.stringify(res.json)}`], answers: [] };
  const problems: string[] = [];
  const answers: OnlineAnswer[] = [];
  keys.forEach((uid, i) => {
    const row = res.json.rows[i];
    answers.push({ uid, at, features: row.features, status: row.status });
    const mine = events.filter((e) => e.key === uid);
    for (const f of features) {
      const evs = inWindow(mine, f.w, at);
      const got = row.features[f.name];
      // Workers have applied everything (callers wait), so nothing is stale; a key with an event before `at`
      // has tiles (every checked group-by has a lifetime window), one with no events at all has none.
      const status = row.status[f.name];
      const wantStatus = mine.some((e) => e.ts < at) ? 'ok' : mine.length === 0 ? 'missing_key' : status;
      if (status !== wantStatus && problems.length < 10)
        problems.push(
          `${f.name} uid=${uid} at=${new Date(at).toISOString()}: status ${status}, want ${wantStatus}`,
        );
      if (!oracleAccepts(f.agg, got, evs) && problems.length < 10) {
        const want = JSON.stringify(evaluate(f.agg, evs)).slice(0, 200);
        problems.push(
          `${f.name} uid=${uid} at=${new Date(at).toISOString()}: got ${JSON.stringify(got)} want ${want}`,
        );
      }
    }
  });
  return { problems, answers };
}
