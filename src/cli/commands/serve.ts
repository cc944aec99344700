import type { Command } from 'commander';
import { startEmbedded } from '../../serve/embedded.ts';
import { LOG_KINDS, parseBrokers, type LogKind } from '../../online/runtime-config.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, port, positiveInt, REDIS_PREFIX_HELP, exactHistoryOption } from '../option-parsers.ts';
import { DEFAULT_MAX_TILES_PER_KEY } from '../../online/worker.ts';

interface ServeCliOptions {
  readonly repo: string;
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly store: 'lmdb' | 'redis';
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly log: LogKind;
  readonly natsUrl?: string;
  readonly kafkaBrokers?: string[];
  readonly token?: string;
  readonly ingestUnknownColumns: 'reject' | 'drop';
  readonly partitions: number;
  readonly staleAfter: number;
  readonly exactHistory: number;
  readonly maxTilesPerKey: number;
  readonly workers: boolean;
  /** Undefined: the default count; false: `--no-worker-threads`. */
  readonly workerThreads?: number | false;
}

/** `tessera serve`: store, event log, stream workers and the HTTP API in one process. */
export function register(program: Command): void {
  program
    .command('serve')
    .description('serve features over HTTP with embedded store, event log and stream workers')
    .option('--repo <dir>', 'feature repo folder with definition files', '.')
    .option('--data-dir <dir>', 'where the LMDB store and the embedded log live', '.tessera')
    .option('--port <n>', 'HTTP port', (v) => port(v), 8080)
    .option('--host <host>', 'interface to listen on (0.0.0.0 for all)', '127.0.0.1')
    .option('--store <kind>', 'online store: lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option(
      '--redis <url>',
      'Redis URL for --store redis / --log redis (default env REDIS_URL or redis://127.0.0.1:6379); redis+cluster://host:port,host:port puts the store on a Redis Cluster',
    )
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .option('--log <kind>', `event log: ${LOG_KINDS.join(' | ')}`, (v) => choice(v, LOG_KINDS), 'embedded')
    .option('--nats-url <url>', 'NATS server for --log nats (default env NATS_URL or nats://127.0.0.1:4222)')
    .option(
      '--kafka-brokers <list>',
      'comma-separated host:port for --log kafka (default env KAFKA_BROKERS or 127.0.0.1:9092)',
      parseBrokers,
    )
    .option('--token <token>', 'bearer token required on API routes (default env TESSERA_TOKEN)')
    .option(
      '--ingest-unknown-columns <mode>',
      'HTTP ingest of event fields that are not source columns: reject (400) | drop; a request may override with ?unknownColumns=',
      (v) => choice(v, ['reject', 'drop'] as const),
      'reject',
    )
    .option(
      '--partitions <n>',
      "event log partitions (one worker each); every serve and stream process of a deployment must use the same count (a Redis Streams or NATS log records the first one's and refuses others)",
      (v) => positiveInt(v),
      1,
    )
    .option(
      '--no-workers',
      'serve and ingest only: run no stream workers here (each partition needs exactly one worker process, e.g. tessera stream --owned; several serve processes on one store must all but one use this)',
    )
    .option(
      '--worker-threads <n>',
      'threads running the stream workers (default: one per worker, at most the cores minus one), so a worker catching up never stalls fetches',
      (v) => positiveInt(v),
    )
    .option('--no-worker-threads', 'run the stream workers on the serving thread (debugging)')
    .option(
      '--stale-after <ms>',
      "mark features 'stale' when their workers lag this long",
      (v) => positiveInt(v),
      5000,
    )
    .addOption(
      exactHistoryOption('fetches this long before the newest event stay exact (0: only at the newest)'),
    )
    .option(
      '--max-tiles-per-key <n>',
      "an entity with more tiles keeps less exact history (a hot key's tiles are in effect its events; see the README)",
      (v) => positiveInt(v),
      DEFAULT_MAX_TILES_PER_KEY,
    )
    .action(async (o: ServeCliOptions) => {
      const repo = await loadRepo(o.repo, { checkFiles: false });
      const server = await startEmbedded({
        repo,
        dataDir: o.dataDir,
        port: o.port,
        host: o.host,
        store: o.store,
        log: o.log,
        ...(o.redis ? { redisUrl: o.redis } : {}),
        ...(o.redisPrefix ? { redisPrefix: o.redisPrefix } : {}),
        ...(o.natsUrl ? { natsUrl: o.natsUrl } : {}),
        ...(o.kafkaBrokers ? { kafkaBrokers: o.kafkaBrokers } : {}),
        ...(o.token ? { token: o.token } : {}),
        ingestUnknownColumns: o.ingestUnknownColumns,
        partitions: o.partitions,
        staleAfterMs: o.staleAfter,
        exactHistoryMs: o.exactHistory,
        maxTilesPerKey: o.maxTilesPerKey,
        workers: o.workers,
        workerThreads: o.workerThreads ?? true,
      });
      // Listening before the banner: a supervisor may send SIGTERM as soon as it sees the URL.
      const stopRequested = new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      const auth = (o.token ?? process.env.TESSERA_TOKEN) ? ` -H "authorization: Bearer $TESSERA_TOKEN"` : '';
      const example = repo.joins[0];
      process.stdout.write(
        `tessera serving ${repo.joins.length} join(s), ${repo.groupBys.length} group-by(s) at ${server.url}\n` +
          `  store: ${o.store}${o.store === 'lmdb' ? ` (${o.dataDir}/store)` : ''}, log: ${o.log}, workers: ${o.workers ? `${o.partitions} partition(s), ${server.workerThreads ? `${server.workerThreads} thread(s)` : 'on the serving thread'}` : 'none (run tessera stream)'}, token: ${auth ? 'required' : 'off'}\n` +
          (example
            ? `  try: curl${auth} '${server.url}/v1/features/${example.name}?${exampleQuery(example.parts.flatMap((p) => Object.values(p.keyMapping)))}'\n`
            : ''),
      );
      // Workers that waited for the store or log and then failed to start for good (logged by startEmbedded),
      // or a --no-workers node whose log, once it answered, records another partition count, fail the
      // process, as at its first attempt: a supervisor restarts it instead of it idling unready.
      const failure = await Promise.race([stopRequested.then(() => null), server.failed]);
      if (failure !== null) {
        process.stderr.write(
          `tessera serve: exiting with code 1: ${o.workers ? 'the stream workers cannot start' : 'this node cannot use the event log'} (above)\n`,
        );
        await server.close();
        process.exitCode = 1;
        return;
      }
      process.stdout.write('tessera: shutting down (workers commit their last batch)\n');
      await server.close();
    });
}

function exampleQuery(columns: readonly string[]): string {
  return [...new Set(columns)].map((c) => `${c}=...`).join('&');
}
