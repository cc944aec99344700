import type { Command } from 'commander';
import { redactUrl } from '../../online/redact-url.ts';
import { redisErrorText } from '../../online/redis-client.ts';
import { StoreUnavailableError } from '../../online/store-unavailable.ts';
import { collectUsage, type Cost, type UsageReport } from '../../online/usage.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, REDIS_PREFIX_HELP } from '../option-parsers.ts';
import { openCliStore, requireLmdbStore, serverError } from '../read-store.ts';

type By = 'groupby' | 'join' | 'owner';

interface UsageCliOptions {
  readonly repo: string;
  readonly dataDir: string;
  readonly store: 'lmdb' | 'redis';
  readonly redis?: string;
  readonly redisPrefix?: string;
  readonly url?: string;
  readonly token?: string;
  readonly by: By;
  readonly json?: boolean;
}

/** `tessera usage`: what each group-by, join and owner costs (online/usage.ts), from the store or a server. */
export function register(program: Command): void {
  program
    .command('usage')
    .description(
      'cost report: events, CPU, stored keys/bytes, fetches and latency per group-by, join or owner',
    )
    .option('--repo <dir>', 'feature repo folder (names, owners, joins)', '.')
    .option('--data-dir <dir>', 'where the LMDB store lives (<dir>/store)', '.tessera')
    .option('--store <kind>', 'lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option('--redis <url>', 'Redis URL for --store redis (default env REDIS_URL or redis://127.0.0.1:6379)')
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .option('--url <url>', 'ask a running `tessera serve` (GET /v1/usage) instead of opening the store')
    .option('--token <token>', 'bearer token for --url (default env TESSERA_TOKEN)')
    .option(
      '--by <view>',
      'groupby | join | owner',
      (v) => choice(v, ['groupby', 'join', 'owner']),
      'groupby',
    )
    .option('--json', 'print the whole report as JSON')
    .action(async (o: UsageCliOptions) => {
      const report = o.url ? await viaHttp(o.url, o.token ?? process.env.TESSERA_TOKEN) : await viaStore(o);
      process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : renderUsage(report, o.by));
    });
}

async function viaStore(o: UsageCliOptions): Promise<UsageReport> {
  if (o.store === 'lmdb') requireLmdbStore(o.dataDir, 'usage');
  const repo = await loadRepo(o.repo, { checkFiles: false });
  const store = openCliStore(o);
  try {
    // A PING first: a Redis that does not answer fails in about a second, not after the report's scans.
    await store.ping?.();
    return await collectUsage({ store, groupBys: repo.groupBys, joins: repo.joins });
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error;
    const url = redactUrl(o.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    throw new Error(
      `the Redis store at ${url} does not answer (${redisDownReason(error)}). Start Redis, or point --redis (env REDIS_URL) at the one tessera serve/stream use; or ask a running tessera serve with --url.`,
      { cause: error },
    );
  } finally {
    await store.close();
  }
}

/**
 * What a `StoreUnavailableError` from the Redis store says, without ioredis' wording ("Reached the max
 * retries per request limit…", which names a client option, not the problem).
 */
function redisDownReason(error: StoreUnavailableError): string {
  const cause = error.cause as Error | undefined;
  if (cause?.name === 'MaxRetriesPerRequestError') return redisErrorText(cause);
  if (cause?.message === 'Command timed out' || /Command timed out/.test(error.message))
    return 'no reply within the command timeout, env TESSERA_REDIS_TIMEOUT_MS';
  return error.message;
}

async function viaHttp(url: string, token: string | undefined): Promise<UsageReport> {
  const res = await fetch(url.replace(/\/+$/, '') + '/v1/usage', {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const body = (await res.json()) as UsageReport & { message?: string };
  if (!res.ok) throw serverError(url, res.status, body);
  return body;
}

const int = (n: number) => String(Math.round(n));
const dec = (n: number, d: number) => (n === 0 ? '0' : n.toFixed(d));
const secs = (ms: number) => dec(ms / 1000, 2);
const ms = (n: number | null | undefined) => (n === null || n === undefined ? '-' : dec(n, 3));
const pct = (f: number) => `${Math.round(f * 100)}%`;

/** Right-aligns every column but the first (names); two spaces between columns. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return (
    all
      .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
      .join('\n') + '\n'
  );
}

const costCells = (c: Cost) => [
  int(c.events),
  secs(c.streamCpuMs),
  int(c.keys),
  int(c.bytes),
  dec(c.fetches, 1),
  dec(c.fetchMs, 1),
];
const COST_HEADER = ['events', 'cpu s', 'keys', 'bytes', 'fetches', 'fetch ms'];

/**
 * The tables `tessera usage` prints for one view, followed by totals. Numbers are the report's: counts as
 * integers, attributed shares with one decimal, CPU in seconds, latency in ms.
 *
 * @example
 * process.stdout.write(renderUsage(await collectUsage({ store, groupBys, joins }), 'join'));
 */
export function renderUsage(report: UsageReport, by: By): string {
  let out: string;
  if (by === 'groupby') {
    out = table(
      [
        'group-by',
        'owner',
        'applied',
        'late',
        'skipped',
        'filtered',
        'cpu s',
        'upload s',
        'keys',
        'tiles',
        'bytes',
        'fetches',
        'fetch ms',
        'used by',
      ],
      report.groupBys.map((g) => [
        g.names.length ? g.names.join('|') : `#${g.id}`,
        g.owners.join(','),
        int(g.events.applied),
        int(g.events.lateBeyondRetention),
        int(g.events.keyTooLong + g.events.invalid),
        int(g.events.filtered),
        secs(g.cost.streamCpuMs),
        secs(g.cost.uploadMs),
        int(g.cost.keys),
        int(g.cost.tiles),
        int(g.cost.bytes),
        int(g.cost.fetches),
        dec(g.cost.fetchMs, 1),
        Object.entries(g.shares)
          .map(([j, f]) => `${j} ${pct(f)}`)
          .join(', ') || '-',
      ]),
    );
  } else if (by === 'join') {
    out =
      table(
        [
          'join',
          'owner',
          'requests',
          'rows',
          'lookups',
          'mean ms',
          'p50 ms',
          'p99 ms',
          ...COST_HEADER.map((h) => `${h}*`),
        ],
        report.joins.map((j) => [
          j.name,
          j.owner,
          int(j.requests),
          int(j.rows),
          int(j.lookups),
          ms(j.latency?.meanMs),
          ms(j.latency?.p50Ms),
          ms(j.latency?.p99Ms),
          ...costCells(j.attributed),
        ]),
      ) +
      "* attributed: each group-by's cost split across the joins using it by their share of its key lookups\n" +
      `  (unattributed, group-bys no join uses: ${costSummary(report.unattributed)})\n`;
  } else {
    const own = (c: Cost) => [
      int(c.events),
      secs(c.streamCpuMs),
      int(c.bytes),
      dec(c.fetches, 1),
      dec(c.fetchMs, 1),
    ];
    const head = ['events', 'cpu s', 'bytes', 'fetches', 'fetch ms'];
    out =
      table(
        ['owner', 'group-bys', 'joins', ...head.map((h) => `${h} (own)`), ...head.map((h) => `${h} (used)`)],
        report.owners.map((o) => [
          o.owner,
          int(o.groupBys.length),
          int(o.joins.length),
          ...own(o.produced),
          ...own(o.consumed),
        ]),
      ) + "(own): cost of the group-bys the owner defines; (used): attributed cost of the owner's joins\n";
  }
  return out + `total: ${costSummary(report.total)}\n`;
}

function costSummary(c: Cost): string {
  return (
    // Summed over group-bys: an event applied to 9 group-bys counts 9 times.
    `${int(c.events)} group-by events, ${secs(c.streamCpuMs)} s stream cpu, ${secs(c.uploadMs)} s upload, ${int(c.keys)} keys, ` +
    `${int(c.tiles)} tiles, ${int(c.bytes)} bytes, ${int(c.fetches)} fetches, ${dec(c.fetchMs, 1)} ms fetch time`
  );
}
