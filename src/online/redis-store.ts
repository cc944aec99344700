import { Redis } from 'ioredis';
import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import { EXACT_FROM_LEVEL } from './exact-from.ts';
import {
  checkCounterDeltas,
  type CommitBatch,
  type CommitResult,
  type EntityTiles,
  type OnlineStore,
  type StoreStats,
  type StoredTile,
  type TileRequest,
} from './store.ts';

/**
 * Redis store (scale-out). One hash per `(groupBy, key)` named `<prefix>t:{<groupBy>:<key>}`; the braces are a
 * Cluster hash tag, so an entity's tiles share a slot. Fields are `<level>:<start>`, values the IR bytes.
 * An entity's event run (store.ts layout 5) is the string `<prefix>r:{<groupBy>:<key>}` (same slot), appended
 * with APPEND. Offsets are fields of the hash `<prefix>offsets`. Reads are one MULTI/EXEC of HGETALL + GET
 * per entity (atomic, so tiles and run are from the same commit); commits are one MULTI/EXEC (on a single primary; on Cluster a commit must stay within one
 * slot).
 *
 * @example
 * const store = openRedisStore('redis://127.0.0.1:6379', 'tessera:');
 */
export function openRedisStore(url: string, prefix = 'tessera:'): OnlineStore {
  const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  // Without a listener ioredis prints unhandled 'error' events; failures surface on the commands instead.
  redis.on('error', () => {});
  return new RedisStore(redis, prefix, url);
}

function entityKey(prefix: string, groupBy: string, key: string): string {
  return `${prefix}t:{${groupBy}:${key}}`;
}

function runKey(prefix: string, groupBy: string, key: string): string {
  return `${prefix}r:{${groupBy}:${key}}`;
}

function checkGroupBy(groupBy: string): void {
  if (groupBy.includes(':') || groupBy.includes('}'))
    throw new Error(
      `Redis store: groupBy id '${groupBy}' contains ':' or '}', which the key layout t:{groupBy:key} reserves. Use the plan hash (hex) as the groupBy id.`,
    );
}

function byLevelStart(a: StoredTile, b: StoredTile): number {
  return a.level - b.level || a.start - b.start;
}

class RedisStore implements OnlineStore {
  readonly kind = 'redis' as const;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly url: string,
  ) {}

  private wrap(what: string, cause: unknown): Error {
    return new Error(
      `Redis store at ${this.url}: ${what} failed: ${(cause as Error).message}. Check that Redis is running and reachable (--redis-url).`,
      { cause },
    );
  }

  async readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]> {
    if (requests.length === 0) return [];
    // MULTI, not a plain pipeline: a roll-up (tiles written, run deleted) committed between an entity's
    // HGETALL and GET would otherwise be read as old tiles without the run, missing those events.
    const pipe = this.redis.multi();
    for (const r of requests) {
      pipe.hgetallBuffer(entityKey(this.prefix, r.groupBy, r.key));
      pipe.getBuffer(runKey(this.prefix, r.groupBy, r.key));
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipe.exec();
    } catch (cause) {
      throw this.wrap('readTiles', cause);
    }
    const out: StoredTile[][] = new Array(requests.length);
    for (let i = 0; i < requests.length; i++) {
      const [err, hash] = results![2 * i];
      const [runErr, run] = results![2 * i + 1];
      if (err ?? runErr) throw this.wrap('readTiles', (err ?? runErr)!);
      const list: StoredTile[] = [];
      for (const [field, bytes] of Object.entries(hash as Record<string, Buffer>)) {
        const colon = field.indexOf(':');
        list.push({ level: Number(field.slice(0, colon)), start: Number(field.slice(colon + 1)), bytes });
      }
      list.sort(byLevelStart);
      if (run !== null) list.push({ level: EVENT_RUN_LEVEL, start: 0, bytes: run as Buffer });
      out[i] = list;
    }
    return out;
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    const multi = this.redis.multi();
    // One HSET and at most one HDEL per entity (last write of a tile wins), not one command per tile.
    const byEntity = new Map<string, Map<string, Uint8Array | null>>();
    let queued = 0;
    for (const t of batch.tiles) {
      checkGroupBy(t.groupBy);
      const k = entityKey(this.prefix, t.groupBy, t.key);
      let fields = byEntity.get(k);
      if (fields === undefined) byEntity.set(k, (fields = new Map()));
      fields.set(`${t.level}:${t.start}`, t.bytes);
    }
    for (const [k, fields] of byEntity) {
      const sets: (string | Buffer)[] = [];
      const dels: string[] = [];
      for (const [field, bytes] of fields) {
        if (bytes === null) dels.push(field);
        else sets.push(field, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      }
      if (dels.length) {
        multi.hdel(k, ...dels);
        queued++;
      }
      if (sets.length) {
        multi.hset(k, ...sets);
        queued++;
      }
    }
    const runs = batch.runs ?? [];
    // Results of the run commands start after the tile commands.
    const firstRun = queued;
    for (const w of runs) {
      checkGroupBy(w.groupBy);
      const k = runKey(this.prefix, w.groupBy, w.key);
      if (w.bytes === null) multi.del(k);
      else multi.append(k, Buffer.from(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength));
    }
    if (batch.offsets && Object.keys(batch.offsets).length > 0)
      multi.hset(`${this.prefix}offsets`, batch.offsets);
    let res: [Error | null, unknown][] | null;
    try {
      res = await multi.exec();
    } catch (cause) {
      throw this.wrap('commit', cause);
    }
    if (res === null) throw this.wrap('commit', new Error('transaction aborted'));
    for (const [err] of res) if (err) throw this.wrap('commit', err);
    const done = res;
    return { runBytes: runs.map((w, i) => (w.bytes === null ? 0 : Number(done[firstRun + i][1]))) };
  }

  async readOffsets(names?: readonly string[]): Promise<Record<string, string>> {
    const key = `${this.prefix}offsets`;
    try {
      if (!names) return await this.redis.hgetall(key);
      if (names.length === 0) return {};
      const values = await this.redis.hmget(key, ...names);
      const out: Record<string, string> = {};
      names.forEach((n, i) => {
        const v = values[i];
        if (v !== null) out[n] = v;
      });
      return out;
    } catch (cause) {
      throw this.wrap('readOffsets', cause);
    }
  }

  async addCounters(deltas: Readonly<Record<string, number>>): Promise<void> {
    const entries = Object.entries(deltas).filter(([, d]) => d !== 0);
    if (entries.length === 0) return;
    checkCounterDeltas(entries);
    const multi = this.redis.multi();
    for (const [name, d] of entries) multi.hincrby(`${this.prefix}usage`, name, d);
    let res: [Error | null, unknown][] | null;
    try {
      res = await multi.exec();
    } catch (cause) {
      throw this.wrap('addCounters', cause);
    }
    if (res === null) throw this.wrap('addCounters', new Error('transaction aborted'));
    for (const [err] of res) if (err) throw this.wrap('addCounters', err);
  }

  async readCounters(prefix = ''): Promise<Record<string, number>> {
    let all: Record<string, string>;
    try {
      all = await this.redis.hgetall(`${this.prefix}usage`);
    } catch (cause) {
      throw this.wrap('readCounters', cause);
    }
    const out: Record<string, number> = {};
    for (const [name, v] of Object.entries(all)) if (name.startsWith(prefix)) out[name] = Number(v);
    return out;
  }

  async stats(): Promise<StoreStats> {
    const byGroupBy: Record<string, { entities: number; tiles: number; bytes: number }> = {};
    let entities = 0;
    let tiles = 0;
    let bytes = 0;
    const groupOf = (inner: string) => {
      const groupBy = inner.slice(0, inner.indexOf(':'));
      return (byGroupBy[groupBy] ??= { entities: 0, tiles: 0, bytes: 0 });
    };
    // Entities holding only an event run count too; run bytes count as stored bytes.
    const runs = new Map<string, number>();
    await this.scanEach(
      `${this.prefix}r:{`,
      (p, k) => p.strlen(k),
      (inner, len) => runs.set(inner, len as number),
    );
    await this.scanEach(
      `${this.prefix}t:{`,
      (p, k) => p.hgetallBuffer(k),
      (inner, hash) => {
        const g = groupOf(inner);
        const run = runs.get(inner) ?? 0;
        runs.delete(inner);
        // The exact-from marker (exact-from.ts) is not a tile.
        const fields = Object.entries(hash as Record<string, Buffer>)
          .filter(([f]) => !f.startsWith(`${EXACT_FROM_LEVEL}:`))
          .map(([, v]) => v);
        if (fields.length === 0 && run === 0) return;
        let b = run;
        for (const v of fields) b += v.length;
        entities++;
        g.entities++;
        tiles += fields.length;
        g.tiles += fields.length;
        bytes += b;
        g.bytes += b;
      },
    );
    for (const [inner, run] of runs) {
      const g = groupOf(inner);
      entities++;
      g.entities++;
      bytes += run;
      g.bytes += run;
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  /** SCANs keys starting with `head` (`head` + `groupBy:key}`), reading each with `read` in one pipeline per page. */
  private async scanEach(
    head: string,
    read: (pipe: ReturnType<Redis['pipeline']>, key: string) => void,
    visit: (inner: string, value: unknown) => void,
  ): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${head}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const pipe = this.redis.pipeline();
      for (const k of keys) read(pipe, k);
      const results = (await pipe.exec()) ?? [];
      keys.forEach((k, i) => visit(k.slice(head.length, -1), results[i][1]));
    } while (cursor !== '0');
  }

  async loadEntities(entities: readonly EntityTiles[]): Promise<void> {
    // A plain pipeline, not MULTI: a bulk load is not atomic, and Redis runs it without queueing it first.
    const pipe = this.redis.pipeline();
    const fields = new Map<readonly StoredTile[], (string | Buffer)[]>();
    for (const e of entities) {
      checkGroupBy(e.groupBy);
      let args = fields.get(e.tiles);
      if (args === undefined) {
        args = e.tiles.flatMap((t) => [
          `${t.level}:${t.start}`,
          Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength),
        ]);
        fields.set(e.tiles, args);
      }
      const k = entityKey(this.prefix, e.groupBy, e.key);
      pipe.del(k, runKey(this.prefix, e.groupBy, e.key));
      if (args.length > 0) pipe.hset(k, ...args);
    }
    let res: [Error | null, unknown][] | null;
    try {
      res = await pipe.exec();
    } catch (cause) {
      throw this.wrap('loadEntities', cause);
    }
    for (const [err] of res ?? []) if (err) throw this.wrap('loadEntities', err);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
