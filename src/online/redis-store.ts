import { randomBytes } from 'node:crypto';
import { Cluster, Command } from 'ioredis';
import { EVENT_RUN_LEVEL } from '../aggregate/event-run.ts';
import { EXACT_FROM_LEVEL } from './exact-from.ts';
import {
  checkCounterDeltas,
  type CommitBatch,
  type CommitResult,
  type EntityTiles,
  type OnlineStore,
  type RunWrite,
  type StoreStats,
  type StoredTile,
  type TileRequest,
} from './store.ts';
import { timeoutOption } from './log/log-unavailable.ts';
import { partitionOf } from './log/partition.ts';
import {
  CLUSTER_SLOTS,
  clusterSlot,
  DEFAULT_REDIS_TIMEOUT_MS,
  firstReadyMs,
  openRedisClient,
  databaseRefused,
  parseClusterUrl,
  pingMasters,
  redisErrorText,
  REDIS_TIMEOUT_ENV,
  untilReady,
  withDeadline,
  type RedisClient,
} from './redis-client.ts';
import { MgetConnections, MgetLinkError, MgetReplyError, MgetValues } from './redis-mget.ts';
import { redactUrl } from './redact-url.ts';
import { StoreUnavailableError } from './store-unavailable.ts';
import { packTiles, TileColumns, unpackTiles } from './tile-pack.ts';

/**
 * Redis store (scale-out), layout 3, for a single Redis or a Redis Cluster alike. Keys:
 *
 *     <prefix>e{<tag s>}<groupBy>:<key>   one string per (groupBy, key):
 *                                         u32 LE T | T bytes: packTiles(tiles) (T = 4 for none) | event run
 *     <prefix>o{<tag s>}                  hash: the offsets homed in store partition s
 *     <prefix>w{<tag s>}<offset name>     hash: the log of a big commit of the writer expecting that
 *                                         offset (homed in s), while it is being applied (`commitPart`)
 *     <prefix>w{<tag s>}#<id>             hash: the log of a big unfenced commit (bulk upload) in s
 *     <prefix>x{<tag s>}<offset name>:<id>  hash: its chunks while staged (expiring)
 *     <prefix>p{<tag s>}                  string: the logs (their keys, each behind a u32 LE length) that
 *                                         may still change entities of partition s; absent when none
 *     <prefix>format                      '3;partitions=<S>'
 *     <prefix>usage                       hash: usage counters
 *
 * An entity's value is the LMDB value (tile-pack.ts) behind a length, so its tiles and run (store.ts
 * layout 5) are one value: read atomically by MGET and decoded in place (`readEntities`); T lets the commit
 * script append to a run without reading the value. (Against layout 1, a hash per entity plus a run string
 * read by HGETALL + GET, client CPU per read of 10 entities fell ~10x, of 1000 ~15x.)
 *
 * Store partitions (Redis Cluster). The braces are a Cluster hash tag, and it names the entity's store
 * partition s = partitionOf(key, S) (log/partition.ts), not the entity: a stream worker of log partition p
 * (of P) owns exactly the entities with partitionOf(key, P) = p, and when S divides P these all have
 * s = p mod S. So everything one worker commits (its entities and its offsets, homed in the same s) is in
 * ONE hash slot, and a commit stays atomic (one Lua script, `COMMIT`: tile merges, run appends, offsets and
 * fencing; or, when too big for one short script, a redo log in that slot: `commitPart`) even on a Cluster. S is fixed by the store's first write (`<prefix>format`): the writer's log
 * partition count P (1 on a single Redis when not given; required on a Cluster); a fenced writer (a stream
 * worker) must run a multiple of S (refused otherwise); readers adopt S. Tag s is the first base-36
 * numeral whose slot is ⌊(2s+1)·16384 / 2S⌋, spreading the S partitions evenly over the slot range (and so
 * over the masters of `redis-cli --cluster create`): S is the unit of spread, so a Cluster store wants
 * S (= --partitions) at least a few times its master count. Sharing a slot, a partition's tiles and offset
 * also share a master and its replication stream: a failover that loses acknowledged writes loses them
 * together, never the offset without its tiles.
 *
 * An offset named `.../<n>` (a log partition's offset, watermark and counters, worker.ts) is homed in store
 * partition n mod S, any other (upload cutoffs) in partitionOf(name, S). On a single Redis every command may
 * span partitions: a commit is one script, a read one MGET. On a Cluster, a read is one MGET per store
 * partition touched (sent concurrently), and a commit spanning partitions (bulk upload)
 * must carry no fencing `expect`: it commits each partition's part (atomic within it, as any commit), then
 * its offsets, so an upload cutoff is never recorded before its tiles. Across partitions it is not atomic
 * for readers: a read spanning partitions is one MGET per partition, not one snapshot, on a Cluster.
 *
 * `<prefix>format` is checked before the first operation, so an older layout gives a clear error (with
 * rebuild steps) instead of reading as empty.
 *
 * @example
 * const store = openRedisStore('redis://127.0.0.1:6379', { partitions: 4 });
 * const cluster = openRedisStore('redis+cluster://10.0.0.1:7000,10.0.0.2:7000', { partitions: 16 });
 */
export function openRedisStore(url: string, opts: RedisStoreOptions = {}): OnlineStore {
  const prefix = opts.prefix ?? 'tessera:';
  if (/[{}]/.test(prefix))
    throw new Error(
      `Redis store: prefix '${prefix}' contains '{' or '}', which would break the store's Cluster hash tags; choose a prefix without braces`,
    );
  const p = opts.partitions;
  if (p !== undefined && !(Number.isSafeInteger(p) && p >= 1 && p <= CLUSTER_SLOTS))
    throw new Error(`Redis store: partitions must be an integer in 1..${CLUSTER_SLOTS}, got ${p}`);
  const chunk = opts.commitChunkEntities ?? CHUNK_ENTITIES;
  if (!(Number.isSafeInteger(chunk) && chunk >= 1))
    throw new Error(
      `Redis store: commitChunkEntities must be a positive integer (entities per commit script), got ${chunk}; omit it for the default ${CHUNK_ENTITIES}`,
    );
  const where = redactUrl(url);
  const timeout = timeoutOption(
    opts.commandTimeoutMs,
    TIMEOUT_ENV,
    DEFAULT_COMMAND_TIMEOUT_MS,
    `Redis store at ${where} (commandTimeoutMs)`,
  );
  // No resend after a reconnect: a commit in flight when the link dropped may have been applied, and resent
  // it would find its own offset stored and fail `fenced:`, stopping the partition's only writer for good
  // (worker invariant 8). Unresent, it fails at the timeout and the worker adopts it if it was applied
  // (`adoptLostCommit`); a read in flight fails too (503), and is simply retried by its caller.
  // Commands issued while disconnected wait in ioredis' offline queue and are sent once reconnected, even
  // if their timeout already failed them (unless 3 failed reconnects flush the queue, `maxRetriesPerRequest`),
  // so a commit may run after the worker saw it fail. That is safe:
  // fencing admits one commit per stored offset, so a late one and the worker's redo never both apply.
  // And it costs no false fencing: the worker's next command (its readOffsets before redoing) queues
  // behind it on the same connection (on a Cluster, the same slot's), so that read already sees it applied
  // and the worker adopts it. Only bytes delayed on a dropped connection could arrive after that read; the
  // worker would then be fenced (stopped, no wrong data). On a Cluster, the client does not retry a command
  // whose node connection closed either (openRedisClient: retryDelayOnFailover 0).
  // Tested through a proxy that cuts links: test/online/redis-lost-reply.test.ts.
  const client = openRedisClient(url, { commandTimeoutMs: timeout, resendAfterReconnect: false });
  const seeds = client instanceof Cluster ? parseClusterUrl(url).nodes.length : 1;
  return new RedisStore(client, prefix, where, p ?? null, chunk, timeout, firstReadyMs(seeds, timeout));
}

/**
 * Keys a read may MGET per command timeout. A fetch reads in one MGET per store partition (it must, for a
 * snapshot), so a 1000-row fetch of a join over 9 group-bys is one command of ~9,000 keys, which may take
 * longer than the timeout to cross a slow link from a healthy Redis: it gets one timeout per this many keys.
 * (Stream workers load tiles in reads of at most this many entities, worker.ts `loadChunkEntities`.)
 */
export const KEYS_PER_TIMEOUT = 4096;
/** Default `RedisStoreOptions.commandTimeoutMs` (that of every Redis client, redis-client.ts). */
export const DEFAULT_COMMAND_TIMEOUT_MS = DEFAULT_REDIS_TIMEOUT_MS;
/** Environment variable overriding the default command timeout of every Redis store (and Redis log) a process opens. */
export const TIMEOUT_ENV = REDIS_TIMEOUT_ENV;

export interface RedisStoreOptions {
  /** Key prefix; several stores can share one Redis under different prefixes (default 'tessera:'). */
  readonly prefix?: string;
  /**
   * The log partition count of a writer (stream workers, upload): a fresh store's first write records it as
   * the store's partition count, and a stream worker's must be a multiple of an existing store's. Readers
   * omit it and adopt the store's.
   */
  readonly partitions?: number;
  /**
   * Entities per commit script (default `CHUNK_ENTITIES`; a tile write counts as a quarter entity): a commit
   * holding more is staged and applied in chunks of this size (`commitPart`). Tests set it tiny to exercise
   * that path with small batches; production has no reason to change it.
   */
  readonly commitChunkEntities?: number;
  /**
   * How long a store command may wait for its reply before it fails (default 2000 ms, or env
   * TESSERA_REDIS_TIMEOUT_MS): a hung or unreachable Redis then fails fetches (503) and commits (the worker
   * retries, adopting a commit that was applied after all) instead of hanging them. Every store command is
   * short: commit scripts are chunked to ~10 ms (`CHUNK_ENTITIES`), bulk loads are sent in bounded waves.
   */
  readonly commandTimeoutMs?: number;
}

/** Chunks (up to `CHUNK_BYTES` each) per pipeline wave staging a big commit (`commitPart`). */
const STAGE_WAVE = 4;

/** MSET/DEL commands per pipeline wave of `loadEntities` (~1000 entities each; ~10 ms per wave). */
const LOAD_WAVE = 8;

/** Reply errors meaning Redis cannot serve now, though it answered (the same command may succeed later). */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/;

/** The layout number in `<prefix>format` this code reads and writes. */
const LAYOUT = '3';
const FORMAT = /^3;partitions=(\d+)$/;

const tagCache = new Map<number, string[]>();

/**
 * The hash tags of `count` store partitions: tag s is the first base-36 numeral whose Cluster slot is
 * ⌊(2s+1)·16384 / 2·count⌋ (distinct slots for count <= 16384).
 *
 * @example
 * partitionTags(2); // two tags, in slots 4096 and 12288
 */
export function partitionTags(count: number): string[] {
  let tags = tagCache.get(count);
  if (tags !== undefined) return tags;
  const wanted = new Map<number, number>();
  for (let s = 0; s < count; s++) wanted.set(Math.floor(((2 * s + 1) * CLUSTER_SLOTS) / (2 * count)), s);
  tags = new Array<string>(count);
  for (let n = 0, left = count; left > 0; n++) {
    const tag = n.toString(36);
    const s = wanted.get(clusterSlot(tag));
    if (s !== undefined && tags[s] === undefined) {
      tags[s] = tag;
      left--;
    }
  }
  tagCache.set(count, tags);
  return tags;
}

/** The store partition an offset is homed in (see the layout notes). */
function offsetPartition(name: string, partitions: number): number {
  const m = /\/(\d+)$/.exec(name);
  return m ? Number(m[1]) % partitions : partitionOf(name, partitions);
}

/** Tile-write entry length marking a delete in the commit script's write lists. */
const DELETE = 0xffffffff;

/**
 * Lua shared by `COMMIT` and `APPLY`: `apply(chunk)` applies a chunk of entity ops and returns each entity's
 * run length before it (or nil and an error reply). A chunk is a list of entity records: u32 LE key length,
 * writes length, op length, then the entity's key, its tile writes (sorted by level, start; entries f64
 * level, f64 start, u32 length or DELETE, bytes) and its run op ('' none, 'd' delete, 'a' .. bytes append,
 * 'r' .. bytes replace).
 *
 * The chunk is read and checked before its first write: Redis does not roll back a script that fails half-way,
 * so a corrupt value must abort before anything changed.
 */
const APPLY_FN = `
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
local function apply(chunk)
  local keys, ws, ops, n, at, size = {}, {}, {}, 0, 1, #chunk
  while at <= size do
    local kl, wl, ol = struct.unpack('<I4I4I4', chunk, at)
    at = at + 12
    n = n + 1
    keys[n] = string.sub(chunk, at, at + kl - 1)
    at = at + kl
    ws[n] = string.sub(chunk, at, at + wl - 1)
    at = at + wl
    ops[n] = string.sub(chunk, at, at + ol - 1)
    at = at + ol
  end
  local plan, before = {}, {}
  -- Pass 1 reads and merges; a corrupt value aborts with a plain error reply (no script location appended).
  local ok, failure = pcall(function()
    for e = 1, n do
      local key, w, op = keys[e], ws[e], ops[e]
      local kind = string.sub(op, 1, 1)
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
    if type(failure) == 'table' then return nil, failure end
    return nil, redis.error_reply(tostring(failure))
  end
  for e = 1, n do
    local key, p, op = keys[e], plan[e], ops[e]
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
  return before
end
`;

/**
 * A commit, or the record of a staged one. KEYS[1..nh] offsets hashes, then the writer's log key (fenced
 * commits; else a key of the chunk, for Cluster routing), then (mode 'l') the staging key and the pending
 * markers of the store partitions the commit's entities lie in. ARGV: nh, #expectations, #offsets,
 * expectation triples (hash index in KEYS, name, '-' absent | '=' value), offset triples (hash index, name,
 * value), then mode 'i' and a chunk (`APPLY_FN`; '' none) to apply now, or mode 'l', the staged chunk count,
 * the commit id and those partitions (comma-separated). Mode 'l' makes the staged chunks the writer's log
 * (`APPLY` applies them) and lists it in the markers in the same step as the offsets. Fails when the
 * writer's log of an earlier commit is still there: this commit was computed without its changes.
 * Returns each entity's run length before the commit (mode 'i').
 */
const COMMIT = `${APPLY_FN}
local nh, nx, no = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
for i = 1, nx do
  local hash, name, want = KEYS[tonumber(ARGV[a])], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
  local have = redis.call('HGET', hash, name)
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
  local h = tonumber(ARGV[a])
  local list = offsets[h]
  if list == nil then
    list = {}
    offsets[h] = list
  end
  list[#list + 1] = ARGV[a + 1]
  list[#list + 1] = ARGV[a + 2]
  a = a + 3
end
local log = KEYS[nh + 1]
if nx > 0 and redis.call('EXISTS', log) == 1 then return redis.error_reply('unfinished: ' .. log) end
local before = {}
if ARGV[a] == 'l' then
  local stage, n = KEYS[nh + 2], tonumber(ARGV[a + 1])
  if redis.call('HLEN', stage) ~= n then
    return redis.error_reply('ERR staged commit ' .. stage .. ' is incomplete (expired before it was recorded?); redo the batch')
  end
  redis.call('RENAME', stage, log)
  redis.call('PERSIST', log)
  redis.call('HSET', log, 'id', ARGV[a + 2], 'n', n, 'next', 1, 'm', ARGV[a + 3])
  -- Readers of the partitions it changes learn of it in the MGET they send anyway (see SETTLE).
  local entry = struct.pack('<I4', #log) .. log
  for k = nh + 3, #KEYS do redis.call('APPEND', KEYS[k], entry) end
elseif ARGV[a + 1] ~= '' then
  local err
  before, err = apply(ARGV[a + 1])
  if before == nil then return err end
end
for h, list in pairs(offsets) do redis.call('HSET', KEYS[h], unpack(list)) end
return before
`;

/**
 * Applies chunk ARGV[2] of the log KEYS[1] of commit ARGV[1], if it is the log's next one, and returns its
 * entities' run lengths before it; returns an empty list when another client applied it already (or the
 * log is gone). The last chunk deletes the log.
 */
const APPLY = `${APPLY_FN}
local log, i = KEYS[1], tonumber(ARGV[2])
local state = redis.call('HMGET', log, 'id', 'n', 'next')
if state[1] ~= ARGV[1] or tonumber(state[3]) ~= i then return {} end
local before, err = apply(redis.call('HGET', log, ARGV[2]))
if before == nil then return err end
if i >= tonumber(state[2]) then redis.call('DEL', log) else
  redis.call('HDEL', log, ARGV[2])
  redis.call('HSET', log, 'next', i + 1)
end
return before
`;

/**
 * Removes log KEYS[1] from the pending markers KEYS[2..] once the log is gone (its last chunk applied);
 * returns 1, or 0 (nothing changed) while the log is there. Atomic, so it never unlists a log recorded
 * again under the same key. Not done by the last `APPLY`: a marker only has to list every log that may
 * still change its partition, and a listed log that is gone costs a reader one round trip to unlist.
 */
const SETTLE = `
local log = KEYS[1]
if redis.call('EXISTS', log) == 1 then return 0 end
for k = 2, #KEYS do
  local v = redis.call('GET', KEYS[k])
  if v then
    local kept, at = {}, 1
    while at <= #v do
      if at + 3 > #v then return redis.error_reply('ERR pending marker ' .. KEYS[k] .. ' is corrupt; delete it') end
      local len = struct.unpack('<I4', v, at)
      if at + 3 + len > #v then return redis.error_reply('ERR pending marker ' .. KEYS[k] .. ' is corrupt; delete it') end
      if string.sub(v, at + 4, at + 3 + len) ~= log then kept[#kept + 1] = string.sub(v, at, at + 3 + len) end
      at = at + 4 + len
    end
    if #kept == 0 then redis.call('DEL', KEYS[k]) else redis.call('SET', KEYS[k], table.concat(kept)) end
  end
end
return 1
`;

/** The logs a pending marker `value` (key `name`) lists: see `SETTLE`. */
function pendingLogs(value: Buffer, name: string): string[] {
  const out: string[] = [];
  for (let at = 0; at < value.length; ) {
    const len = at + 4 <= value.length ? value.readUInt32LE(at) : -1;
    if (len < 0 || at + 4 + len > value.length)
      throw new Error(
        `Redis store: pending marker ${name} is corrupt (${value.length} bytes); delete it (a worker finishes its own unfinished commit when it restarts)`,
      );
    out.push(value.toString('utf8', at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

/**
 * Rounds of "finish the listed logs, read again" a read gives up after: each round finishes every log it
 * saw, so only writers recording new big commits in the same partition faster than a round trip, again and
 * again, could keep a read going (or a bug).
 */
const SETTLE_ROUNDS = 100;

function checkGroupBy(groupBy: string): void {
  if (groupBy.includes(':'))
    throw new Error(
      `Redis store: groupBy id '${groupBy}' contains ':', which the key layout e{tag}groupBy:key reserves. Use the plan hash (hex) as the groupBy id.`,
    );
}

function byLevelStart(a: { level: number; start: number }, b: { level: number; start: number }): number {
  return a.level - b.level || a.start - b.start;
}

/**
 * An entity's stored value for `tiles` (sorted by level, start) and `run` bytes; null when both
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

/** Whether `value` is an entity value `packedPart` accepts (checked without naming it). */
function validValue(value: Buffer): boolean {
  if (value.length < 8) return false;
  const t = value.readUInt32LE(0);
  return t >= 4 && 4 + t <= value.length;
}

/** Whether `source[at, at + size)` is an entity value `packedPart` accepts (`validValue` in place). */
function validAt(source: Uint8Array, at: number, size: number): boolean {
  if (size < 8) return false;
  const t = (source[at] | (source[at + 1] << 8) | (source[at + 2] << 16)) + source[at + 3] * 0x1000000;
  return t >= 4 && 4 + t <= size;
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

type WithCommit = RedisClient & {
  tesseraCommit(numKeys: number, keys: string[], args: (string | Buffer)[]): Promise<number[]>;
  tesseraApply(numKeys: number, log: string, id: string, chunk: string): Promise<number[]>;
  tesseraSettle(numKeys: number, keys: string[]): Promise<number>;
};

/** One entity's run writes, in order, as one op of the commit script. */
function runOp(writes: readonly (Uint8Array | null)[]): Buffer {
  if (writes.length === 0) return NO_OP;
  const last = writes.lastIndexOf(null);
  const appended = writes.slice(last + 1) as Uint8Array[];
  if (last >= 0 && appended.length === 0) return DELETE_OP;
  return Buffer.concat([last >= 0 ? REPLACE_OP : APPEND_OP, ...appended]);
}

const NO_OP = Buffer.alloc(0);
const DELETE_OP = Buffer.from('d');
const APPEND_OP = Buffer.from('a');
const REPLACE_OP = Buffer.from('r');

/**
 * How much one script may apply: Redis runs one command at a time, so a script blocks every other client of
 * that Redis (serving fetches) while it runs. A bigger commit is split into chunks of at most this many
 * entities (a tile write counting as a quarter entity) or bytes, staged, and applied one script per chunk
 * (see `commitPart`). About 10 ms of script per chunk on an idle machine.
 */
export const CHUNK_ENTITIES = 2000;
export const CHUNK_BYTES = 1 << 20;
/** How long staged chunks of a commit that was never recorded (its writer died) stay in Redis. */
const STAGE_TTL_MS = 10 * 60_000;

/** A chunk of a commit (`APPLY_FN`'s format) and the entities it holds, in order. */
interface Chunk {
  readonly bytes: Buffer;
  readonly entities: readonly EntityPart[];
}

/** Splits entities into chunks within `limit` entities and `CHUNK_BYTES` (each holding at least one). */
function chunksOf(entities: readonly EntityPart[], runs: readonly RunWrite[], limit: number): Chunk[] {
  const out: Chunk[] = [];
  let parts: Buffer[] = [];
  let list: EntityPart[] = [];
  let cost = 0;
  let bytes = 0;
  const flush = () => {
    if (list.length === 0) return;
    out.push({ bytes: Buffer.concat(parts, bytes), entities: list });
    parts = [];
    list = [];
    cost = bytes = 0;
  };
  for (const e of entities) {
    const key = Buffer.from(e.key);
    const writes = e.writes.size > 0 ? encodeWrites(e.writes) : NO_OP;
    const op = runOp(e.runs.map((i) => runs[i].bytes));
    const size = 12 + key.length + writes.length + op.length;
    const c = 1 + e.writes.size / 4;
    if (cost + c > limit || bytes + size > CHUNK_BYTES) flush();
    const head = Buffer.allocUnsafe(12);
    head.writeUInt32LE(key.length, 0);
    head.writeUInt32LE(writes.length, 4);
    head.writeUInt32LE(op.length, 8);
    parts.push(head, key, writes, op);
    list.push(e);
    cost += c;
    bytes += size;
  }
  flush();
  return out;
}

/** An entity's part of a commit: its store partition, tile writes (last write of an address wins) and runs. */
interface EntityPart {
  readonly key: string;
  readonly partition: number;
  readonly writes: Map<string, { level: number; start: number; bytes: Uint8Array | null }>;
  /** Indexes into the batch's `runs`, in order. */
  readonly runs: number[];
}

/** What one commit script applies: entities, expectations and offsets of one slot (Cluster) or all. */
class ScriptPart {
  readonly hashes: string[] = [];
  readonly expect: (string | Buffer)[] = [];
  readonly offsets: (string | Buffer)[] = [];
  readonly entities: EntityPart[] = [];

  private hash(key: string): string {
    let i = this.hashes.indexOf(key);
    if (i < 0) i = this.hashes.push(key) - 1;
    return String(i + 1);
  }
  addExpect(hash: string, name: string, value: string | null): void {
    this.expect.push(this.hash(hash), name, value === null ? '-' : `=${value}`);
  }
  addOffset(hash: string, name: string, value: string): void {
    this.offsets.push(this.hash(hash), name, value);
  }
}

/** An MGET as RESP bytes (`RedisStore.mgetBytes`) and, on a Cluster, the slot of all its keys. */
interface MgetBytes {
  readonly bytes: Buffer;
  readonly slot: number;
}

/** Sends `MgetBytes` as they are: ioredis writes `toWritable`'s result to the socket, and routes by `getSlot`. */
class PackedMget extends Command {
  constructor(private readonly mget: MgetBytes) {
    super('mget', [], { replyEncoding: null });
  }
  override toWritable(): Buffer {
    return this.mget.bytes;
  }
  override getSlot(): number {
    return this.mget.slot;
  }
}

/** Most group-by ids `keyHead` keeps per store partition. */
const GROUP_BY_CACHE_LIMIT = 10_000;

class RedisStore implements OnlineStore {
  readonly kind = 'redis' as const;
  private readonly redis: WithCommit;
  private readonly cluster: boolean;
  /** The layout check, run before the first operation (and again after it failed, e.g. Redis was down). */
  private opening: Promise<void> | null = null;
  private opened = false;
  /** The server is not a Cluster node behind a plain URL; layout-1 data was searched for (single Redis). */
  private nodeChecked = false;
  private oldChecked = false;
  /** The store's partition count S, its tags and key heads; null until known (see `open`). */
  private partitions: number | null = null;
  private tags: string[] = [];
  private tagIndex = new Map<string, number>();
  private entityHeads: string[] = [];
  /** UTF-8 lengths of `pendingKeys`, and per store partition `keyHead`'s cache, for `mgetBytes`. */
  private pendingKeyLengths: number[] = [];
  private keyHeads: Map<string, { readonly text: string; readonly bytes: number }>[] = [];
  private offsetKeys: string[] = [];
  /** The pending marker key of each store partition (`SETTLE`). */
  private pendingKeys: string[] = [];
  /** Partitions a read touches, marked with `readEpoch` (reused: set synchronously within a call). */
  private seen = new Uint32Array(0);
  private readEpoch = 0;
  /** Reused by every `readEntities` call (see there). */
  private readonly columns = new TileColumns();
  /** The connections reads send their MGETs on when ready (else through ioredis): see `send`. */
  private readonly reads: MgetConnections;
  /** The Cluster client has been ready once (see `ready`). */
  private wasReady = false;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    /** The store's URL for messages, credentials redacted (`redactUrl`). */
    private readonly where: string,
    /** The opener's log partition count (writers); null for readers. */
    private readonly logPartitions: number | null,
    /** Entities per commit script (`RedisStoreOptions.commitChunkEntities`). */
    private readonly chunkEntities: number,
    /** `RedisStoreOptions.commandTimeoutMs`, for error messages. */
    private readonly timeoutMs: number,
    /** How long an operation waits for a Cluster client never ready yet (`firstReadyMs`). */
    private readonly firstReadyMs: number,
  ) {
    redis.defineCommand('tesseraCommit', { lua: COMMIT });
    redis.defineCommand('tesseraApply', { lua: APPLY });
    redis.defineCommand('tesseraSettle', { lua: SETTLE });
    this.redis = redis as WithCommit;
    this.cluster = redis instanceof Cluster;
    this.reads = new MgetConnections(redis, timeoutMs);
    if (this.cluster) redis.once('ready', () => (this.wasReady = true));
  }

  /** `cause` as the error of operation `what`; `readKeys`: the keys of a read (`readSettled`). */
  private wrap(what: string, cause: unknown, readKeys?: number): Error {
    const message = redisErrorText(cause);
    // A reply error (Redis answered, e.g. a corrupt value in the commit script) carries its own fix, unless
    // it says Redis cannot serve now (loading, busy with a script, cluster or replica down).
    if ((cause as Error).name === 'ReplyError' && !UNAVAILABLE_REPLY.test(message))
      return new Error(`Redis store at ${this.where}: ${what} failed: ${message}.`, { cause });
    const check = 'Check that Redis is running, reachable and not blocked (--redis';
    if (message === 'Command timed out' && readKeys !== undefined)
      return new StoreUnavailableError(
        `Redis store at ${this.where}: ${what} of ${readKeys} keys failed: ${message} (no reply within ${this.timeoutMs} ms per ${KEYS_PER_TIMEOUT} keys read in one command; ${TIMEOUT_ENV}). ${check}); if it is (/readyz says ready), the reply was too big for the link in that time: raise ${TIMEOUT_ENV} or fetch fewer rows per request.`,
        { cause },
      );
    const timedOut = message === 'Command timed out' ? ` (no reply within ${this.timeoutMs} ms)` : '';
    return new StoreUnavailableError(
      `Redis store at ${this.where}: ${what} failed: ${message}${timedOut}. ${check}; the timeout is ${TIMEOUT_ENV}).`,
      { cause },
    );
  }

  /**
   * Fails (`StoreUnavailableError`) unless Redis answers a PING within `timeoutMs` (default: the command
   * timeout); on a Cluster, unless every master answers (`pingMasters`), naming those that do not.
   */
  async ping(timeoutMs = this.timeoutMs): Promise<void> {
    try {
      // One deadline for connecting and the reply together.
      const attempt = (async () => {
        const started = Date.now();
        const wait = untilReady(this.redis, timeoutMs);
        if (wait) await wait;
        if (!(this.redis instanceof Cluster)) return void (await this.redis.ping());
        // Each master gets what is left of the deadline, so a hung one is named, not just timed out.
        const down = await pingMasters(this.redis, Math.max(1, timeoutMs - (Date.now() - started) - 10));
        if (down.length > 0)
          throw new Error(
            `Redis Cluster master(s) down: ${down.join('; ')} (reads and writes of their slots fail until they answer or a replica takes over)`,
          );
      })();
      await withDeadline(attempt, timeoutMs);
    } catch (cause) {
      // Not `wrap`: any failure here, even a reply error (e.g. NOAUTH), means the store cannot serve.
      throw new StoreUnavailableError(
        `Redis store at ${this.where}: PING failed: ${redisErrorText(cause)}. Check that Redis is running, reachable and not blocked (--redis).`,
        { cause },
      );
    }
    this.checkDatabase();
  }

  /** Fails (not unavailable: waiting will not help) once Redis refused the URL's database number. */
  private checkDatabase(): void {
    const refused = databaseRefused(this.redis, `Redis store at ${this.where}`);
    if (refused !== null) throw refused;
  }

  /**
   * Checks the layout and learns S. A store without `<prefix>format` reads as empty (checked again on the
   * next call) until its first write records it (`writePartitions`).
   */
  private open(create: boolean): Promise<void> {
    this.opening ??= this.checkLayout(create).then(
      (partitions) => {
        if (partitions === null) {
          this.opening = null;
          return;
        }
        const tags = partitionTags(partitions);
        this.tags = tags;
        this.tagIndex = new Map(tags.map((t, s) => [t, s]));
        this.entityHeads = tags.map((t) => `${this.prefix}e{${t}}`);
        this.offsetKeys = tags.map((t) => `${this.prefix}o{${t}}`);
        this.pendingKeys = tags.map((t) => `${this.prefix}p{${t}}`);
        this.keyHeads = [];
        this.pendingKeyLengths = this.pendingKeys.map((k) => Buffer.byteLength(k));
        this.seen = new Uint32Array(partitions);
        this.partitions = partitions;
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
   * Waits for a Cluster client still discovering its nodes (see `untilReady`). Once it has been ready, within
   * the command timeout: an operation on a Cluster lost since fails (503 for a fetch) as one on an
   * unanswering Redis does. Before, longer (`firstReadyMs`): a Cluster slow to answer at first (hung seed
   * nodes cost ~1 s each) must not fail `tessera serve` at startup or an upload's first operation.
   */
  private async ready(): Promise<void> {
    const wait = untilReady(this.redis, this.wasReady ? this.timeoutMs : this.firstReadyMs);
    if (wait) await wait.catch((cause: unknown) => Promise.reject(this.wrap('connect', cause)));
  }

  /** S once recorded, else null (nothing was written yet). */
  private async storePartitions(): Promise<number | null> {
    await this.ready();
    if (!this.opened) await this.open(false);
    return this.partitions;
  }

  /** S for a write, recorded first on a fresh store. */
  private async writePartitions(): Promise<number> {
    await this.ready();
    // A read's check in flight cannot create: wait for it, then check again, creating.
    while (!this.opened) await this.open(true);
    return this.partitions!;
  }

  /**
   * Reads `<prefix>format` and returns S; refuses other layouts. On a fresh store returns null, or with
   * `create` records S: the opener's log partition count P, else 1 on a single Redis (where S only names
   * keys); a Cluster store needs P, S being its unit of spread over the masters.
   */
  private async checkLayout(create: boolean): Promise<number | null> {
    const formatKey = `${this.prefix}format`;
    const p = this.prefix;
    let found: string | null;
    try {
      // (A server that refuses INFO, e.g. by ACL, is taken as a plain primary.)
      if (!this.cluster && !this.nodeChecked) {
        if (/cluster_enabled:1/.test(await this.redis.info('cluster').catch(() => '')))
          throw new Error(
            `Redis store at ${this.where}: this server is a Redis Cluster node; connect with --redis redis+cluster://host:port[,host:port...] (any masters as seed nodes)`,
          );
        this.nodeChecked = true;
      }
      found = await this.redis.get(formatKey);
      this.checkDatabase();
      if (found === null && !this.cluster && !this.oldChecked) {
        // Layout 1 (refused on Cluster, so never there) kept no format key: look for its keys once.
        let old = (await this.redis.exists(`${p}offsets`)) > 0;
        let cursor = '0';
        while (!old) {
          const [next, keys] = await this.redis.scan(
            cursor,
            'MATCH',
            `${globEscape(p)}t:{*`,
            'COUNT',
            10_000,
          );
          old = keys.length > 0;
          cursor = next;
          if (cursor === '0') break;
        }
        if (old) found = (await this.redis.get(formatKey)) ?? '1';
        else this.oldChecked = true;
      }
      if (found === null) {
        if (!create) return null;
        const partitions = this.logPartitions ?? (this.cluster ? null : 1);
        if (partitions === null)
          throw new Error(
            `Redis store at ${this.where}, prefix '${p}': this Redis Cluster store is new, and its first write must record how many log partitions its stream workers run (its keys spread over the masters by partition), but this writer was not told. ` +
              `Give it --partitions N (the workers' count; a few times the master count spreads well), or start the stream workers first.`,
          );
        // Recorded before the first write; the first of two racing writers wins.
        await this.redis.set(formatKey, `${LAYOUT};partitions=${partitions}`, 'NX');
        found = await this.redis.get(formatKey);
        if (found === null) throw new Error(`${formatKey} vanished right after it was set`);
      }
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store at')) throw cause;
      throw this.wrap('open', cause);
    }
    const m = FORMAT.exec(found);
    if (m) return Number(m[1]);
    const old: Record<string, [string, string[]]> = {
      '1': ['a hash per entity', ['t:{*', 'r:{*', 'offsets', 'format']],
      '2': ['one string per entity, hash-tagged by entity', ['e:{*', 'offsets', 'format']],
    };
    const [what, keys] = old[found] ?? ['unknown: written by another Tessera version?', ['*']];
    throw new Error(
      `Redis store at ${this.where}, prefix '${p}': holds store layout ${found} (${what}), but this version reads layout ${LAYOUT} (one string per entity, hash-tagged by store partition for Redis Cluster). ` +
        `Reload it: delete keys ${keys.map((k) => `'${p}${k}'`).join(', ')} (stream workers then replay their logs from the start) and re-run tessera upload, or point --redis at another database (e.g. redis://host:6379/1).`,
    );
  }

  /** A fenced writer (a stream worker) needs its log partitions within store partitions (layout notes). */
  private checkWriter(partitions: number): void {
    const mine = this.logPartitions;
    if (mine === null || mine % partitions === 0) return;
    const p = this.prefix;
    throw new Error(
      `Redis store at ${this.where}, prefix '${p}': was created for ${partitions} log partition(s) (its keys are spread over ${partitions} store partitions), but this stream worker runs ${mine}. ` +
        `A worker's commit must stay in one store partition, so --partitions must be a multiple of ${partitions}: run with --partitions ${partitions}, ` +
        `or rebuild the store for ${mine}: delete keys '${p}e{*', '${p}o{*', '${p}w{*', '${p}p{*' and '${p}format' (stream workers then replay their logs from the start) and re-run tessera upload.`,
    );
  }

  /**
   * GETs `keys` (key i in store partition `partitions[i]`): one MGET on a single Redis; on a Cluster one
   * per store partition (a slot), sent concurrently.
   */
  private async values(keys: string[], partitions: Int32Array): Promise<(Buffer | null)[]> {
    if (!this.cluster) return this.redis.mgetBuffer(keys);
    const groups = new Map<number, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const list = groups.get(partitions[i]);
      if (list === undefined) groups.set(partitions[i], [i]);
      else list.push(i);
    }
    if (groups.size === 1) return this.redis.mgetBuffer(keys);
    const out = new Array<Buffer | null>(keys.length);
    await Promise.all(
      [...groups.values()].map(async (list) => {
        const got = await this.redis.mgetBuffer(list.map((i) => keys[i]));
        for (let j = 0; j < list.length; j++) out[list[j]] = got[j];
      }),
    );
    return out;
  }

  /**
   * The requested entities' values (all null on a Cluster store nobody wrote to yet), never from a
   * half-applied commit: each MGET also gets the pending markers of the store partitions it reads (one key
   * per partition; on a Cluster one MGET per partition, its marker in its slot). A marker lists the logs of
   * big commits that may still change its partition (`commitPart`); if one does, the reader applies what is
   * left of them (as the writer would: each chunk once, whoever applies it, so a writer that died mid-apply
   * is finished here) and reads that MGET again. An MGET is atomic, and a log is listed from the step that
   * records it to after its last chunk, so values read with no log listed hold every recorded commit of
   * their partition whole or not at all.
   *
   * `of` gets each request's store partition (for `entityKey`). The MGETs are written as RESP here
   * (`MgetBytes`), not passed as key strings: ioredis copies, measures and re-encodes an argument array
   * (~1000 keys for a 100-row fetch) and makes each key a string of its own first.
   */
  private async mget(requests: readonly TileRequest[], of: Int32Array): Promise<MgetValues> {
    const n = requests.length;
    const partitions = await this.storePartitions();
    if (partitions === null) {
      const none = new MgetValues(n);
      none.len.fill(-1);
      return none;
    }
    for (let i = 0; i < n; i++) {
      const key = requests[i].key;
      // A fetch lists a key's group-bys one after another (fetch-group-bys.ts): hash each key once.
      of[i] = i > 0 && key === requests[i - 1].key ? of[i - 1] : partitionOf(key, partitions);
    }
    try {
      if (!this.cluster) {
        if (++this.readEpoch === 0xffffffff) {
          this.seen.fill(0);
          this.readEpoch = 1;
        }
        const epoch = this.readEpoch;
        const seen = this.seen;
        const markers: number[] = [];
        for (let i = 0; i < n; i++) {
          const s = of[i];
          if (seen[s] !== epoch) {
            seen[s] = epoch;
            markers.push(s);
          }
        }
        return await this.readSettled(this.mgetBytes(requests, of, null, markers), markers, n);
      }
      const groups = new Map<number, number[]>();
      for (let i = 0; i < n; i++) {
        const list = groups.get(of[i]);
        if (list === undefined) groups.set(of[i], [i]);
        else list.push(i);
      }
      if (groups.size === 1)
        return await this.readSettled(this.mgetBytes(requests, of, null, [of[0]]), [of[0]], n);
      const out = new MgetValues(n);
      await Promise.all(
        [...groups].map(async ([s, list]) => {
          const got = await this.readSettled(this.mgetBytes(requests, of, list, [s]), [s], list.length);
          for (let j = 0; j < list.length; j++) out.copy(list[j], got, j);
        }),
      );
      return out;
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store')) throw cause;
      throw this.wrap('readTiles', cause, n);
    }
  }

  /** The key of request `r`, in store partition `s`. */
  private entityKey(r: TileRequest, s: number): string {
    return `${this.entityHeads[s]}${r.groupBy}:${r.key}`;
  }

  /**
   * The RESP bytes of `MGET` of the keys of `requests` (those at `list`, or all), then the pending markers
   * of partitions `markers`: what ioredis would send for those key strings, as one text encoded once (no
   * string per key, no argument array).
   */
  private mgetBytes(
    requests: readonly TileRequest[],
    of: Int32Array,
    list: readonly number[] | null,
    markers: readonly number[],
  ): MgetBytes {
    const count = list === null ? requests.length : list.length;
    // One string, encoded once: V8 appends to a rope cheaply and flattens it in one pass, which beats
    // copying each key's few bytes into a buffer from JS.
    let text = `*${count + markers.length + 1}\r\n$4\r\nMGET\r\n`;
    let lastGroupBy = '';
    let lastPartition = -1;
    let head = '';
    let headBytes = 0;
    let lastKey = '';
    let tail = '';
    let keyBytes = 0;
    /** No key or head has a non-ASCII character (its UTF-8 length is its length). */
    let ascii = true;
    for (let j = 0; j < count; j++) {
      const i = list === null ? j : list[j];
      const r = requests[i];
      const s = of[i];
      if (r.groupBy !== lastGroupBy || s !== lastPartition) {
        const known = this.keyHead(s, r.groupBy);
        head = known.text;
        headBytes = known.bytes;
        ascii &&= headBytes === head.length;
        lastGroupBy = r.groupBy;
        lastPartition = s;
      }
      // A fetch lists a key's group-bys one after another: each key is measured once per run.
      if (j === 0 || r.key !== lastKey) {
        keyBytes = Buffer.byteLength(r.key);
        ascii &&= keyBytes === r.key.length;
        tail = `${r.key}\r\n`;
        lastKey = r.key;
      }
      text += `$${headBytes + keyBytes}\r\n${head}${tail}`;
    }
    for (const s of markers) {
      text += `$${this.pendingKeyLengths[s]}\r\n${this.pendingKeys[s]}\r\n`;
      ascii &&= this.pendingKeyLengths[s] === this.pendingKeys[s].length;
    }
    // ASCII text encodes the same as latin1, which copies the string's bytes (~1/3 less CPU than UTF-8's).
    const out = Buffer.from(text, ascii ? 'latin1' : 'utf8');
    return { bytes: out, slot: this.cluster ? clusterSlot(this.tags[markers[0]]) : 0 };
  }

  /** `<entity head of partition s><groupBy>:` and its UTF-8 length, cached (a process serves few group-bys). */
  private keyHead(s: number, groupBy: string): { readonly text: string; readonly bytes: number } {
    const cache = (this.keyHeads[s] ??= new Map());
    let head = cache.get(groupBy);
    if (head === undefined) {
      const text = `${this.entityHeads[s]}${groupBy}:`;
      head = { text, bytes: Buffer.byteLength(text) };
      if (cache.size < GROUP_BY_CACHE_LIMIT) cache.set(groupBy, head);
    }
    return head;
  }

  /**
   * Sends `mget` (its first `n` keys entities, then the pending markers of partitions `markers`, all in one
   * slot on a Cluster) until no marker lists a log, finishing the listed logs in between; returns the
   * entities' values. One command timeout per `KEYS_PER_TIMEOUT` entities: a fetch's read must be one
   * command (a snapshot), so a big one may need longer than a small one to cross the link.
   */
  private async readSettled(mget: MgetBytes, markers: readonly number[], n: number): Promise<MgetValues> {
    // (Capped at setTimeout's limit: a longer delay fires at once.)
    const timeout =
      n > KEYS_PER_TIMEOUT
        ? Math.min(2 ** 31 - 1, this.timeoutMs * Math.ceil(n / KEYS_PER_TIMEOUT))
        : this.timeoutMs;
    const count = n + markers.length;
    for (let round = 0; ; round++) {
      const got = await this.send(mget, count, timeout);
      let finishing: Promise<void>[] | null = null;
      for (let j = n; j < count; j++) {
        const v = got.value(j);
        if (v === null) continue;
        const marker = this.pendingKeys[markers[j - n]];
        finishing ??= [];
        for (const log of pendingLogs(v, marker)) finishing.push(this.finishLog(log, [marker]));
      }
      if (finishing === null) {
        got.count = n;
        return got;
      }
      const names = () => markers.map((s) => this.pendingKeys[s]).join(', ');
      if (round === SETTLE_ROUNDS)
        throw new Error(
          `Redis store at ${this.where}: a read found big commits pending in ${names()} after finishing them ${SETTLE_ROUNDS} times; check that these keys list only logs (${this.prefix}w{...}) and that no writer is stuck committing`,
        );
      try {
        await Promise.all(finishing);
      } catch (cause) {
        if (/^(NOPERM|READONLY)/.test((cause as Error).message))
          throw new Error(
            `Redis store at ${this.where}: a read found a big commit pending in ${names()} and must apply the rest of it (readers finish a commit whose writer may have died, so they never see it half-applied), but Redis refused: ${(cause as Error).message}. Serving nodes need write access to the store's keys (and EVALSHA/EVAL), on the primary`,
            { cause },
          );
        throw cause;
      }
    }
  }

  /**
   * Sends `mget` (`count` keys) and returns its values, failing with "Command timed out" after `timeoutMs`.
   * On the store's own read connection to that server when it is ready (`MgetConnection`: the reply is
   * read in place in its socket chunks, not a Buffer per value), else through ioredis. An error reply
   * there (MOVED or ASK while a Cluster's slots move, LOADING, ...) sends it again through ioredis, with
   * what is left of the time: ioredis follows the redirection and fails as before. So does a link that
   * drops before the reply (`MgetLinkError`): the read is sent again at once, not failed at its timeout.
   * (A read is safe to send twice.)
   */
  private async send(mget: MgetBytes, count: number, timeoutMs: number): Promise<MgetValues> {
    const fast = this.reads.connection(mget.slot);
    let left = timeoutMs;
    if (fast !== null) {
      const started = performance.now();
      try {
        return await fast.mget(mget.bytes, count, timeoutMs);
      } catch (e) {
        if (!(e instanceof MgetReplyError || e instanceof MgetLinkError)) throw e;
      }
      left = Math.ceil(timeoutMs - (performance.now() - started));
      // A link error handled after the deadline (a busy loop) is a timeout: resending it is wasted load.
      if (left <= 0) throw new Error('Command timed out');
    }
    const command = new PackedMget(mget);
    // Set before sending: ioredis then keeps this timer rather than starting one of the default length.
    if (left !== this.timeoutMs) command.setTimeout(left);
    return MgetValues.ofBuffers((await this.redis.sendCommand(command)) as (Buffer | null)[]);
  }

  async readTiles(requests: readonly TileRequest[]): Promise<StoredTile[][]> {
    if (requests.length === 0) return [];
    const of = new Int32Array(requests.length);
    const values = await this.mget(requests, of);
    const out: StoredTile[][] = new Array(requests.length);
    for (let i = 0; i < values.count; i++) {
      const v = values.value(i);
      out[i] = v === null ? [] : unpackTiles(this.packedPart(v, requests[i], of[i]));
    }
    return out;
  }

  async readEntities(
    requests: readonly TileRequest[],
    visit: (index: number, tiles: TileColumns) => void,
  ): Promise<void> {
    if (requests.length === 0) return;
    const of = new Int32Array(requests.length);
    const values = await this.mget(requests, of);
    // Visits run synchronously after the reply, so concurrent reads never share `columns` at once.
    const columns = this.columns;
    const { sources, at, len } = values;
    try {
      for (let i = 0; i < values.count; i++) {
        const size = len[i];
        if (size < 0) {
          visit(i, columns.fromPacked(undefined));
          continue;
        }
        const source = sources[i];
        const from = at[i];
        // The packed part in place, after `u32 T` (no view per value).
        if (validAt(source, from, size)) visit(i, columns.fromPacked(source, from + 4, from + size));
        else packedPart(values.value(i)!, this.entityKey(requests[i], of[i])); // throws, naming the key
      }
    } finally {
      columns.release(); // not to keep the reply's socket chunks alive until the next read
    }
  }

  /** `packedPart` of request `r`'s value (in partition `s`), naming its key only when it is corrupt. */
  private packedPart(value: Buffer, r: TileRequest, s: number): Buffer {
    return validValue(value) ? value.subarray(4) : packedPart(value, this.entityKey(r, s));
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    const partitions = await this.writePartitions();
    const entities = new Map<string, EntityPart>();
    const entity = (groupBy: string, key: string) => {
      checkGroupBy(groupBy);
      const s = partitionOf(key, partitions);
      const k = `${this.entityHeads[s]}${groupBy}:${key}`;
      let e = entities.get(k);
      if (e === undefined) entities.set(k, (e = { key: k, partition: s, writes: new Map(), runs: [] }));
      return e;
    };
    for (const t of batch.tiles) entity(t.groupBy, t.key).writes.set(`${t.level}:${t.start}`, t);
    const runs = batch.runs ?? [];
    runs.forEach((w, i) => entity(w.groupBy, w.key).runs.push(i));
    const expect = Object.entries(batch.expect ?? {});
    const offsets = Object.entries(batch.offsets ?? {});
    if (expect.length > 0) this.checkWriter(partitions);

    // One script part per slot on a Cluster (a store partition), one in all on a single Redis.
    const parts = new Map<number, ScriptPart>();
    const part = (s: number) => {
      const g = this.cluster ? s : 0;
      let p = parts.get(g);
      if (p === undefined) parts.set(g, (p = new ScriptPart()));
      return p;
    };
    for (const e of entities.values()) part(e.partition).entities.push(e);
    for (const [name, v] of expect) {
      const s = offsetPartition(name, partitions);
      part(s).addExpect(this.offsetKeys[s], name, v);
    }
    for (const [name, v] of offsets) {
      const s = offsetPartition(name, partitions);
      part(s).addOffset(this.offsetKeys[s], name, v);
    }
    if (parts.size === 0) return { runBytes: [] };
    const before = new Map<EntityPart, number>();
    // A fenced commit's writer is named by the offset it expects: its log of a staged commit (`commitPart`).
    const owner = expect.length > 0 ? expect.map(([n]) => n).sort()[0] : null;
    if (parts.size === 1) await this.commitPart([...parts.values()][0], owner, runs, before);
    else {
      if (expect.length > 0)
        throw new Error(
          `Redis store at ${this.where}: a fenced commit (expecting ${expect.map(([n]) => `'${n}'`).join(', ')}) spans store partitions ${[...parts.keys()].join(', ')} of ${partitions}; ` +
            `on Redis Cluster a commit is atomic only within one partition. A stream worker's entities and offsets share one when its --partitions is a multiple of the store's (${partitions}).`,
        );
      // Unfenced (bulk upload): each partition's entities, then the offsets, so a cutoff is recorded only
      // after every tile it covers.
      const list = [...parts.values()];
      await Promise.all(
        list.map((p) =>
          p.entities.length > 0 ? this.commitPart(entitiesOnly(p), null, runs, before) : null,
        ),
      );
      await Promise.all(
        list.map((p) => (p.offsets.length > 0 ? this.commitPart(offsetsOnly(p), null, runs, before) : null)),
      );
    }
    // Run writes of one entity apply in order (two group-bys sharing a store id may both write it).
    const runBytes: number[] = new Array(runs.length);
    for (const e of entities.values()) {
      let length = before.get(e)!;
      for (const i of e.runs)
        runBytes[i] = length = runs[i].bytes === null ? 0 : length < 0 ? -1 : length + runs[i].bytes!.length;
    }
    return { runBytes };
  }

  /** The log key of a staged commit of the writer expecting offset `name` (in that offset's partition). */
  private logKey(name: string): string {
    const tag = this.tags[offsetPartition(name, this.partitions!)];
    return `${this.prefix}w{${tag}}${name}`;
  }

  /**
   * Applies one script part; records each entity's run length before it in `before` (-1: unknown).
   *
   * A part within one chunk (`chunksOf`) is one `COMMIT` script. A bigger one, so that no script blocks
   * Redis for long, is a redo log (a fenced commit's, of `owner`, a stream worker, keyed by its offset, so
   * exactly-once holds across its crashes; an unfenced one's, a bulk upload's, under a key of its own):
   * 1. stage: the chunks go to a staging hash (created with its expiry, in case the writer dies before
   *    step 2);
   * 2. record: one short `COMMIT` checks fencing, makes the staging hash the log, lists it in the
   *    pending markers of the partitions it changes and sets the offsets, atomically: the commit happened;
   * 3. apply: one `APPLY` script per chunk, each applying its chunk and moving the log's cursor atomically,
   *    so a chunk is applied exactly once whoever applies it. The last one deletes the log; `SETTLE` then
   *    unlists it.
   * A reader finding a log listed finishes it before it uses what it read (`settledValues`), so no fetch
   * sees the commit half-applied, and one whose writer died during step 3 is finished by the next fetch of
   * its partition. The next `readOffsets` naming the owner's offset (a worker opening or checking a failed
   * commit) finishes it too, and a commit of the owner finding its log refuses (it was computed without
   * those changes): see `finishLogs`. An upload killed after step 2 leaves a log that the next read of those
   * partitions finishes (a re-run of the upload reads its entities before it replaces them), one killed
   * before it a staging hash that expires: either way readers see the whole commit or none of it.
   */
  private async commitPart(
    p: ScriptPart,
    owner: string | null,
    runs: readonly RunWrite[],
    before: Map<EntityPart, number>,
  ): Promise<void> {
    const chunks = chunksOf(p.entities, runs, this.chunkEntities);
    const fenced = owner === null ? null : this.logKey(owner);
    const record = (result: number[], chunk: Chunk) =>
      chunk.entities.forEach((e, i) => before.set(e, result.length === 0 ? -1 : result[i]));
    if (chunks.length <= 1) {
      const result = await this.runScript(p, fenced ?? chunks[0]?.entities[0].key ?? null, [
        'i',
        chunks[0]?.bytes ?? '',
      ]);
      if (chunks.length === 1) record(result, chunks[0]);
      return;
    }
    const id = randomBytes(8).toString('hex');
    // An unfenced commit (bulk upload) has no owner: its log gets a key of its own, in its part's slot.
    const log = fenced ?? `${this.prefix}w{${this.tags[p.entities[0].partition]}}#${id}`;
    // The store partitions the commit changes: on a Cluster one (the log's), on a single Redis maybe several.
    const marked = [...new Set(p.entities.map((e) => e.partition))].sort((a, b) => a - b);
    const markers = marked.map((s) => this.pendingKeys[s]);
    const stage = log.replace(`${this.prefix}w{`, `${this.prefix}x{`) + `:${id}`;
    // The staging hash is created together with its expiry (one transaction), then filled by a pipeline: a
    // writer killed while Redis had received only part of the chunks must not leave a hash that never
    // expires (a pipeline of HSETs and then PEXPIRE did, when cut after an HSET).
    // The rest go in waves of `STAGE_WAVE` chunks: each HSET must get its reply within the command timeout,
    // behind the bytes of the ones before it (a big commit over a slow link).
    const waves: ReturnType<RedisClient['pipeline']>[] = [
      this.redis.multi().hset(stage, '1', chunks[0].bytes).pexpire(stage, STAGE_TTL_MS),
    ];
    for (let i = 1; i < chunks.length; i++) {
      if ((i - 1) % STAGE_WAVE === 0) waves.push(this.redis.pipeline());
      waves[waves.length - 1].hset(stage, String(i + 1), chunks[i].bytes);
    }
    for (const pipe of waves) {
      let staged: [Error | null, unknown][] | null;
      try {
        staged = await pipe.exec();
      } catch (cause) {
        throw this.wrap('commit (staging)', cause);
      }
      if (staged === null) throw this.wrap('commit (staging)', new Error('transaction aborted'));
      for (const [err] of staged) if (err) throw this.wrap('commit (staging)', err);
    }
    try {
      await this.runScript(p, log, ['l', String(chunks.length), id, marked.join(',')], [stage, ...markers]);
    } catch (err) {
      await this.redis.del(stage).catch(() => {});
      throw err;
    }
    for (let i = 0; i < chunks.length; i++) {
      let result: number[];
      try {
        result = await this.redis.tesseraApply(1, log, id, String(i + 1));
      } catch (cause) {
        throw this.wrap(
          `commit (recorded, then applying chunk ${i + 1} of ${chunks.length} of log ${log}; ${owner === null ? 'the next read of its entities' : `the next readOffsets of '${owner}'`} applies the rest)`,
          cause,
        );
      }
      record(result, chunks[i]);
    }
    // Unlist the log. If this fails, it stays listed until a reader of those partitions unlists it.
    await this.redis.tesseraSettle(1 + markers.length, [log, ...markers]).catch(() => {});
  }

  /**
   * Applies what is left of the logs of staged commits (`commitPart`) of writers expecting any of `names`,
   * e.g. after a worker died while applying one: a writer reads its offsets before reading its tiles.
   */
  private async finishLogs(names: readonly string[]): Promise<void> {
    await Promise.all([...new Set(names.map((n) => this.logKey(n)))].map((log) => this.finishLog(log, [])));
  }

  /** Finishes every log listed in the pending markers of store partitions `partitions`. */
  private async finishListed(partitions: ReadonlySet<number>): Promise<void> {
    await Promise.all(
      [...partitions].map(async (s) => {
        const key = this.pendingKeys[s];
        const value = await this.redis.getBuffer(key);
        if (value !== null)
          await Promise.all(pendingLogs(value, key).map((log) => this.finishLog(log, [key])));
      }),
    );
  }

  /**
   * Applies what is left of the log `log` (`commitPart`), then unlists it from the pending markers it is
   * listed in (those it names, and `markers`, where a reader found it).
   */
  private async finishLog(log: string, markers: readonly string[]): Promise<void> {
    const unlist = new Set(markers);
    for (let strays = 0; ; ) {
      const [id, next, marked] = await this.redis.hmget(log, 'id', 'next', 'm');
      if (id !== null && next !== null) {
        for (const s of marked?.split(',') ?? []) {
          const key = this.pendingKeys[Number(s)];
          if (key !== undefined) unlist.add(key);
        }
        await this.redis.tesseraApply(1, log, id, next);
        strays = 0;
        continue;
      }
      if (unlist.size === 0 || (await this.redis.tesseraSettle(1 + unlist.size, [log, ...unlist])) === 1)
        return;
      // The log is there again: a new commit was recorded since the HMGET (finish it too), or it is no log.
      if (++strays === 3)
        throw new Error(
          `Redis store at ${this.where}: ${log} is listed as a pending commit log but holds no log (no id and cursor); delete it`,
        );
    }
  }

  /**
   * Runs `COMMIT` for one part with `mode` (see there): `log` is its KEYS[nh + 1], `more` (mode 'l') the
   * staging key and the pending markers.
   */
  private async runScript(
    p: ScriptPart,
    log: string | null,
    mode: (string | Buffer)[],
    more: readonly string[] = [],
  ): Promise<number[]> {
    const keys = [...p.hashes];
    if (log !== null) keys.push(log);
    keys.push(...more);
    const args: (string | Buffer)[] = [
      String(p.hashes.length),
      String(p.expect.length / 3),
      String(p.offsets.length / 3),
      ...p.expect,
      ...p.offsets,
      ...mode,
    ];
    try {
      return await this.redis.tesseraCommit(keys.length, keys, args);
    } catch (cause) {
      const message = (cause as Error).message;
      if (message.startsWith('fenced:')) throw new Error(message, { cause });
      if (message.startsWith('unfinished:')) {
        const owner = log!.slice(log!.indexOf('}') + 1);
        await this.finishLogs([owner]);
        throw new Error(
          `Redis store at ${this.where}: an earlier commit of the writer of '${owner}' was recorded but not fully applied (its writer failed while applying it); it is applied now, but this commit was computed without it: redo it from the stored offset`,
          { cause },
        );
      }
      throw this.wrap('commit', cause);
    }
  }

  async readOffsets(names?: readonly string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const partitions = await this.storePartitions();
    if (partitions === null || names?.length === 0) return out;
    try {
      if (!names) {
        const all = await Promise.all(this.offsetKeys.map((k) => this.redis.hgetall(k)));
        return Object.assign(out, ...all) as Record<string, string>;
      }
      // A writer reads its offsets before its tiles: those must include its last recorded commit, and any
      // other log still listed in its partitions (an upload killed after recording a commit): applied
      // later, that log would replay the upload's run deletions over the runs the worker appends blindly.
      await this.finishLogs(names);
      await this.finishListed(new Set(names.map((n) => offsetPartition(n, partitions))));
      const byPartition = new Map<number, string[]>();
      for (const n of names) {
        const s = offsetPartition(n, partitions);
        byPartition.set(s, [...(byPartition.get(s) ?? []), n]);
      }
      await Promise.all(
        [...byPartition].map(async ([s, list]) => {
          const values = await this.redis.hmget(this.offsetKeys[s], ...list);
          list.forEach((n, i) => {
            const v = values[i];
            if (v !== null) out[n] = v;
          });
        }),
      );
      return out;
    } catch (cause) {
      throw this.wrap('readOffsets', cause);
    }
  }

  async addCounters(deltas: Readonly<Record<string, number>>): Promise<void> {
    const entries = Object.entries(deltas).filter(([, d]) => d !== 0);
    if (entries.length === 0) return;
    checkCounterDeltas(entries);
    await this.ready();
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
    await this.ready();
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
    const head = `${this.prefix}e{`;
    try {
      if ((await this.storePartitions()) === null) return { entities, tiles, bytes, byGroupBy };
      // SCAN is per node: on a Cluster, every master's.
      const nodes = 'nodes' in this.redis ? this.redis.nodes('master') : [this.redis];
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${globEscape(head)}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length === 0) continue;
          const of = new Int32Array(keys.length);
          keys.forEach((k, i) => {
            const s = this.tagIndex.get(k.slice(head.length, k.indexOf('}', head.length)));
            if (s === undefined)
              throw new Error(
                `Redis store at ${this.where}: key ${k} has no tag of this store's ${this.partitions} partitions; it is not Tessera layout ${LAYOUT}: delete it`,
              );
            of[i] = s;
          });
          const values = await this.values(keys, of);
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
            const name = k.slice(k.indexOf('}', head.length) + 1);
            const g = (byGroupBy[name.slice(0, name.indexOf(':'))] ??= { entities: 0, tiles: 0, bytes: 0 });
            entities++;
            g.entities++;
            tiles += n;
            g.tiles += n;
            bytes += b;
            g.bytes += b;
          });
        } while (cursor !== '0');
      }
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store')) throw cause;
      throw this.wrap('stats', cause);
    }
    return { entities, tiles, bytes, byGroupBy };
  }

  async deleteGroupBys(
    ids: readonly string[],
    onProgress?: (deleted: number) => void,
  ): Promise<Record<string, number>> {
    const out: Record<string, number> = Object.fromEntries(ids.map((id) => [id, 0]));
    const wanted = new Set(ids);
    const head = `${this.prefix}e{`;
    // One id: only its keys come back (the tag's '*' may also match a '}' inside another key: checked below).
    const match = ids.length === 1 ? `${globEscape(head)}*}${globEscape(ids[0]!)}:*` : `${globEscape(head)}*`;
    let deleted = 0;
    try {
      const partitions = await this.storePartitions();
      if (partitions === null || ids.length === 0) return out;
      // A staged commit not yet fully applied (`commitPart`) could write the ids' entities back later.
      await this.finishListed(new Set(this.pendingKeys.keys()));
      // SCAN is per node: on a Cluster, every master's (as `stats`).
      const nodes = 'nodes' in this.redis ? this.redis.nodes('master') : [this.redis];
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
          cursor = next;
          // UNLINK per hash tag on a Cluster (a command's keys must share a slot), all at once otherwise.
          const byTag = new Map<string, string[]>();
          const ofIds: string[] = [];
          for (const k of keys) {
            const end = k.indexOf('}', head.length);
            const name = k.slice(end + 1);
            const id = name.slice(0, name.indexOf(':'));
            if (!wanted.has(id)) continue;
            ofIds.push(id);
            const tag = this.cluster ? k.slice(head.length, end) : '';
            const list = byTag.get(tag);
            if (list === undefined) byTag.set(tag, [k]);
            else list.push(k);
          }
          if (ofIds.length === 0) continue;
          await Promise.all([...byTag.values()].map((list) => this.redis.unlink(...list)));
          for (const id of ofIds) out[id]!++;
          deleted += ofIds.length;
          onProgress?.(deleted);
        } while (cursor !== '0');
      }
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store')) throw cause;
      throw this.wrap('deleteGroupBys', cause);
    }
    return out;
  }

  async deleteOffsets(names: readonly string[]): Promise<void> {
    try {
      const partitions = await this.storePartitions();
      if (partitions === null || names.length === 0) return;
      // As `readOffsets`: a staged commit of their writer, applied later, would write them back.
      await this.finishLogs(names);
      await this.finishListed(new Set(names.map((n) => offsetPartition(n, partitions))));
      const byPartition = new Map<number, string[]>();
      for (const n of names) {
        const s = offsetPartition(n, partitions);
        byPartition.set(s, [...(byPartition.get(s) ?? []), n]);
      }
      await Promise.all([...byPartition].map(([s, list]) => this.redis.hdel(this.offsetKeys[s], ...list)));
    } catch (cause) {
      if ((cause as Error).message.startsWith('Redis store')) throw cause;
      throw this.wrap('deleteOffsets', cause);
    }
  }

  async loadEntities(entities: readonly EntityTiles[]): Promise<void> {
    if (entities.length === 0) return;
    const partitions = await this.writePartitions();
    // Plain pipelines of MSETs (one per slot on a Cluster, one in all on a single Redis), not MULTI: a bulk
    // load is not atomic, and MSET of many entities per command keeps per-command overhead out of the way.
    // A pipeline is sent in waves of `LOAD_WAVE` commands: every command of a wave waits for the ones before
    // it, and must still get its reply within the command timeout.
    type Group = {
      pipe: ReturnType<RedisClient['pipeline']>;
      commands: number;
      sets: (string | Buffer)[];
      dels: string[];
    };
    const groups = new Map<number, Group>();
    const send = async (g: Group) => {
      const pipe = g.pipe;
      g.pipe = this.redis.pipeline();
      g.commands = 0;
      let res: [Error | null, unknown][] | null;
      try {
        res = await pipe.exec();
      } catch (cause) {
        throw this.wrap('loadEntities', cause);
      }
      for (const [err] of res ?? []) if (err) throw this.wrap('loadEntities', err);
    };
    const values = new Map<readonly StoredTile[], Buffer | null>();
    for (const e of entities) {
      checkGroupBy(e.groupBy);
      let value = values.get(e.tiles);
      if (value === undefined) {
        value = redisEntityBytes([...e.tiles].sort(byLevelStart));
        values.set(e.tiles, value);
      }
      const s = partitionOf(e.key, partitions);
      const k = `${this.entityHeads[s]}${e.groupBy}:${e.key}`;
      const id = this.cluster ? s : 0;
      let g = groups.get(id);
      if (g === undefined)
        groups.set(id, (g = { pipe: this.redis.pipeline(), commands: 0, sets: [], dels: [] }));
      if (value === null) g.dels.push(k);
      else g.sets.push(k, value);
      if (g.sets.length >= 2000) {
        g.pipe.mset(g.sets);
        g.sets = [];
        g.commands++;
      }
      if (g.dels.length >= 1000) {
        g.pipe.del(g.dels);
        g.dels = [];
        g.commands++;
      }
      if (g.commands >= LOAD_WAVE) await send(g);
    }
    await Promise.all(
      [...groups.values()].map(async (g) => {
        if (g.sets.length > 0) g.pipe.mset(g.sets);
        if (g.dels.length > 0) g.pipe.del(g.dels);
        await send(g);
      }),
    );
  }

  async close(): Promise<void> {
    this.reads.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function entitiesOnly(p: ScriptPart): ScriptPart {
  const out = new ScriptPart();
  out.entities.push(...p.entities);
  return out;
}

function offsetsOnly(p: ScriptPart): ScriptPart {
  const out = new ScriptPart();
  out.hashes.push(...p.hashes);
  out.offsets.push(...p.offsets);
  return out;
}

/** Escapes SCAN MATCH glob characters in a literal key part. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
