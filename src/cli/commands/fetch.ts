import { stringifyFloats } from '../../aggregate/ops/float-json.ts';
import { join as joinPath } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { createFetchGroupBys, emptyGroupValues } from '../../online/fetch-group-bys.ts';
import { groupById } from '../../online/group-by-id.ts';
import { openStore } from '../../online/open-store.ts';
import { transportError } from '../../serve/client.ts';
import { createFeatureService } from '../../serve/feature-service.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, REDIS_PREFIX_HELP } from '../option-parsers.ts';
import { requireLmdbStore, serverError } from '../read-store.ts';

interface FetchCliOptions {
  readonly join?: string;
  readonly groupby?: string;
  /** Key column → its text, or null for a `--key column` given without `=` (no entity). */
  readonly key: Record<string, string | null>;
  readonly at?: string;
  readonly url?: string;
  readonly token?: string;
  readonly repo: string;
  readonly dataDir: string;
  readonly store: 'lmdb' | 'redis';
  readonly redis?: string;
  readonly redisPrefix?: string;
}

/** `tessera fetch`: one row of features, from a running server (--url) or straight from the store. */
export function register(program: Command): void {
  program
    .command('fetch')
    .description("print a join's (or group-by's) features for one row of keys as JSON")
    .option('--join <name>', 'the join (model) to fetch')
    .option('--groupby <name>', 'a single group-by to fetch instead of a join')
    .option(
      '--key <column=value>',
      "a key column value, converted by the column's type (repeat for several); `--key column` without '=' sends null (no entity), `column=` the empty string",
      collectKey,
      {},
    )
    .option('--at <time>', 'query time: epoch ms or ISO-8601 (default: now)')
    .option('--url <url>', 'ask a running `tessera serve` at this URL instead of opening the store')
    .option('--token <token>', 'bearer token for --url (default env TESSERA_TOKEN)')
    .option('--repo <dir>', 'feature repo folder (when reading the store directly)', '.')
    .option('--data-dir <dir>', 'where the LMDB store lives', '.tessera')
    .option('--store <kind>', 'lmdb | redis', (v) => choice(v, ['lmdb', 'redis']), 'lmdb')
    .option('--redis <url>', 'Redis URL for --store redis (default env REDIS_URL or redis://127.0.0.1:6379)')
    .option('--redis-prefix <prefix>', REDIS_PREFIX_HELP)
    .action(async (o: FetchCliOptions) => {
      if ((o.join === undefined) === (o.groupby === undefined)) {
        throw new Error('pass exactly one of --join NAME or --groupby NAME');
      }
      if (Object.keys(o.key).length === 0)
        throw new Error('pass the keys with --key column=value (repeatable)');
      const result = o.url ? await viaHttp(o) : await viaStore(o);
      process.stdout.write(stringifyFloats(result, 2) + '\n');
    });
}

/**
 * Asks the server's GET route, which converts the `--key` texts by the left column types (as `viaStore` does
 * through the same `toLeftRows`), so `--key user_id=1` works for an int column; a POST would send "1" as a
 * JSON string, which the server rightly refuses for an int column. A null key goes as the bare name.
 */
async function viaHttp(o: FetchCliOptions): Promise<unknown> {
  const path = o.join
    ? `/v1/features/${encodeURIComponent(o.join)}`
    : `/v1/groupbys/${encodeURIComponent(o.groupby!)}`;
  if ('at' in o.key)
    throw new Error(
      "a key column named 'at' cannot go in a GET query (it is the query time); fetch it without --url",
    );
  const url = o.url!.replace(/\/+$/, '') + path + '?' + keyQuery(o.key, o.at);
  const token = o.token ?? process.env.TESSERA_TOKEN;
  let status: number;
  let text: string;
  try {
    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    status = res.status;
    text = await res.text();
  } catch (err) {
    throw transportError('GET', url, err);
  }
  let body: { message?: string };
  try {
    body = JSON.parse(text) as { message?: string };
  } catch {
    throw new Error(
      `${o.url} answered ${status} with a non-JSON body: ${text.slice(0, 200)}; is it a tessera server?`,
    );
  }
  if (status < 200 || status > 299) throw serverError(o.url!, status, body);
  return body;
}

/** The GET query of `--key`s and `--at`: `user_id=1&ip&at=…` (a bare name is a null key). */
export function keyQuery(keys: Readonly<Record<string, string | null>>, at: string | undefined): string {
  const parts = Object.entries(keys).map(([column, value]) =>
    value === null
      ? encodeURIComponent(column)
      : `${encodeURIComponent(column)}=${encodeURIComponent(value)}`,
  );
  if (at !== undefined) parts.push(`at=${encodeURIComponent(at)}`);
  return parts.join('&');
}

async function viaStore(o: FetchCliOptions): Promise<unknown> {
  if (o.store === 'lmdb') requireLmdbStore(o.dataDir, 'fetch');
  const repo = await loadRepo(o.repo, { checkFiles: false });
  const store = openStore(
    o.store === 'redis'
      ? {
          kind: 'redis',
          url: o.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
          ...(o.redisPrefix ? { prefix: o.redisPrefix } : {}),
        }
      : { kind: 'lmdb', path: joinPath(o.dataDir, 'store') },
  );
  try {
    const service = createFeatureService({
      repo,
      groupById,
      fetchGroups: createFetchGroupBys(store),
      emptyValues: emptyGroupValues,
    });
    // Key values arrive as text, like a GET query string: convert them by the left column types.
    const opts = { fromQuery: true };
    if (o.join) {
      const { at, joins } = await service.fetchJoins([o.join], [o.key], o.at, opts);
      return { join: o.join, at, ...joins[o.join]![0]! };
    }
    const { at, rows } = await service.fetchGroupBy(o.groupby!, [o.key], o.at, opts);
    return { groupBy: o.groupby, at, ...rows[0]! };
  } finally {
    await store.close();
  }
}

/** `--key column=value`, or `--key column` for a null key (no entity); `column=` is the empty string. */
function collectKey(value: string, previous: Record<string, string | null>): Record<string, string | null> {
  const eq = value.indexOf('=');
  if (eq === 0 || value === '')
    throw new InvalidArgumentError(`expected column=value (or column alone for null), got '${value}'`);
  return eq < 0 ? { ...previous, [value]: null } : { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}
