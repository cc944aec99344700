import { InvalidArgumentError, type Command } from 'commander';
import { parseEventTime } from '../../aggregate/event-time.ts';
import { openCliStore } from '../read-store.ts';
import { DEFAULT_MAX_TILES_PER_KEY } from '../../online/worker.ts';
import { uploadGroupBys } from '../../online/upload.ts';
import { gbCounter } from '../../online/usage-counters.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, positiveInt, REDIS_PREFIX_HELP, exactHistoryOption } from '../option-parsers.ts';

interface UploadCliOptions {
  readonly groupby: string;
  readonly until: number;
  readonly repo: string;
  readonly dataDir: string;
  readonly store: 'lmdb' | 'redis';
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly onBadRow: 'fail' | 'skip';
  readonly memoryLimit?: string;
  readonly exactHistory: number;
  readonly maxTilesPerKey: number;
  readonly partitions?: number;
  readonly replaceStreamed?: boolean;
}

/** `tessera upload`: tiles from the offline history (ts < cutoff) into the online store. */
export function register(program: Command): void {
  program
    .command('upload')
    .description('build tiles from offline history before --until and load them into the online store')
    .requiredOption('--groupby <names>', "group-by name, comma-separated names, or 'all'")
    .requiredOption('--until <time>', 'cutoff: epoch ms or ISO-8601; streaming continues from here', (v) => {
      const t = parseEventTime(v);
      if (t === null) throw new InvalidArgumentError(`'${v}' is not a time; use epoch ms or ISO-8601`);
      return t;
    })
    .option('--repo <dir>', 'feature repo folder with definition files', '.')
    .option('--data-dir <dir>', 'where the LMDB store lives (<dir>/store)', '.tessera')
    .option('--store <kind>', 'lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option('--redis <url>', 'Redis URL for --store redis (default env REDIS_URL or redis://127.0.0.1:6379)')
    .option(
      '--partitions <n>',
      'event log partitions the stream workers will run; a new Redis store records it (its key layout)',
      positiveInt,
    )
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .option('--on-bad-row <policy>', 'fail | skip malformed rows', (v) => choice(v, ['fail', 'skip']), 'fail')
    .option('--memory-limit <size>', "DuckDB memory limit, e.g. '4GB'")
    .addOption(
      exactHistoryOption(
        'fetches this long before --until stay exact (older tiles are compacted; 0: only at --until); match the workers',
      ),
    )
    .option(
      '--max-tiles-per-key <n>',
      "an entity with more tiles keeps less exact history (a hot key's tiles are in effect its events; see the README); match the workers",
      positiveInt,
      DEFAULT_MAX_TILES_PER_KEY,
    )
    .option(
      '--replace-streamed',
      'upload even if stream workers already applied events to the group-by: its uploaded keys lose their streamed events at or after --until',
    )
    .action(async (o: UploadCliOptions) => {
      const repo = await loadRepo(o.repo);
      const wanted =
        o.groupby === 'all' ? repo.groupBys.map((g) => g.name) : o.groupby.split(',').map((s) => s.trim());
      const groupBys = wanted.map((name) => {
        const g = repo.groupBys.find((x) => x.name === name);
        if (!g)
          throw new Error(
            `unknown group-by '${name}' in repo '${o.repo}'; known: ${repo.groupBys.map((x) => x.name).join(', ') || 'none'}`,
          );
        return g;
      });
      const store = openCliStore(o);
      try {
        const results = await uploadGroupBys({
          groupBys,
          until: o.until,
          store,
          baseDir: repo.dir,
          onBadRow: o.onBadRow,
          exactHistoryMs: o.exactHistory,
          maxTilesPerKey: o.maxTilesPerKey,
          ...(o.replaceStreamed ? { replaceStreamed: true } : {}),
          ...(o.memoryLimit ? { memoryLimit: o.memoryLimit } : {}),
        });
        // Upload time and events per group-by, for `tessera usage` (counters add up over repeated uploads).
        await store.addCounters(
          Object.fromEntries(
            results.flatMap((r) => [
              [gbCounter(r.groupById, 'upload_ms'), Math.round(r.elapsedMs)],
              [gbCounter(r.groupById, 'upload_events'), r.events],
            ]),
          ),
        );
        for (const r of results) {
          process.stdout.write(
            `uploaded ${r.groupBy} (${r.groupById}): ${r.events} events before ${new Date(r.cutoff).toISOString()}, ` +
              `${r.entities} keys, ${r.tilesWritten} tiles written, ${r.tilesDeleted} stale tiles deleted` +
              (r.badRows ? `, ${r.badRows} bad rows skipped` : '') +
              (r.keysTooLong
                ? `, ${r.keysTooLong} keys too long for the store skipped (${r.keyTooLongEvents} events; use shorter key values, e.g. a hash, or the Redis store)`
                : '') +
              ` in ${(r.elapsedMs / 1000).toFixed(1)}s\n`,
          );
        }
        process.stdout.write(
          `streaming continues from ${new Date(o.until).toISOString()} (events before it are skipped)\n`,
        );
      } finally {
        await store.close();
      }
    });
}
