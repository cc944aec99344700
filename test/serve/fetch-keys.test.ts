import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { col, count, eventSource, groupBy, join } from '../../src/index.ts';
import { createServeApp } from '../../src/serve/app.ts';
import { createFeatureService } from '../../src/serve/feature-service.ts';
import type { PlannedGroup } from '../../src/serve/fetch-plan.ts';
import { fetchCli } from '../support/fetch-cli.ts';
import { freePort } from '../support/servers.ts';

/** Key columns of every type, one nullable: `--key` texts must reach each as its type, or as null. */
const visits = eventSource({
  name: 'visits',
  path: 'data/visits.jsonl',
  timeColumn: 'ts',
  schema: {
    user_id: col.int(),
    score: col.float(),
    member: col.bool(),
    ip: col.string().nullable(),
    ts: col.timestamp(),
  },
});
const byUser = groupBy({
  name: 'by_user',
  source: visits,
  keys: ['user_id'],
  aggregations: [count({ windows: ['1h'] })],
});
const byScore = groupBy({
  name: 'by_score',
  source: visits,
  keys: ['score'],
  aggregations: [count({ windows: ['1h'] })],
});
const byMember = groupBy({
  name: 'by_member',
  source: visits,
  keys: ['member'],
  aggregations: [count({ windows: ['1h'] })],
});
const byIp = groupBy({
  name: 'by_ip',
  source: visits,
  keys: ['ip'],
  aggregations: [count({ windows: ['1h'] })],
});
const model = join({
  name: 'model',
  left: visits,
  parts: [
    { groupBy: byUser, keys: { user_id: 'user_id' } },
    { groupBy: byScore, keys: { score: 'score' } },
    { groupBy: byMember, keys: { member: 'member' } },
    { groupBy: byIp, keys: { ip: 'ip' } },
  ],
});

/** The entity keys each read asked for, by group-by. */
const asked: Record<string, string[]> = {};

const service = createFeatureService({
  repo: { sources: [visits], groupBys: [byUser, byScore, byMember, byIp], joins: [model] },
  groupById: (g) => g.name,
  // Every entity asked for exists and has counted 1 event.
  fetchGroups: async (groups: readonly PlannedGroup[]) =>
    groups.map((g) => {
      (asked[g.groupBy.name] ??= []).push(...g.keys);
      return g.keys.map(() => ({ status: 'ok' as const, values: [[1]] }));
    }),
  emptyValues: (g) => ({
    status: 'missing_key' as const,
    values: g.aggregations.map((a) => a.windows.map(() => 0)),
  }),
  now: () => 1_700_000_000_000,
});

let app: FastifyInstance;
let url: string;
beforeAll(async () => {
  app = createServeApp({ service, ingest: async () => ({ accepted: 0 }), now: () => 1_700_000_000_000 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(() => app.close());

const ALL_OK = {
  by_user_count_1h: 'ok',
  by_score_count_1h: 'ok',
  by_member_count_1h: 'ok',
  by_ip_count_1h: 'ok',
};

describe('tessera fetch --url: key values by column type', () => {
  it('converts int, float and bool keys as the store path does (not sent as JSON strings)', async () => {
    const keys = ['--key', 'user_id=1', '--key', 'score=2.5', '--key', 'member=true', '--key', 'ip=10.0.0.1'];
    const res = await fetchCli<{ features: Record<string, number>; status: Record<string, string> }>([
      '--url',
      url,
      '--join',
      'model',
      ...keys,
      '--at',
      '1700000000000',
    ]);
    expect(res).toMatchObject({ join: 'model', at: 1_700_000_000_000, status: ALL_OK });
    expect(asked.by_user).toContain('1');
    const one = await fetchCli<{ features: Record<string, number>; status: Record<string, string> }>([
      '--url',
      url,
      '--groupby',
      'by_user',
      '--key',
      'user_id=7',
    ]);
    expect(one).toMatchObject({ groupBy: 'by_user', status: { by_user_count_1h: 'ok' } });
  });

  it('names the column and the type for a value that does not convert', async () => {
    const args = [
      '--url',
      url,
      '--join',
      'model',
      '--key',
      'score=1',
      '--key',
      'member=false',
      '--key',
      'ip=x',
    ];
    await expect(fetchCli([...args, '--key', 'user_id=one'])).rejects.toThrow(
      `${url} answered 400: column 'user_id' must be an integer, got "one"`,
    );
    await expect(fetchCli([...args, '--key', 'user_id=1.5'])).rejects.toThrow(
      'column \'user_id\' must be an integer, got "1.5"',
    );
  });

  it('sends --key column (no =) as a null key: no entity, nothing read for it', async () => {
    asked.by_ip = [];
    const base = [
      '--url',
      url,
      '--join',
      'model',
      '--key',
      'user_id=1',
      '--key',
      'score=1',
      '--key',
      'member=true',
    ];
    const res = await fetchCli<{ features: Record<string, number>; status: Record<string, string> }>([
      ...base,
      '--key',
      'ip',
    ]);
    expect(res.status).toEqual({ ...ALL_OK, by_ip_count_1h: 'missing_key' });
    expect(res.features.by_ip_count_1h).toBe(0);
    expect(asked.by_ip).toEqual([]);
    // `ip=` is the empty string, a real value.
    const empty = await fetchCli<{ features: Record<string, number>; status: Record<string, string> }>([
      ...base,
      '--key',
      'ip=',
    ]);
    expect(empty.status.by_ip_count_1h).toBe('ok');
    expect(asked.by_ip).toEqual(['']);
  });

  it('says what to check when nothing answers at --url', async () => {
    const closed = await freePort();
    await expect(
      fetchCli(['--url', `http://127.0.0.1:${closed}`, '--join', 'model', '--key', 'user_id=1']),
    ).rejects.toThrow(
      new RegExp(
        `GET http://127.0.0.1:${closed}/v1/features/model\\?user_id=1: no answer: connection refused \\(ECONNREFUSED: .*\\); is \`tessera serve\` running there, and is the URL right\\?`,
      ),
    );
  });
});

describe('GET /v1/features/:join: null keys', () => {
  const get = async (query: string) =>
    (await app.inject({ method: 'GET', url: `/v1/features/model?${query}` })).json() as {
      status: Record<string, string>;
      message?: string;
    };

  it('reads a parameter without = as null (no entity), ip= as the empty string, ip=null as the text', async () => {
    const base = 'user_id=1&score=1&member=true';
    expect((await get(`${base}&ip`)).status.by_ip_count_1h).toBe('missing_key');
    asked.by_ip = [];
    expect((await get(`${base}&ip=`)).status.by_ip_count_1h).toBe('ok');
    expect((await get(`${base}&ip=null`)).status.by_ip_count_1h).toBe('ok');
    expect(asked.by_ip).toEqual(['', 'null']);
    // Any key column may be null, whatever its type.
    expect((await get('user_id&score=1&member=true&ip=x')).status.by_user_count_1h).toBe('missing_key');
  });

  it('says how to send a null key when one is missing', async () => {
    expect((await get('user_id=1&score=1&member=true')).message).toContain(
      "null if unknown: JSON null; in a GET query the bare name without '=' (`?card_id=c1&ip`, while `ip=` is the empty string)",
    );
  });
});
