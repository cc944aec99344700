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
import { packTiles, TileColumns, unpackTiles } from './tile-pack.ts';

/**
 * Redis store (scale-out). Layout 2: one string per `(groupBy, key)`, `<prefix>e:{<groupBy>:<key>}` (the braces
 * are a Cluster hash tag), holding
 *
 *     u32 LE T | T bytes: packTiles(tiles) (tile-pack.ts; T = 4 for no tiles) | event run (the rest)
 *
 * i.e. the LMDB value (tile-pack.ts) behind a length, so the entity's tiles and run (store.ts layout 5) are
 * one value: a read is ONE `MGET` of all requested entities, atomic (tiles and run always come from the
 * same commit) and decoded in place (`readEntities`). Against layout 1 (a hash per entity plus a run
 * string, read by a MULTI of HGETALL + GET), client CPU per read of 10 entities fell ~10x, of 1000 ~15x,
 * ioredis' per-command objects and HGETALL's object conversion being most of it. T lets the commit script
 * append to a run without reading the value. Commits run the Lua script `COMMIT`, which merges tile writes
 * into the packed tiles server-side, appends runs, sets offsets and checks fencing expectations, all
 * atomically. Offsets are fields of the hash `<prefix>offsets`, usage counters of `<prefix>usage`, and
 * `<prefix>format` records the layout (checked before the first operation, so layout-1 data gives a clear
 * error instead of reading as empty).
 *
 * Redis Cluster is refused: an entity's data share a slot (the hash tag), but a commit or a read spans
 * entities in many slots. Use a single primary (replicas for failover).
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

/** The value of `<prefix>format` this code reads and writes. */
const LAYOUT = '2';

/** Tile-write entry length marking a delete in the commit script's write lists. */
const DELETE = 0xffffffff;

/**
 * KEYS[1] the offsets hash, KEYS[2..] entity values. ARGV: #expectations, #offsets, expectation pairs
 * (name, '-' absent | '=' value), offset pairs, then per entity: its tile writes (sorted by level, start;
 * entries f64 level, f64 start, u32 length or DELETE, bytes; '' none) and its run op ('' none, 'd' delete,
 * 'a' .. bytes append, 'r' .. bytes replace). Returns each entity's run length before the commit.
 *
 * Everything is read and checked before the first write: Redis does not roll back a script that fails
 * half-way, so a corrupt value or a fencing mismatch must abort before anything changed.
 */
const COMMIT = `
local nx, no = tonumber(ARGV[1]), tonumber(ARGV[2])
local a = 3
for i = 1, nx do
  local name, want = ARGV[a], ARGV[a + 1]
  a = a + 2
  local have = redis.call('HGET', KEYS[1], name)
  local ok
  if want == '-' then ok = (have == false) else ok = (have ~= false and ('=' .. have) == want) end
  if not ok then
    local shown = 'absent'
    if have ~= false then shown = "'" .. have .. "'" end
    local expected = 'absent'
    if want ~= '-' then expected = "'" .. string.sub(want, 2) .. "'" end
    return redis.error_reply("fenced: offset '" .. name .. "' is " .. shown ..
      " in the store but this writer expected " .. expected ..
      ": another writer committed to it; stop this one")
  end
end
local offsets = {}
for i = 1, no do
  offsets[2 * i - 1], offsets[2 * i] = ARGV[a], ARGV[a + 1]
  a = a + 2
end
local function corrupt(key)
  error({ err = 'ERR entity value ' .. key .. ' is corrupt (not Tessera Redis layout ${LAYOUT}); re-upload its group-by' })
end
-- Merges sorted tile writes w into the packed tiles of old at [from, to]; returns the new packed tiles.
local function merge(old, from, to, w, key)
  local parts, count = {}, 0
  local oi, wi, we = from + 4, 1, #w
  if to < from then oi = to + 1 end
  while oi <= to or wi <= we do
    local cmp
    if oi > to then cmp = 1
    elseif wi > we then cmp = -1
    else
      local ol, os = struct.unpack('<dd', old, oi)
      local wl, ws = struct.unpack('<dd', w, wi)
      if ol < wl then cmp = -1 elseif ol > wl then cmp = 1
      elseif os < ws then cmp = -1 elseif os > ws then cmp = 1 else cmp = 0 end
    end
    if cmp < 0 then
      local len = struct.unpack('<I4', old, oi + 16)
      local stop = oi + 19 + len
      if stop > to then corrupt(key) end
      parts[#parts + 1] = string.sub(old, oi, stop)
      count = count + 1
      oi = stop + 1
    else
      if cmp == 0 then oi = oi + 20 + struct.unpack('<I4', old, oi + 16) end
      local len = struct.unpack('<I4', w, wi + 16)
      if len == ${DELETE} then wi = wi + 20 else
        parts[#parts + 1] = string.sub(w, wi, wi + 19 + len)
        count = count + 1
        wi = wi + 20 + len
      end
    end
  end
  return struct.pack('<I4', count) .. table.concat(parts)
end
local NO_TILES = struct.pack('<I4', 0)
local n = #KEYS - 1
local plan, before = {}, {}
-- Pass 1 reads and merges; a corrupt value aborts with a plain error reply (no script location appended).
local ok, failure = pcall(function()
  for e = 1, n do
    local key, w, op = KEYS[e + 1], ARGV[a], ARGV[a + 1]
    local kind = string.sub(op, 1, 1)
    a = a + 2
    if w == '' and kind == 'a' then
      -- A run append only: no need to read the value.
      local head = redis.call('GETRANGE', key, 0, 3)
      if head == '' then plan[e] = -1 elseif #head < 4 then corrupt(key) else plan[e] = struct.unpack('<I4', head) end
    else
      local old = redis.call('GET', key)
      local t, tiles, run = 0, NO_TILES, ''
      if old then
        if #old < 8 then corrupt(key) end
        t = struct.unpack('<I4', old)
        if t < 4 or 4 + t > #old then corrupt(key) end
        tiles, run = string.sub(old, 5, 4 + t), string.sub(old, 5 + t)
      end
      before[e] = #run
      if w ~= '' then tiles = merge(old or '', 5, 4 + t, w, key) end
      if kind == 'd' then run = '' elseif kind == 'r' then run = string.sub(op, 2)
      elseif kind == 'a' then run = run .. string.sub(op, 2) end
      plan[e] = { tiles, run }
    end
  end
end)
if not ok then
  if type(failure) == 'table' then return failure end
  return redis.error_reply(tostring(failure))
end
a = a - 2 * n
for e = 1, n do
  local key, p = KEYS[e + 1], plan[e]
  local op = ARGV[a + 1]
  a = a + 2
  if type(p) == 'number' then
    if p < 0 then
      if #op > 1 then redis.call('SET', key, struct.pack('<I4', 4) .. NO_TILES .. string.sub(op, 2)) end
      before[e] = 0
    else
      before[e] = redis.call('APPEND', key, string.sub(op, 2)) - (#op - 1) - 4 - p
    end
  elseif p[1] == NO_TILES and p[2] == '' then
    redis.call('DEL', key)
  else
    redis.call('SET', key, struct.pack('<I4', #p[1]) .. p[1] .. p[2])
  end
end
if no > 0 then redis.call('HSET', KEYS[1], unpack(offsets)) end
return before
`;

function entityKey(prefix: string, groupBy: string, key: string): string {
  return `${prefix}e:{${groupBy}:${key}}`;
}

function checkGroupBy(groupBy: string): void {
  if (groupBy.includes(':') || groupBy.includes('}'))
    throw new Error(
      `Redis store: groupBy id '${groupBy}' contains ':' or '}', which the key layout e:{groupBy:key} reserves. Use the plan hash (hex) as the groupBy id.`,
    );
}

function byLevelStart(a: { level: number; start: number }, b: { level: number; start: number }): number {
  return a.level - b.level || a.start - b.start;
}

const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * An entity's stored value (layout 2) for `tiles` (sorted by level, start) and `run` bytes; null when both
 * are empty (the key is deleted).
 */
export function redisEntityBytes(tiles: readonly StoredTile[], run?: Uint8Array): Buffer | null {
  const runLength = run?.length ?? 0;
  if (tiles.length === 0 && runLength === 0) return null;
  const packed = packTiles(tiles);
  const t = packed.length;
  const out = Buffer.allocUnsafe(4 + t + runLength);
  out.writeUInt32LE(t, 0);
  out.set(packed, 4);
  if (run && runLength > 0) out.set(run, 4 + t);
  return out;
}

/** The LMDB-format part of an entity value (packed tiles, then the run): everything after `u32 T`. */
function packedPart(value: Buffer, name: string): Buffer {
  const t = value.length >= 8 ? value.readUInt32LE(0) : -1;
  if (t < 4 || 4 + t > value.length)
    throw new Error(
      `Redis store: value ${name} is corrupt (${value.length} bytes, not Tessera layout ${LAYOUT}); re-upload its group-by`,
    );
  return value.subarray(4);
}

/** Inverse of `redisEntityBytes`: the tiles, then the run as `{ level: EVENT_RUN_LEVEL }` (views into `value`). */
export function readRedisEntity(value: Buffer, name: string): StoredTile[] {
  return unpackTiles(packedPart(value, name));
}

/** Encodes one entity's tile writes (last write of an address wins) for the commit script, sorted. */
function encodeWrites(
  writes: Map<string, { level: number; start: number; bytes: Uint8Array | null }>,
): Buffer {
  const list = [...writes.values()].sort(byLevelStart);
  let size = 0;
  for (const w of list) size += 20 + (w.bytes?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const w of list) {
    out.writeDoubleLE(w.level, at);
    out.writeDoubleLE(w.start, at + 8);
    out.writeUInt32LE(w.bytes === null ? DELETE : w.bytes.length, at + 16);
    if (w.bytes !== null) out.set(w.bytes, at + 20);
    at += 20 + (w.bytes?.length ?? 0);
  }
  return out;
}

type WithCommit = Redis & {
  tesseraCommit(numKeys: number, keys: string[], args: (string | Buffer)[]): Promise<number[]>;
};

/** One entity's run writes, in order, as one op of the commit script. */
function runOp(writes: readonly (Uint8Array | null)[]): string | Buffer {
  if (writes.length === 0) return '';
  const last = writes.lastIndexOf(null);
  const appended = writes.slice(last + 1) as Uint8Array[];
  if (last >= 0 && appended.length === 0) return 'd';
  return Buffer.concat([last >= 0 ? REPLACE_OP : APPEND_OP, ...appended]);
}

const APPEND_OP = Buffer.from('a');
const REPLACE_OP = Buffer.from('r');

class RedisStore implements OnlineStore {
  readonly kind = 'redis' as const;
  private readonly redis: WithCommit;
  /** The format check, run before the first operation (and again after it failed, e.g. Redis was down). */
  private opening: Promise<void> | null = null;
  private opened = false;
  /** Reused by every `readEntities` call (see there). */
  private readonly columns = new TileColumns();

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly url: string,
  ) {
    redis.defineCommand('tesseraCommit', { lua: COMMIT });
    this.redis = redis as WithCommit;
  }

  private wrap(what: string, cause: unknown): Error {
    // A reply error (Redis answered, e.g. a corrupt value in the commit script) carries its own fix.
    const hint =
      (cause as Error).name === 'ReplyError'
        ? ''
        : ' Check that Redis is running and reachable (--redis-url).';
    return new Error(`Redis store at ${this.url}: ${what} failed: ${(cause as Error).message}.${hint}`, {
      cause,
    });
  }

  private open(): Promise<void> {
    this.opening ??= this.checkLayout().then(
      () => {
        this.opened = true;
      },
      (e: unknown) => {
        this.opening = null;
        throw e;
      },
    );
    return this.opening;
  }

  /**
   * Records layout 2 in `<prefix>format` on a fresh prefix; refuses a prefix holding another layout. Without a
   * format key, layout-1 data (hashes `t:{...}`, committed offsets) is searched for once with SCAN.
   */
  private async checkLayout(): Promise<void> {
    const formatKey = `${this.prefix}format`;
    let found: string | null;
    try {
      // Commits and reads span entities in many slots (one script, one MGET): no Cluster. (A server that
      // refuses INFO, e.g. by ACL, is taken as a plain primary.)
      if (/cluster_enabled:1/.test(await this.redis.info('cluster').catch(() => '')))
        throw new Error(
          `Redis store at ${this.url}: Redis Cluster is not supported (a commit and a read span many hash slots); use a single primary, with replicas for failover`,
        );
      found = await this.redis.get(formatKey);
      if (found === null) {
        let old = (await this.redis.exists(`${this.prefix}offsets`)) > 0;
        let cursor = '0';
        while (!old) {
          const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}t:{*`, 'COUNT', 10_000);
          old = keys.length > 0;
          cursor = next;
          if (cursor === '0') break;
        }
        // A layout-2 writer records the format before its first write, so a format key that appeared
        // meanwhile (another process opening the same prefix) means the data found is layout 2.
        if (!old) await this.redis.set(formatKey, LAYOUT, 'NX');
        found = (await this.redis.get(formatKey)) ?? '1';
      }
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store at')) throw cause;
      throw this.wrap('open', cause);
    }
    if (found === LAYOUT) return;
    const p = this.prefix;
    throw new Error(
      `Redis store at ${this.url}, prefix '${p}': holds store layout ${found} (${found === '1' ? 'a hash per entity' : 'unknown'}), but this version reads layout ${LAYOUT} (one string per entity). ` +
        `Reload it: delete keys '${p}t:{*', '${p}r:{*', '${p}offsets' and '${p}format' (stream workers then replay their logs from the start) and re-run tessera upload, or point --redis at another database (e.g. redis://host:6379/1).`,
    );
  }

  /** One MGET of the requested entities: atomic, one reply, no per-entity command objects. */
  private async mget(
    requests: readonly TileRequest[],
  ): Promise<{ keys: string[]; values: (Buffer | null)[] }> {
    if (!this.opened) await this.open();
    const keys = new Array<string>(requests.length);
    for (let i = 0; i < requests.length; i++)
      keys[i] = entityKey(this.prefix, requests[i].groupBy, requests[i].key);
    try {
      return { keys, values: await this.redis.mgetBuffer(keys) };
    } catch (cause) {
      throw this.wrap('readTiles', cause);
    }
  }

  async readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]> {
    if (requests.length === 0) return [];
    const { keys, values } = await this.mget(requests);
    const out: StoredTile[][] = new Array(requests.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = v === null ? [] : readRedisEntity(v, keys[i]);
    }
    return out;
  }

  async readEntities(
    requests: readonly TileRequest[],
    visit: (index: number, tiles: TileColumns) => void,
  ): Promise<void> {
    if (requests.length === 0) return;
    const { keys, values } = await this.mget(requests);
    // Visits run synchronously after the reply, so concurrent reads never share `columns` at once.
    const columns = this.columns;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      visit(i, columns.fromPacked(v === null ? undefined : packedPart(v, keys[i])));
    }
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    if (!this.opened) await this.open();
    // Per entity: its tile writes (last write of an address wins) and its run writes, in order.
    const entities = new Map<
      string,
      { writes: Map<string, { level: number; start: number; bytes: Uint8Array | null }>; runs: number[] }
    >();
    const entity = (groupBy: string, key: string) => {
      checkGroupBy(groupBy);
      const k = entityKey(this.prefix, groupBy, key);
      let e = entities.get(k);
      if (e === undefined) entities.set(k, (e = { writes: new Map(), runs: [] }));
      return e;
    };
    for (const t of batch.tiles) entity(t.groupBy, t.key).writes.set(`${t.level}:${t.start}`, t);
    const runs = batch.runs ?? [];
    runs.forEach((w, i) => entity(w.groupBy, w.key).runs.push(i));
    const expect = Object.entries(batch.expect ?? {});
    const offsets = Object.entries(batch.offsets ?? {});
    const keys: string[] = [`${this.prefix}offsets`];
    const args: (string | Buffer)[] = [String(expect.length), String(offsets.length)];
    for (const [name, v] of expect) args.push(name, v === null ? '-' : `=${v}`);
    for (const [name, v] of offsets) args.push(name, v);
    for (const [k, e] of entities) {
      keys.push(k);
      args.push(e.writes.size > 0 ? encodeWrites(e.writes) : '');
      args.push(runOp(e.runs.map((i) => runs[i].bytes)));
    }
    if (keys.length === 1 && offsets.length === 0 && expect.length === 0) return { runBytes: [] };
    let before: number[];
    try {
      before = await this.redis.tesseraCommit(keys.length, keys, args);
    } catch (cause) {
      const message = (cause as Error).message;
      if (message.startsWith('fenced:')) throw new Error(message, { cause });
      throw this.wrap('commit', cause);
    }
    // Run writes of one entity apply in order (two group-bys sharing a store id may both write it).
    const runBytes: number[] = new Array(runs.length);
    let e = 0;
    for (const { runs: ops } of entities.values()) {
      let length = before[e++];
      for (const i of ops) runBytes[i] = length = runs[i].bytes === null ? 0 : length + runs[i].bytes!.length;
    }
    return { runBytes };
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
    if (!this.opened) await this.open();
    const byGroupBy: Record<string, { entities: number; tiles: number; bytes: number }> = {};
    let entities = 0;
    let tiles = 0;
    let bytes = 0;
    const head = `${this.prefix}e:{`;
    let cursor = '0';
    try {
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${head}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length === 0) continue;
        const values = await this.redis.mgetBuffer(keys);
        keys.forEach((k, i) => {
          const v = values[i];
          if (v === null) return; // deleted since the SCAN
          let n = 0;
          let b = 0;
          // The exact-from marker (exact-from.ts) is not a tile; run bytes count as stored bytes.
          for (const t of readRedisEntity(v, k))
            if (t.level !== EXACT_FROM_LEVEL) {
              if (t.level !== EVENT_RUN_LEVEL) n++;
              b += t.bytes.length;
            }
          if (b === 0 && n === 0) return;
          const inner = k.slice(head.length, -1);
          const g = (byGroupBy[inner.slice(0, inner.indexOf(':'))] ??= { entities: 0, tiles: 0, bytes: 0 });
          entities++;
          g.entities++;
          tiles += n;
          g.tiles += n;
          bytes += b;
          g.bytes += b;
        });
      } while (cursor !== '0');
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store')) throw cause;
      throw this.wrap('stats', cause);
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  async loadEntities(entities: readonly EntityTiles[]): Promise<void> {
    if (entities.length === 0) return;
    if (!this.opened) await this.open();
    // A plain pipeline of MSETs, not MULTI: a bulk load is not atomic, and MSET of many entities per command
    // keeps both sides' per-command overhead out of the way.
    const pipe = this.redis.pipeline();
    const values = new Map<readonly StoredTile[], Buffer | null>();
    let sets: (string | Buffer)[] = [];
    let dels: string[] = [];
    for (const e of entities) {
      checkGroupBy(e.groupBy);
      let value = values.get(e.tiles);
      if (value === undefined) {
        value = redisEntityBytes([...e.tiles].sort(byLevelStart));
        values.set(e.tiles, value);
      }
      const k = entityKey(this.prefix, e.groupBy, e.key);
      if (value === null) dels.push(k);
      else sets.push(k, value);
      if (sets.length >= 2000) {
        pipe.mset(sets);
        sets = [];
      }
      if (dels.length >= 1000) {
        pipe.del(dels);
        dels = [];
      }
    }
    if (sets.length > 0) pipe.mset(sets);
    if (dels.length > 0) pipe.del(dels);
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
