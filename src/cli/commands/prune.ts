import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { groupById } from '../../online/group-by-id.ts';
import { findRetired, inUseError, pruneStoreIds, type RetiredId } from '../../online/prune.ts';
import { openCliStore } from '../read-store.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, positiveInt, REDIS_PREFIX_HELP } from '../option-parsers.ts';

interface PruneCliOptions {
  readonly repo: string;
  readonly dataDir: string;
  readonly store: 'lmdb' | 'redis';
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly partitions?: number;
  readonly dryRun?: boolean;
  readonly yes?: boolean;
  readonly all?: boolean;
}

/** How often a large deletion reports its progress (stderr). */
const PROGRESS_EVERY_MS = 1000;

/**
 * `tessera prune`: deletes the entities and state of store ids no group-by of the repo has (retired
 * versions of changed group-bys, online/prune.ts).
 */
export function register(program: Command): void {
  program
    .command('prune')
    .description(
      'delete the stored tiles and state of group-by versions the repo no longer defines (store ids of changed or removed group-bys)',
    )
    .option(
      '--repo <dir>',
      'feature repo folder: the definitions the deployment runs (their ids are kept)',
      '.',
    )
    .option('--data-dir <dir>', 'where the LMDB store lives (<dir>/store)', '.tessera')
    .option('--store <kind>', 'lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option('--redis <url>', 'Redis URL for --store redis (default env REDIS_URL or redis://127.0.0.1:6379)')
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .option(
      '--partitions <n>',
      'log partitions, as the deployment passes them (optional: the store records its own)',
      positiveInt,
    )
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--yes', 'delete without asking (needed when not on a terminal)')
    .option('--all', "allow deleting every stored id (when the repo has none of the store's group-bys)")
    .action(async (o: PruneCliOptions) => {
      // Opening would create an empty store where none is: a wrong --data-dir would read as nothing to prune.
      if (o.store === 'lmdb' && !existsSync(join(o.dataDir, 'store')))
        throw new Error(
          `no LMDB store at ${join(o.dataDir, 'store')}: pass --data-dir with the folder that tessera stream, serve and upload use (or --store redis)`,
        );
      const repo = await loadRepo(o.repo, { checkFiles: false });
      const keep = new Set(repo.groupBys.map(groupById));
      const store = openCliStore(o);
      try {
        await store.ping?.();
        const retired = await findRetired(store, keep);
        const out = (s: string) => process.stdout.write(s);
        if (retired.length === 0) {
          out(`nothing to prune: every store id in the store belongs to a group-by of ${repo.dir}\n`);
          return;
        }
        out(renderRetired(retired));
        const busy = retired.filter((r) => r.writers.length > 0);
        if (o.dryRun) {
          out(
            busy.length > 0
              ? `dry run: nothing deleted; ${busy.length} id(s) are still listed by a stream worker and would be refused\n`
              : 'dry run: nothing deleted\n',
          );
          return;
        }
        if (busy.length > 0) throw inUseError(busy);
        // A wrong or partial --repo would retire every stored id: with workers (members) they are refused
        // above, but a deployment fed by uploads only has none.
        const kept = Object.keys((await store.stats()).byGroupBy).filter((id) => keep.has(id));
        if (kept.length === 0 && !o.all)
          throw new Error(
            `the repo at ${repo.dir} has none of the group-bys stored here, so prune would delete every stored id: is it the repo this deployment runs (--repo)? ` +
              `To delete them all anyway, pass --all; nothing was deleted.`,
          );
        const total = retired.reduce((n, r) => n + r.entities, 0);
        if (!o.yes && !(await confirm(`delete ${total} entities of ${retired.length} store id(s)? [y/N] `)))
          return;
        let said = performance.now();
        const progress = (deleted: number) => {
          if (performance.now() - said < PROGRESS_EVERY_MS) return;
          said = performance.now();
          process.stderr.write(`tessera prune: ${deleted}/${total} entities deleted\n`);
        };
        const done = await pruneStoreIds(
          store,
          retired.map((r) => r.id),
          progress,
        );
        const deleted = Object.values(done.entities).reduce((a, b) => a + b, 0);
        out(
          `pruned ${retired.length} store id(s): ${deleted} entities, ${retired.reduce((n, r) => n + r.bytes, 0)} bytes, ${done.state.length} state entries\n`,
        );
      } finally {
        await store.close();
      }
    });
}

/** The table of retired ids: entities, tiles and bytes as `tessera usage` counts them, state, writers. */
function renderRetired(retired: readonly RetiredId[]): string {
  const rows = [
    ['store id', 'entities', 'tiles', 'bytes', 'state', 'status'],
    ...retired.map((r) => [
      `#${r.id}`,
      String(r.entities),
      String(r.tiles),
      String(r.bytes),
      String(r.state.length),
      r.writers.length > 0 ? `in use: members of ${r.writers.join(', ')}` : 'retired',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    'store ids no group-by of the repo has:\n' +
    rows
      .map((r) =>
        r
          .map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') +
    '\n'
  );
}

/** Asks on the terminal; refuses (throws) when there is none, so scripts must say --yes. */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY)
    throw new Error(
      'prune deletes stored data and asks first, but stdin is not a terminal: pass --yes to delete, or --dry-run to only list',
    );
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    if (/^y(es)?$/i.test(answer.trim())) return true;
    process.stderr.write('tessera prune: nothing deleted\n');
    return false;
  } finally {
    rl.close();
  }
}
