import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { groupById } from '../../src/online/group-by-id.ts';
import { partitionOf } from '../../src/online/log/partition.ts';
import { openRedisClient, untilReady } from '../../src/online/redis-client.ts';
import { openRedisStore } from '../../src/online/redis-store.ts';
import type { OnlineStore, StoreConfig, StoredTile } from '../../src/online/store.ts';
import { uploadCutoffName } from '../../src/online/worker.ts';
import { uploadGroupBy } from '../../src/online/upload.ts';
import { keysMatching } from '../support/redis-keys.ts';
import { startRedis, startRedisCluster } from '../support/servers.ts';
import type { CrashPoint } from './crash-child.ts';
import { byUser, randomEvents, rng, tempDir } from './fixtures.ts';

// A big `tessera upload` as readers see it (redis-store.ts `commitPart`: an unfenced commit bigger than one
// script is a redo log too): a reader never sees one of its commits half-applied, and a kill -9 of the
// upload leaves each commit whole or absent for readers; a re-run converges. On a 3-master Cluster an
// upload commit spans store partitions and is atomic within each (a read there is one MGET per partition).
const redis = await startRedis();
const cluster = await startRedisCluster();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await redis?.stop();
  await cluster?.stop();
  for (const c of cleanups) c();
});

const S = 4;
const PER_COMMIT = 40;
const id = groupById(byUser);

/** A repo dir holding the fixtures' events for `users` users; returns it and the upload cutoff. */
function repo(users: number): { dir: string; until: number } {
  const d = tempDir();
  cleanups.push(d.remove);
  const all = randomEvents(7, users * 8, users);
  mkdirSync(join(d.path, 'data'));
  writeFileSync(join(d.path, 'data', 'events.jsonl'), all.map((e) => JSON.stringify(e)).join('\n') + '\n');
  return { dir: d.path, until: Math.max(...all.map((e) => e.ts as number)) + 1 };
}

const plain = (tiles: StoredTile[]) => JSON.stringify(tiles.map((t) => [t.level, t.start, [...t.bytes]]));

/**
 * The units a reader must see whole, as key lists: the upload's commits (PER_COMMIT entities in key order,
 * which is DuckDB's for these ASCII keys), on a Cluster split by store partition.
 */
function units(uploaded: readonly string[], clustered: boolean): string[][] {
  const out = new Map<string, string[]>();
  [...uploaded].sort().forEach((key, i) => {
    const u = `${Math.floor(i / PER_COMMIT)}/${clustered ? partitionOf(key, S) : 0}`;
    out.set(u, [...(out.get(u) ?? []), key]);
  });
  return [...out.values()];
}

/** Units of which a read (`present` per key) holds some entities but not all. */
function torn(present: ReadonlyMap<string, boolean>, all: readonly string[][]): string[] {
  return all
    .filter((keys) => new Set(keys.map((k) => present.get(k))).size > 1)
    .map((keys) => `${keys.filter((k) => present.get(k)).length} of ${keys.length} from ${keys[0]}`);
}

/** Runs upload-child-main.ts; resolves 'killed' (it killed itself) or 'done'. */
function runUploadChild(config: StoreConfig, dir: string, until: number, crash?: CrashPoint) {
  const script = new URL('./upload-child-main.ts', import.meta.url).pathname;
  const args = [JSON.stringify(config), dir, String(until), String(PER_COMMIT)];
  if (crash) args.push(JSON.stringify(crash));
  return new Promise<{ outcome: 'killed' | 'done'; at: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    let out = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code, signal) => {
      const at = /^kill (.*)$/m.exec(out)?.[1] ?? '';
      if (signal === 'SIGKILL') resolve({ outcome: 'killed', at });
      else if (code === 0) resolve({ outcome: 'done', at });
      else reject(new Error(`upload child exited with ${code}: ${err}`));
    });
  });
}

const targets: [string, string | undefined, boolean][] = [
  ['a single Redis', redis?.url, false],
  ['a 3-master Redis Cluster', cluster?.url, true],
];
let prefixes = 0;

for (const [name, url, clustered] of targets) {
  describe.skipIf(!url)(`a big upload as readers see it, on ${name}`, () => {
    it(
      'a reader polling during the upload never sees a commit half-applied',
      { timeout: 60_000 },
      async () => {
        const { dir, until } = repo(400);
        const prefix = `upa${prefixes++}:`;
        // Tiny chunks: each commit of PER_COMMIT entities is many scripts.
        const writer = openRedisStore(url!, { prefix, partitions: S, commitChunkEntities: 2 });
        const reader = openRedisStore(url!, { prefix });
        const users = Array.from({ length: 400 }, (_, i) => `u${i}`);
        const requests = users.map((key) => ({ groupBy: id, key }));
        try {
          let uploading = true;
          const polls: Map<string, boolean>[] = [];
          const polling = (async () => {
            while (uploading) {
              const read = await reader.readTiles(requests);
              polls.push(new Map(users.map((k, i) => [k, read[i].length > 0])));
            }
          })();
          await uploadGroupBy({
            groupBy: byUser,
            until,
            store: writer,
            baseDir: dir,
            entitiesPerCommit: PER_COMMIT,
          });
          uploading = false;
          await polling;
          const all = (await reader.readTiles(requests)).flatMap((t, i) => (t.length > 0 ? [users[i]] : []));
          expect(all.length).toBeGreaterThan(3 * PER_COMMIT);
          const u = units(all, clustered);
          expect(polls.flatMap((p, i) => torn(p, u).map((t) => `poll ${i}: ${t}`))).toEqual([]);
          // The reader did catch the upload midway (after DuckDB's staging, before its last commit).
          const midway = polls.filter((p) => {
            const n = [...p.values()].filter(Boolean).length;
            return n > 0 && n < all.length;
          });
          expect(midway.length).toBeGreaterThanOrEqual(3);
        } finally {
          await Promise.all([writer.close(), reader.close()]);
        }
      },
    );

    it(
      'a kill -9 of the upload mid-commit leaves each commit whole or absent for readers; a re-run converges',
      { timeout: 180_000 },
      async () => {
        const { dir, until } = repo(300);
        const users = Array.from({ length: 300 }, (_, i) => `u${i}`);
        const requests = users.map((key) => ({ groupBy: id, key }));
        // What one clean upload leaves.
        const clean = openRedisStore(url!, { prefix: `upr${prefixes++}:`, partitions: S });
        await uploadGroupBy({
          groupBy: byUser,
          until,
          store: clean,
          baseDir: dir,
          entitiesPerCommit: PER_COMMIT,
        });
        const want = (await clean.readTiles(requests)).map(plain);
        await clean.close();
        const uploaded = users.filter((_, i) => want[i] !== '[]');
        const u = units(uploaded, clustered);
        const commits = Math.ceil(uploaded.length / PER_COMMIT);
        const rawClient = openRedisClient(url!);
        await untilReady(rawClient);
        const r = rng(clustered ? 4 : 3);
        const problems: string[] = [];
        const kills: string[] = [];
        let logsLeft = 0;
        // (Kills at any command first: on a store that holds no complete upload yet.)
        const cycle: Omit<CrashPoint, 'skip'>[] = [
          { phase: 'any', at: 'reply' },
          { phase: 'apply', at: 'reply' },
          { phase: 'any', at: 'sent' },
          { phase: 'record', at: 'reply' },
          { phase: 'apply', at: 'sent' },
          { phase: 'stage', at: 'torn' },
          { phase: 'apply', at: 'torn' },
          { phase: 'record', at: 'sent' },
        ];
        try {
          // One store, killed again and again (each run uploads from the start), then a run to the end.
          const prefix = `upk${prefixes++}:`;
          const config: StoreConfig = {
            kind: 'redis',
            url: url!,
            prefix,
            partitions: S,
            commitChunkEntities: 1,
          };
          const reader = openRedisStore(url!, { prefix });
          try {
            for (let attempt = 0; attempt < cycle.length; attempt++) {
              // Killed at a random command of a step of a commit (one chunk per entity: ~40 applies each).
              const c = cycle[attempt];
              const crash = {
                ...c,
                skip: Math.floor(r() * (c.phase === 'record' ? commits : 300)),
                fraction: r(),
              };
              const run = await runUploadChild(config, dir, until, crash);
              if (run.outcome === 'killed') kills.push(run.at);
              const left = await keysMatching(rawClient, `${prefix}w{*`);
              if (left.length > 0) logsLeft++;
              // Every other time the next run meets the killed commit's log itself (its reads finish it).
              if (attempt % 2 === 1) continue;
              const read = await reader.readTiles(requests);
              const present = new Map(users.map((k, i) => [k, read[i].length > 0]));
              problems.push(...torn(present, u).map((t) => `attempt ${attempt} (${left.length} logs): ${t}`));
              read.forEach((t, i) => {
                if (t.length > 0 && plain(t) !== want[i])
                  problems.push(`attempt ${attempt}: ${users[i]} is not what the upload writes`);
              });
            }
            expect((await runUploadChild(config, dir, until)).outcome).toBe('done');
            expect((await reader.readTiles(requests)).map(plain)).toEqual(want);
            expect(await reader.readOffsets([uploadCutoffName(id)])).toEqual({
              [uploadCutoffName(id)]: String(until),
            });
            expect([
              ...(await keysMatching(rawClient, `${prefix}w{*`)),
              ...(await keysMatching(rawClient, `${prefix}p{*`)),
            ]).toEqual([]);
          } finally {
            await reader.close();
          }
        } finally {
          rawClient.disconnect();
        }
        console.log(`${name}: killed at ${kills.join('; ')}; ${logsLeft} left a recorded log`);
        expect(problems).toEqual([]);
        expect(kills.length).toBeGreaterThanOrEqual(7);
        expect(logsLeft).toBeGreaterThanOrEqual(3);
      },
    );
  });
}
