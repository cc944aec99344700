import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { register as registerPrune } from '../../src/cli/commands/prune.ts';
import { groupById } from '../../src/online/group-by-id.ts';
import { ingestEvents } from '../../src/online/ingest.ts';
import {
  openConfiguredLog,
  openConfiguredStore,
  type OnlineConfig,
} from '../../src/online/runtime-config.ts';
import { startStreamWorkers } from '../../src/online/stream-runner.ts';
import { startRedis } from '../support/servers.ts';
import { byUserV1, drainCollecting, versions, type Version } from '../online/catch-up-fixtures.ts';
import { byUser, events, randomEvents, tempDir } from '../online/fixtures.ts';

/** `tessera prune`: lists retired store ids, deletes them only when told, refuses ids a worker lists. */

const redis = await startRedis();
const cleanups: (() => void)[] = [];
afterAll(async () => {
  for (const c of cleanups) c();
  await redis?.stop();
});

let prefixes = 0;
const fixtures = new URL('../online/fixtures.ts', import.meta.url).pathname;
const v1 = groupById(byUserV1);

/** A repo folder defining the v2 deployment (by_user changed, by_user_kind as before). */
function v2Repo(): string {
  const repo = tempDir('tessera-prune-repo-');
  cleanups.push(repo.remove);
  writeFileSync(
    join(repo.path, 'defs.ts'),
    `export { events, byUser, byUserKind } from ${JSON.stringify(fixtures)};\n`,
  );
  return repo.path;
}

/** Streams the log through `deployments` in turn (each to the end), then closes store and log. */
async function streamed(config: OnlineConfig, deployments: readonly Version[]): Promise<void> {
  const store = openConfiguredStore(config);
  const log = openConfiguredLog(config);
  const all = randomEvents(51, 300);
  try {
    for (const [i, version] of deployments.entries()) {
      const part = all.slice(
        (i * all.length) / deployments.length,
        ((i + 1) * all.length) / deployments.length,
      );
      await ingestEvents(log, events, versions[version], part);
      const runner = await startStreamWorkers({ sources: [events], groupBys: versions[version], log, store });
      await drainCollecting(runner);
    }
  } finally {
    await log.close();
    await store.close();
  }
}

/** Runs `tessera prune ...args` in this process; resolves to its stdout, rejects with its error. */
async function prune(args: readonly string[]): Promise<string> {
  const program = new Command('tessera').exitOverride();
  registerPrune(program);
  let out = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    await program.parseAsync(['prune', ...args], { from: 'user' });
    return out;
  } finally {
    write.mockRestore();
  }
}

/** v1's entity count in the store of `config`, 0 when none. */
async function v1Entities(config: OnlineConfig): Promise<number> {
  const store = openConfiguredStore(config);
  try {
    return (await store.stats()).byGroupBy[v1]?.entities ?? 0;
  } finally {
    await store.close();
  }
}

const setups: [string, (() => { config: OnlineConfig; args: string[] }) | null][] = [
  [
    'lmdb',
    () => {
      const d = tempDir();
      cleanups.push(d.remove);
      return { config: { store: 'lmdb', dataDir: d.path }, args: ['--data-dir', d.path] };
    },
  ],
  [
    'redis',
    redis
      ? () => {
          const d = tempDir();
          cleanups.push(d.remove);
          const prefix = `prc${++prefixes}:`;
          return {
            // The log is embedded (in `d`); prune needs only the store options.
            config: { store: 'redis', dataDir: d.path, redisUrl: redis.url, redisPrefix: prefix },
            args: ['--store', 'redis', '--redis', redis.url, '--redis-prefix', prefix],
          };
        }
      : null,
  ],
];

for (const [name, setup] of setups) {
  describe.skipIf(!setup)(`tessera prune on ${name}`, () => {
    it('lists a retired version, deletes it only with --yes, then has nothing to prune', async () => {
      const { config, args } = setup!();
      await streamed(config, ['v1', 'v2']);
      const repo = v2Repo();
      const entities = await v1Entities(config);
      expect(entities).toBeGreaterThan(0);

      const listed = await prune(['--repo', repo, ...args, '--dry-run']);
      expect(listed).toMatch(new RegExp(`#${v1}\\s+${entities}\\s+\\d+\\s+\\d+\\s+\\d+\\s+retired`));
      expect(listed).not.toContain(groupById(byUser));
      expect(listed).toContain('dry run: nothing deleted');
      expect(await v1Entities(config)).toBe(entities);

      // Not on a terminal and no --yes: refused, nothing deleted.
      await expect(prune(['--repo', repo, ...args])).rejects.toThrow(/stdin is not a terminal: pass --yes/);
      expect(await v1Entities(config)).toBe(entities);

      const pruned = await prune(['--repo', repo, ...args, '--yes']);
      expect(pruned).toMatch(
        new RegExp(`pruned 1 store id\\(s\\): ${entities} entities, \\d+ bytes, [1-9]\\d* state entries`),
      );
      expect(await v1Entities(config)).toBe(0);
      expect(await prune(['--repo', repo, ...args, '--yes'])).toMatch(/^nothing to prune/);
    });

    it('refuses to delete every stored id (a wrong --repo) unless --all', async () => {
      const { config, args } = setup!();
      await streamed(config, ['v1', 'v2']);
      // A store fed by uploads only lists no members: nothing else stops a wrong repo.
      const store = openConfiguredStore(config);
      try {
        const members = Object.keys(await store.readOffsets()).filter((n) => n.startsWith('members/'));
        expect(members.length).toBeGreaterThan(0);
        await store.deleteOffsets(members);
      } finally {
        await store.close();
      }
      const repo = tempDir('tessera-prune-source-only-');
      cleanups.push(repo.remove);
      writeFileSync(join(repo.path, 'defs.ts'), `export { events } from ${JSON.stringify(fixtures)};\n`);
      const entities = await v1Entities(config);
      await expect(prune(['--repo', repo.path, ...args, '--yes'])).rejects.toThrow(
        /has none of the group-bys stored here, so prune would delete every stored id.*pass --all; nothing was deleted/,
      );
      expect(await v1Entities(config)).toBe(entities);
      expect(await prune(['--repo', repo.path, ...args, '--yes', '--all'])).toMatch(/pruned 3 store id\(s\)/);
      expect(await v1Entities(config)).toBe(0);
    });

    it('refuses an id that a stream worker still lists (the old version still runs)', async () => {
      const { config, args } = setup!();
      await streamed(config, ['v1']);
      const repo = v2Repo();
      const entities = await v1Entities(config);
      expect(await prune(['--repo', repo, ...args, '--dry-run'])).toMatch(
        /in use: members of events\/0[\s\S]*would be refused/,
      );
      await expect(prune(['--repo', repo, ...args, '--yes'])).rejects.toThrow(
        new RegExp(
          `still written by a stream worker: ${v1} \\(members of events/0\\).*Stop the old-version process`,
        ),
      );
      expect(await v1Entities(config)).toBe(entities);
    });
  });
}
