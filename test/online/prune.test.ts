import { afterAll, describe, expect, it } from 'vitest';
import type { Row } from '../../src/define/types.ts';
import { createFetchGroupBys } from '../../src/online/fetch-group-bys.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import type { EventLog } from '../../src/online/log/event-log.ts';
import { catchUpPrefix } from '../../src/online/members.ts';
import { findRetired, pruneStoreIds } from '../../src/online/prune.ts';
import { openRedisClient, untilReady } from '../../src/online/redis-client.ts';
import {
  openConfiguredLog,
  openConfiguredStore,
  type OnlineConfig,
} from '../../src/online/runtime-config.ts';
import type { OnlineStore } from '../../src/online/store.ts';
import { startStreamWorkers } from '../../src/online/stream-runner.ts';
import { uploadGroupBys } from '../../src/online/upload.ts';
import { uploadCutoffName } from '../../src/online/worker.ts';
import { keysMatching } from '../support/redis-keys.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';
import { byUserV1, drainCollecting, versions, type Version } from './catch-up-fixtures.ts';
import { byUser, byUserKind, closeTo, events, naive, randomEvents, tempDir } from './fixtures.ts';
import { expectUsersMatchOracle } from './oracle-check.ts';

/**
 * `tessera prune` (online/prune.ts): a retired group-by version's entities and state are deleted, the
 * current ones are untouched, a re-add of the retired version catches up from 0 and counts every event
 * once, and an id a worker still lists is refused. On LMDB, Redis and Redis Cluster (whose SCAN is per
 * master).
 */

const redis = await startRedis();
const cluster = await startRedisCluster();
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
  await redis?.stop();
  await cluster?.stop();
});

let prefixes = 0;
const lmdbConfig = (): OnlineConfig => {
  const d = tempDir();
  cleanups.push(d.remove);
  return { store: 'lmdb', log: 'embedded', dataDir: d.path };
};
const setups: [string, (() => OnlineConfig) | null][] = [
  ['lmdb', lmdbConfig],
  [
    'redis',
    redis
      ? () => ({ store: 'redis', log: 'redis', redisUrl: redis.url, redisPrefix: `pr${++prefixes}:` })
      : null,
  ],
  [
    // 4 store partitions over 3 masters: the retired id's entities live on several masters.
    'redis cluster',
    cluster
      ? () => ({
          ...lmdbConfig(),
          store: 'redis',
          redisUrl: cluster.url,
          redisPrefix: `pc${++prefixes}:`,
          partitions: 4,
        })
      : null,
  ],
];

const v1 = groupById(byUserV1);
const v2 = groupById(byUser);
const kind = groupById(byUserKind);
const keepV2 = new Set([v2, kind]);

function open(config: OnlineConfig): { store: OnlineStore; log: EventLog } {
  const store = openConfiguredStore(config);
  const log = openConfiguredLog(config);
  cleanups.push(async () => {
    await log.close();
    await store.close();
  });
  return { store, log };
}

/** Runs a deployment's workers until they applied the whole log; returns what they said. */
async function drain(store: OnlineStore, log: EventLog, version: Version): Promise<string> {
  const runner = await startStreamWorkers({
    sources: [events],
    groupBys: versions[version],
    log,
    store,
    worker: { batchSize: 50 },
  });
  return (await drainCollecting(runner)).join('\n');
}

/** Every user's value of every current group-by (v2 and by_user_kind), just after the newest event. */
async function currentValues(store: OnlineStore, all: readonly Row[]) {
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const users = [...new Set(all.map((e) => e.user as string))];
  const kinds = [...new Set(all.map((e) => `${e.user}\u001f${e.kind}`))];
  return createFetchGroupBys(store)(
    [
      { id: v2, groupBy: byUser, keys: users },
      { id: kind, groupBy: byUserKind, keys: kinds },
    ],
    t,
  );
}

/** v1's lifetime count per user equals the log's (the same check as catch-up.test.ts's rollback). */
async function expectV1Counts(store: OnlineStore, all: readonly Row[]): Promise<void> {
  const t = Math.max(...all.map((e) => e.ts as number)) + 1;
  const users = [...new Set(all.map((e) => e.user as string))];
  const [values] = await createFetchGroupBys(store)([{ id: v1, groupBy: byUserV1, keys: users }], t);
  users.forEach((u, i) => {
    const lifetime = all.filter((e) => e.user === u && e.kind !== 'ignored').length;
    expect(values![i]!.values[0]![1]).toBe(lifetime);
  });
}

/** Per master (by port; the one server on a single Redis), how many entity keys of `id` it holds. */
async function entityKeysByMaster(config: OnlineConfig, id: string): Promise<Map<number, number>> {
  const client = openRedisClient(config.redisUrl!);
  try {
    await untilReady(client);
    const out = new Map<number, number>();
    const nodes = 'nodes' in client ? client.nodes('master') : [client];
    expect(nodes.length).toBeGreaterThan(0);
    for (const node of nodes) {
      const keys = await keysMatching(node, `${config.redisPrefix}e{*`);
      const n = keys.filter((k) => k.slice(k.indexOf('}') + 1).startsWith(`${id}:`)).length;
      if (n > 0) out.set(node.options.port!, n);
    }
    return out;
  } finally {
    client.disconnect();
  }
}

for (const [name, makeConfig] of setups) {
  describe.skipIf(!makeConfig)(`prune on ${name}`, () => {
    it(
      'deletes a retired version, leaves the current ones, and a re-add catches up from 0',
      { timeout: 90_000 },
      async () => {
        const config = makeConfig!();
        const all = randomEvents(41, 500);
        const { store, log } = open(config);
        await ingestEvents(log, events, versions.v1, all.slice(0, 300));
        await drain(store, log, 'v1');

        // v1 is still a member of its topic: a worker writes it, so prune refuses and deletes nothing.
        const listed = await findRetired(store, keepV2);
        expect(listed.map((r) => [r.id, r.writers.length > 0])).toEqual([[v1, true]]);
        const statsBefore = await store.stats();
        await expect(pruneStoreIds(store, [v1])).rejects.toThrow(
          new RegExp(`still written by a stream worker: ${v1} \\(members of events`),
        );
        expect(await store.stats()).toEqual(statsBefore);

        // Redeploy v2: it catches up and v1 is retired (its progress kept at the partition's offset).
        await ingestEvents(log, events, versions.v1, all.slice(300));
        await drain(store, log, 'v2');
        // An upload cutoff of v1 (as `tessera upload` of it would leave) goes too.
        await store.commit({ tiles: [], offsets: { [uploadCutoffName(v1)]: '0' } });
        const before = await currentValues(store, all);
        const stats = await store.stats();
        const retired = await findRetired(store, keepV2);
        expect(retired).toHaveLength(1);
        const [r] = retired;
        expect(r).toMatchObject({ id: v1, writers: [], ...stats.byGroupBy[v1] });
        expect(r!.entities).toBeGreaterThan(0);
        expect(r!.state).toContain(uploadCutoffName(v1));
        expect(r!.state.some((n) => n.startsWith(`${catchUpPrefix(v1)}stream/`))).toBe(true);
        if (config.store === 'redis') {
          const onMasters = await entityKeysByMaster(config, v1);
          // On the Cluster, several masters hold them: a SCAN of one would miss some.
          expect(onMasters.size).toBeGreaterThan(config.partitions === 4 ? 1 : 0);
        }

        const progress: number[] = [];
        const done = await pruneStoreIds(store, [v1], (n) => progress.push(n));
        expect(done.entities[v1]).toBeGreaterThanOrEqual(r!.entities);
        expect(progress.at(-1)).toBe(done.entities[v1]);
        expect([...done.state].sort()).toEqual(r!.state);
        const offsets = await store.readOffsets();
        expect(Object.keys(offsets).filter((n) => n.includes(v1))).toEqual([]);
        const after = await store.stats();
        expect(after.byGroupBy[v1]).toBeUndefined();
        expect(after.byGroupBy[v2]).toEqual(stats.byGroupBy[v2]);
        expect(after.byGroupBy[kind]).toEqual(stats.byGroupBy[kind]);
        if (config.store === 'redis') expect(await entityKeysByMaster(config, v1)).toEqual(new Map());
        expect(await currentValues(store, all)).toEqual(before);
        expect(await findRetired(store, keepV2)).toEqual([]);
        await expectUsersMatchOracle(store, all);

        // Re-adding v1 catches it up from offset 0 into its empty id: every event counted once.
        const said = await drain(store, log, 'v1');
        expect(said).toMatch(/catching up by_user \(store id \w+\) on log offsets 0\.\./);
        await expectV1Counts(store, all);
        const t = Math.max(...all.map((e) => e.ts as number)) + 1;
        const kinds = [...new Set(all.map((e) => `${e.user}\u001f${e.kind}`))].filter(
          (k) => !k.endsWith('\u001fignored'),
        );
        const [kindValues] = await createFetchGroupBys(store)(
          [{ id: kind, groupBy: byUserKind, keys: kinds }],
          t,
        );
        kinds.forEach((k, i) =>
          expect(closeTo(kindValues![i]!.values, naive(all, 'by_user_kind', k, t))).toBe(true),
        );
      },
    );

    it(
      'an interrupted prune leaves its ids refused for writes until a prune finishes them, even in the repo again',
      { timeout: 90_000 },
      async () => {
        const config = makeConfig!();
        const all = randomEvents(43, 400);
        const { store, log } = open(config);
        await ingestEvents(log, events, versions.v1, all.slice(0, 200));
        await drain(store, log, 'v1');
        await ingestEvents(log, events, versions.v1, all.slice(200));
        await drain(store, log, 'v2');
        // Killed after its first batch of deletions (as by Ctrl-C or kill -9).
        await expect(
          pruneStoreIds(store, [v1], () => {
            throw new Error('interrupted');
          }),
        ).rejects.toThrow(/interrupted/);
        // Rolling back to v1 now would catch up from 0 on top of the tiles not yet deleted: refused.
        await expect(drain(store, log, 'v1')).rejects.toThrow(
          new RegExp(`store id\\(s\\) ${v1} were being deleted by a tessera prune that did not finish`),
        );
        await expect(uploadGroupBys({ groupBys: [byUserV1], until: 0, store, baseDir: '.' })).rejects.toThrow(
          /tessera prune that did not finish/,
        );
        // The next prune lists it even with v1 in the repo again, and finishes it.
        const keepAll = new Set([v1, v2, kind]);
        expect((await findRetired(store, keepAll)).map((r) => r.id)).toEqual([v1]);
        await pruneStoreIds(store, [v1]);
        expect(Object.keys(await store.readOffsets()).filter((n) => n.includes(v1))).toEqual([]);
        expect(await findRetired(store, keepAll)).toEqual([]);
        const said = await drain(store, log, 'v1');
        expect(said).toMatch(/catching up by_user \(store id \w+\) on log offsets 0\.\./);
        await expectV1Counts(store, all);
      },
    );

    it('deleteGroupBys and deleteOffsets touch only the named ids and entries', async () => {
      const config = makeConfig!();
      const store = openConfiguredStore(config);
      cleanups.push(() => store.close());
      const a = 'aaaaaaaaaaaaaaaa';
      const b = 'bbbbbbbbbbbbbbbb';
      const tile = { level: 3_600_000, start: 0, bytes: Uint8Array.from([1, 2, 3]) };
      // b's keys include one holding `}<a>:` (a glob for a's keys matches it) and keys a also has.
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
      const bKeys = [...keys, `x}${a}:y`];
      await store.commit({
        tiles: [
          ...keys.map((key) => ({ groupBy: a, key, ...tile })),
          ...bKeys.map((key) => ({ groupBy: b, key, ...tile })),
        ],
        offsets: { [`upload/${a}`]: '1', [`catchup/${a}/stream/t/0`]: '5', [`upload/${b}`]: '2' },
      });
      expect(await store.deleteGroupBys([])).toEqual({});
      expect(await store.deleteGroupBys([a])).toEqual({ [a]: keys.length });
      expect(await store.deleteGroupBys([a])).toEqual({ [a]: 0 });
      const stats = await store.stats();
      expect(stats.byGroupBy[a]).toBeUndefined();
      expect(stats.byGroupBy[b]?.entities).toBe(bKeys.length);
      const read = await store.readTiles(bKeys.map((key) => ({ groupBy: b, key })));
      expect(read.every((t) => t.length === 1)).toBe(true);
      await store.deleteOffsets([`upload/${a}`, `catchup/${a}/stream/t/0`, 'never/written']);
      expect(await store.readOffsets()).toEqual({ [`upload/${b}`]: '2' });
    });
  });
}
