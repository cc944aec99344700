import { InvalidArgumentError, type Command } from 'commander';
import { statSync } from 'node:fs';
import type { SourceDef } from '../../define/types.ts';
import { ALLOW_DUPLICATES_FLAG, replayFile } from '../../online/replay-file.ts';
import {
  LOG_KINDS,
  openConfiguredLog,
  openConfiguredStore,
  parseBrokers,
  type LogKind,
} from '../../online/runtime-config.ts';
import { planStreamWorkers, startStreamWorkers } from '../../online/stream-runner.ts';
import { DEFAULT_BATCH_SIZE, DEFAULT_MAX_TILES_PER_KEY, type WorkerStats } from '../../online/worker.ts';
import { startWorkerThreads } from '../../online/worker-threads.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, positiveInt, REDIS_PREFIX_HELP, exactHistoryOption } from '../option-parsers.ts';

interface StreamCliOptions {
  readonly repo: string;
  readonly replay?: string;
  readonly fromRow?: number;
  readonly source?: string;
  readonly follow?: boolean;
  readonly dataDir: string;
  readonly store: 'lmdb' | 'redis';
  readonly log: LogKind;
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly natsUrl?: string;
  readonly kafkaBrokers?: string[];
  readonly partitions: number;
  readonly owned?: number[];
  readonly batchSize: number;
  readonly onBadRow: 'fail' | 'skip';
  readonly allowDuplicates?: boolean;
  readonly exactHistory: number;
  readonly maxTilesPerKey: number;
  readonly workerThreads?: number;
}

/** `tessera stream`: run stream workers; `--replay FILE` first appends a file's events to the log. */
export function register(program: Command): void {
  program
    .command('stream')
    .description(
      'run stream workers that apply logged events to online tiles (optionally replaying a file first)',
    )
    .option('--repo <dir>', 'feature repo folder with definition files', '.')
    .option(
      '--replay <file>',
      'append the events of a .csv/.parquet/.jsonl (read and typed by the source schema, as the backfill reads them; extra columns ignored) or .json array file, then process them',
    )
    .option('--source <name>', 'source the replayed events belong to (default: the only source of the repo)')
    .option('--follow', 'keep running after the replay (default without --replay)')
    .option('--data-dir <dir>', 'where the LMDB store and embedded log live', '.tessera')
    .option('--store <kind>', 'lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option('--log <kind>', LOG_KINDS.join(' | '), (v) => choice(v, LOG_KINDS), 'embedded')
    .option(
      '--redis <url>',
      'Redis URL (default env REDIS_URL or redis://127.0.0.1:6379); redis+cluster://host:port,host:port puts the store on a Redis Cluster',
    )
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .option('--nats-url <url>', 'NATS server for --log nats (default env NATS_URL or nats://127.0.0.1:4222)')
    .option(
      '--kafka-brokers <list>',
      'comma-separated host:port for --log kafka (default env KAFKA_BROKERS or 127.0.0.1:9092)',
      parseBrokers,
    )
    .option(
      '--partitions <n>',
      "event log partitions: the deployment's count, as every serve and stream process uses (a Redis Streams or NATS log records the first one's and refuses others)",
      positiveInt,
      1,
    )
    .option(
      '--owned <list>',
      'comma-separated partitions this process runs workers for (default: all); scale out by giving each process its own',
      ownedList,
    )
    .addOption(
      exactHistoryOption(
        'fetches this long before the newest event stay exact (older tiles are compacted; 0: only at the newest)',
      ),
    )
    .option(
      '--max-tiles-per-key <n>',
      "an entity with more tiles keeps less exact history (a hot key's tiles are in effect its events; see the README)",
      positiveInt,
      DEFAULT_MAX_TILES_PER_KEY,
    )
    .option(
      '--batch-size <n>',
      'max records per worker batch (one store commit each; a caught-up worker commits what it has)',
      positiveInt,
      DEFAULT_BATCH_SIZE,
    )
    .option(
      '--worker-threads <n>',
      'run the workers in n threads, e.g. one per core for several owned partitions (default: all on the main thread)',
      positiveInt,
    )
    .option(
      '--on-bad-row <policy>',
      'fail | skip invalid replayed rows (fail: a bad value stops the replay before anything is appended)',
      (v) => choice(v, ['fail', 'skip']),
      'fail',
    )
    .option(
      '--from-row <n>',
      'replay the file from this 1-based data row on (header not counted), e.g. the rows added since an earlier ' +
        'replay, which printed the rows it read ("rows 1-R": pass R+1); rows before it are not appended. ' +
        'Checked against the log: refused, with nothing appended, unless a replay of the file in the log (within ' +
        'the dedupe window) ended at row N-1, naming the rows an N too large would leave out or an N too small ' +
        "would append again; the rows of that replay's last chunk up to N-1 are sent again under their key " +
        '(deduplicated, refused if they changed). The same --from-row run again is idempotent. A replay without ' +
        '--from-row of a file that grew appends only its new rows too. With --allow-duplicates (needed on --log kafka) N is not checked',
      positiveInt,
    )
    .option(
      ALLOW_DUPLICATES_FLAG,
      'replay without dedupe (at-least-once; needed on --log kafka). By default each chunk of 5000 file rows is ' +
        "appended under an idempotency key from the file's real path and row range, so running the same replay again " +
        'appends only what is not in the log yet, within the dedupe window (TESSERA_IDEMPOTENCY_WINDOW_MS, 24 h; ' +
        'the embedded log keeps at most TESSERA_IDEMPOTENCY_MAX_KEYS keys, NATS ~200 B of JetStream memory per ' +
        'event for the window); a copy under another path is a new file, rows added since are appended, and rows ' +
        'edited since fail their chunk instead of being appended twice. Run one replay of a file at a time: two at ' +
        'once, the file growing in between, can both append its new rows',
    )
    .action(async (o: StreamCliOptions) => {
      if (o.fromRow !== undefined && o.replay === undefined)
        throw new Error('--from-row says where to start replaying a file: pass it with --replay FILE');
      if (o.replay !== undefined && !statSync(o.replay, { throwIfNoEntry: false })?.isFile())
        throw new Error(
          `--replay ${o.replay}: no such file; pass a .jsonl, .ndjson, .json, .parquet or .csv file of events`,
        );
      const repo = await loadRepo(o.repo, { checkFiles: false });
      const config = {
        store: o.store,
        log: o.log,
        dataDir: o.dataDir,
        partitions: o.partitions,
        ...(o.redis ? { redisUrl: o.redis } : {}),
        ...(o.redisPrefix ? { redisPrefix: o.redisPrefix } : {}),
        ...(o.natsUrl ? { natsUrl: o.natsUrl } : {}),
        ...(o.kafkaBrokers ? { kafkaBrokers: o.kafkaBrokers } : {}),
      };
      const store = openConfiguredStore(config);
      const log = openConfiguredLog(config);
      try {
        // Replaying to, or running workers on, a shared log with another partition count than its deployment
        // would append events no worker reads, or miss partitions: refused (partition-record.ts).
        await log.checkPartitionCount?.();
        if (o.replay) {
          const source = pickSource(repo.sources, o.source);
          const t0 = performance.now();
          const r = await replayFile({
            log,
            source,
            groupBys: repo.groupBys,
            file: o.replay,
            onBadRow: o.onBadRow,
            dedupe: !o.allowDuplicates,
            checkLmdbKeys: o.store === 'lmdb',
            ...(o.fromRow === undefined ? {} : { fromRow: o.fromRow }),
            progress: process.stderr.isTTY === true,
          });
          if (r.ignoredDerived.length > 0)
            process.stderr.write(
              `note: ${o.replay} has derived column(s) ${r.ignoredDerived.map((c) => `'${c}'`).join(', ')} of source '${source.name}'; ` +
                'their values were ignored: the stream workers compute them from the schema columns\n',
            );
          const secs = (performance.now() - t0) / 1000;
          const notes = [
            r.alreadyInLog ? `${r.alreadyInLog} events already in the log, skipped` : null,
            r.skipped ? `${r.skipped} invalid events skipped` : null,
          ].filter((n) => n !== null);
          process.stdout.write(
            `appended ${r.appended} events of '${source.name}' from ${o.replay} ` +
              (r.lastRow >= r.firstRow
                ? `rows ${r.firstRow}-${r.lastRow}`
                : `(no rows from row ${r.firstRow}: the file has ${r.lastRow})`) +
              ` in ${secs.toFixed(1)}s` +
              (notes.length ? ` (${notes.join('; ')})` : '') +
              '\n',
          );
        }
        const slots = planStreamWorkers({
          sources: repo.sources,
          groupBys: repo.groupBys,
          partitions: log.partitions,
          ...(o.owned ? { owned: o.owned } : {}),
        });
        const worker = {
          batchSize: o.batchSize,
          exactHistoryMs: o.exactHistory,
          maxTilesPerKey: o.maxTilesPerKey,
        };
        const runner = o.workerThreads
          ? await startWorkerThreads({ repoDir: repo.dir, config, slots, threads: o.workerThreads, worker })
          : await startStreamWorkers({
              sources: repo.sources,
              groupBys: repo.groupBys,
              log,
              store,
              slots,
              worker,
            });
        const before = runner.stats().reduce((n, s) => n + s.recordsRead, 0);
        const t0 = performance.now();
        if (o.replay && !o.follow) {
          await runner.drain();
        } else {
          const abort = new AbortController();
          process.once('SIGINT', () => abort.abort());
          process.once('SIGTERM', () => abort.abort());
          process.stdout.write(
            `tessera stream: ${runner.workers.length} worker(s) running${o.workerThreads ? ` in ${Math.min(o.workerThreads, runner.workers.length)} thread(s)` : ''}; Ctrl-C to stop\n`,
          );
          // A fenced worker (another process writes its partition) stops the others too, then fails the command.
          let failure: Error | null = null;
          await runner.run(abort.signal, (e) => {
            failure ??= e;
            abort.abort();
          });
          if (failure) throw failure;
        }
        const secs = (performance.now() - t0) / 1000;
        const stats = runner.stats();
        const records = stats.reduce((n, s) => n + s.recordsRead, 0) - before;
        process.stdout.write(
          `processed ${records} log records in ${secs.toFixed(1)}s (${Math.round(records / Math.max(secs, 1e-3))}/s)\n` +
            stats.map(formatStats).join(''),
        );
      } finally {
        await log.close();
        await store.close();
      }
    });
}

function formatStats(s: WorkerStats): string {
  const lines = [
    `  ${s.topic}/${s.partition}: offset ${s.nextOffset}, watermark ${s.watermark === null ? '-' : new Date(s.watermark).toISOString()}, ${s.filtered} filtered, ${s.invalid} invalid\n`,
  ];
  for (const [name, c] of Object.entries(s.groupBys)) {
    lines.push(
      `    ${name}: ${c.applied} applied, ${c.lateBeyondRetention} late beyond retention, ${c.beforeUploadCutoff} before upload cutoff, ${c.nullKey} null keys, ${c.keyTooLong} keys too long, ${(c.cpuMs / 1000).toFixed(1)}s cpu\n`,
    );
  }
  return lines.join('');
}

function pickSource(sources: readonly SourceDef[], name: string | undefined): SourceDef {
  if (name !== undefined) {
    const s = sources.find((x) => x.name === name);
    if (!s)
      throw new Error(
        `unknown source '${name}'; the repo has ${sources.map((x) => `'${x.name}'`).join(', ') || 'none'}`,
      );
    return s;
  }
  if (sources.length !== 1)
    throw new Error(
      `the repo has ${sources.length} sources (${sources.map((x) => x.name).join(', ')}); say which one the replay file holds with --source NAME`,
    );
  return sources[0];
}

function ownedList(value: string): number[] {
  const list = value.split(',').map((v) => Number(v.trim()));
  if (list.some((n) => !Number.isSafeInteger(n) || n < 0))
    throw new InvalidArgumentError('expected partition numbers like 0,2,5');
  return list;
}
