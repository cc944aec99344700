import { join as joinPath } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { createFetchGroupBys, emptyGroupValues } from '../../online/fetch-group-bys.ts';
import { groupById } from '../../online/group-by-id.ts';
import { openStore } from '../../online/open-store.ts';
import { createFeatureService } from '../../serve/feature-service.ts';
import { loadRepo } from '../load-repo.ts';
import { choice, REDIS_PREFIX_HELP } from '../option-parsers.ts';
import { requireLmdbStore, serverError } from '../read-store.ts';

interface FetchCliOptions {
  readonly join?: string;
  readonly groupby?: string;
  readonly key: Record<string, string>;
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
    .option('--key <column=value>', 'a key column value (repeat for several)', collectKey, {})
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
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    });
}

async function viaHttp(o: FetchCliOptions): Promise<unknown> {
  const path = o.join
    ? `/v1/features/${encodeURIComponent(o.join)}`
    : `/v1/groupbys/${encodeURIComponent(o.groupby!)}`;
  const token = o.token ?? process.env.TESSERA_TOKEN;
  const res = await fetch(o.url!.replace(/\/+$/, '') + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ keys: o.key, ...(o.at ? { at: o.at } : {}) }),
  });
  const body = (await res.json()) as { message?: string };
  if (!res.ok) throw serverError(o.url!, res.status, body);
  return body;
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

function collectKey(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected column=value, got '${value}'`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}
