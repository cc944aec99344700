import { floatJson, outputJson } from '../aggregate/ops/float-json.ts';
import type { FeatureRow, JoinRows } from './assemble.ts';

/**
 * Response JSON for feature rows, built by hand: byte for byte what `JSON.stringify` gives (but for
 * non-finite numbers, see below), at a fraction of its cost for wide rows, because what repeats is
 * serialized once:
 * - status maps are frozen and shared between rows (assemble.ts), so each one's JSON is cached;
 * - feature names repeat in every row, so their quoted form (`"name":`) is cached;
 * - numbers, the bulk of the values, are written with `String` (what `JSON.stringify` does for finite
 *   numbers); non-finite ones as `floatJson` writes them (±Infinity as ±1e999, read back as ±Infinity;
 *   NaN as null), where `JSON.stringify` would make every one null;
 * - rows of a join without derivations are written straight from the fetched values (`JoinRows.value`),
 *   without a features object per row.
 */

const statusJson = new WeakMap<object, string>();
/** Quoted names with their colon; bounded so arbitrary request data cannot grow it without limit. */
const keyJson = new Map<string, string>();
const KEY_CACHE_LIMIT = 100_000;

function quotedKey(name: string): string {
  let q = keyJson.get(name);
  if (q === undefined) {
    q = JSON.stringify(name) + ':';
    if (keyJson.size < KEY_CACHE_LIMIT) keyJson.set(name, q);
  }
  return q;
}

function valueJson(v: unknown): string {
  if (typeof v === 'number') return floatJson(v);
  if (v === null) return 'null';
  // undefined is skipped by the caller (JSON.stringify omits such properties).
  return outputJson(v);
}

/** `JSON.stringify(row.features)` (own enumerable properties, insertion order). */
function featuresJson(features: Record<string, unknown>): string {
  let out = '{';
  let first = true;
  for (const name in features) {
    const v = features[name];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    out += (first ? '' : ',') + quotedKey(name) + valueJson(v);
    first = false;
  }
  return out + '}';
}

function statusOf(status: Readonly<Record<string, string>>): string {
  // Only frozen maps are shared and immutable, so only they may be cached.
  if (!Object.isFrozen(status)) return JSON.stringify(status);
  let s = statusJson.get(status);
  if (s === undefined) statusJson.set(status, (s = JSON.stringify(status)));
  return s;
}

/**
 * `JSON.stringify({ features, status })` of one row.
 *
 * @example
 * featureRowJson({ features: { a_count_1h: 3 }, status: Object.freeze({ a_count_1h: 'ok' }) });
 * // '{"features":{"a_count_1h":3},"status":{"a_count_1h":"ok"}}'
 */
export function featureRowJson(row: FeatureRow): string {
  return '{"features":' + featuresJson(row.features) + ',"status":' + statusOf(row.status) + '}';
}

/**
 * `JSON.stringify(rows)` for an array of feature rows.
 *
 * @example
 * `{"join":"fraud_model","at":${at},"rows":${featureRowsJson(rows)}}`
 */
export function featureRowsJson(rows: readonly FeatureRow[]): string {
  let out = '[';
  for (let i = 0; i < rows.length; i++) out += (i === 0 ? '' : ',') + featureRowJson(rows[i]!);
  return out + ']';
}

/** Per join: each aggregate name quoted with its colon, then the same with a leading comma. */
interface DirectKeys {
  readonly first: readonly string[];
  readonly next: readonly string[];
}

/** Per join: its `DirectKeys`, or null when rows must go through objects. */
const joinKeys = new WeakMap<JoinRows['join'], DirectKeys | null>();

/**
 * The quoted names for writing a join's rows straight from values, or null when that would differ from
 * `JSON.stringify` of the features object: a repeated name (one property) or an array-index name (which
 * objects enumerate first) can only come from hand-built definitions, and derivations need the object.
 */
function directKeys(rows: JoinRows): DirectKeys | null {
  let keys = joinKeys.get(rows.join);
  if (keys === undefined) {
    const names = rows.names;
    const plain =
      rows.join.derivations.length === 0 &&
      new Set(names).size === names.length &&
      !names.some((n) => /^(0|[1-9][0-9]*)$/.test(n) && Number(n) < 2 ** 32 - 1);
    const first = names.map((n) => JSON.stringify(n) + ':');
    keys = plain ? { first, next: first.map((k) => ',' + k) } : null;
    joinKeys.set(rows.join, keys);
  }
  return keys;
}

/**
 * `JSON.stringify(rows.row(r))`, written from the fetched values when the join allows it (`directKeys`).
 *
 * @example
 * joinRowJson(joinRows, 0); // '{"features":{"a_count_1h":3},"status":{"a_count_1h":"ok"}}'
 */
export function joinRowJson(rows: JoinRows, r: number): string {
  const keys = directKeys(rows);
  if (keys === null) return featureRowJson(rows.row(r));
  const status = rows.select(r);
  return featuresOf(rows, keys) + '},"status":' + statusOf(status) + '}';
}

/** `{"features":{…` of the selected row (without the closing brace), for a join with `directKeys`. */
function featuresOf(rows: JoinRows, keys: DirectKeys): string {
  const { first, next } = keys;
  let out = '{"features":{';
  let written = false;
  for (let i = 0; i < first.length; i++) {
    const v = rows.value(i);
    if (typeof v === 'number') out += (written ? next[i]! : first[i]!) + floatJson(v);
    else if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    else out += (written ? next[i]! : first[i]!) + valueJson(v);
    written = true;
  }
  return out;
}

/** UTF-8 of `},"status":<status JSON>}` (a row's end), by frozen status map (`statusOf`). */
const statusTails = new WeakMap<object, Buffer>();

function statusTail(status: Readonly<Record<string, string>>): Buffer {
  let tail = statusTails.get(status);
  if (tail === undefined) {
    tail = Buffer.from('},"status":' + statusOf(status) + '}', 'utf8');
    if (Object.isFrozen(status)) statusTails.set(status, tail);
  }
  return tail;
}

/** `JSON.stringify(rows.toRows())`: the rows of one join as a JSON array. */
export function joinRowsJson(rows: JoinRows): string {
  let out = '[';
  for (let r = 0; r < rows.length; r++) out += (r === 0 ? '' : ',') + joinRowJson(rows, r);
  return out + ']';
}

/** Writes a response body as UTF-8 bytes (`jsonBytes`). */
export interface JsonBytesWriter {
  /** Appends JSON text. */
  put(text: string): JsonBytesWriter;
  /** Appends `joinRowsJson(rows)`, one row at a time. */
  rows(rows: JoinRows): JsonBytesWriter;
}

/** Reused between responses; a response larger than SCRATCH_KEEP gets its own and leaves it to the GC. */
let scratch = Buffer.allocUnsafe(64 * 1024);
const SCRATCH_KEEP = 8 * 1024 * 1024;

/**
 * A response body as one UTF-8 buffer, written piece by piece by `write` (synchronously) into a scratch
 * buffer and copied out once. Many rows joined with `+=` make a rope of thousands of small strings (~220 KB
 * for 100 rows of 50 features) that `Buffer.from` must first flatten, which costs about as much as building
 * it; each row written on its own flattens a small string instead. A row's status map (about half its
 * bytes, and shared by most rows) is copied from cached bytes, not encoded again per row.
 *
 * @example
 * const body = jsonBytes((out) => out.put('{"rows":').rows(joinRows).put('}'));
 * // the bytes of `{"rows":${joinRowsJson(joinRows)}}`
 */
export function jsonBytes(write: (out: JsonBytesWriter) => void): Buffer {
  let buf = scratch;
  let length = 0;
  /** Makes room for `n` more bytes. */
  const room = (n: number) => {
    if (length + n > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, length + n));
      buf.copy(bigger, 0, 0, length);
      buf = bigger;
    }
  };
  const out: JsonBytesWriter = {
    put(text) {
      // A UTF-16 code unit is at most 3 UTF-8 bytes.
      room(text.length * 3);
      length += buf.write(text, length, 'utf8');
      return out;
    },
    rows(rows) {
      const keys = directKeys(rows);
      out.put('[');
      for (let r = 0; r < rows.length; r++) {
        const comma = r === 0 ? '' : ',';
        if (keys === null) {
          out.put(comma + joinRowJson(rows, r));
          continue;
        }
        const tail = statusTail(rows.select(r));
        out.put(comma + featuresOf(rows, keys));
        room(tail.length);
        // `set`, not `Buffer#copy`: that one validates its arguments and makes a view of the source per call.
        buf.set(tail, length);
        length += tail.length;
      }
      return out.put(']');
    },
  };
  write(out);
  if (buf.length <= SCRATCH_KEEP) scratch = buf;
  const body = Buffer.allocUnsafe(length);
  buf.copy(body, 0, 0, length);
  return body;
}
