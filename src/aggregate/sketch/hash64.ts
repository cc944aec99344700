import type { Scalar } from '../../define/types.ts';

/**
 * The 64-bit value hash behind approx_unique_count. It is part of the stored sketch format: changing it
 * changes every estimate, so it is fixed and documented here.
 *
 * Definition: the input bytes are the UTF-8 encoding of the value's canonical form,
 *   - number  → 'n' followed by `String(v)` (JS shortest round-trip form; an int 5 read by DuckDB and a 5
 *               parsed from JSON are the same double, so they hash alike; -0 hashes as '0'),
 *   - string  → 's' followed by the string,
 *   - boolean → 'b' followed by 'true' / 'false'.
 * The 64-bit hash is `hi:lo` where `hi = MurmurHash3_x86_32(bytes, seed 0)` and
 * `lo = MurmurHash3_x86_32(bytes, seed 0x9e3779b9)`, computed in one pass without allocating.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEED_HI = 0;
const SEED_LO = 0x9e3779b9;

/** Output of the last `hashScalar64` call (avoids allocating a pair per value on the hot path). */
export const hashOut = { hi: 0, lo: 0 };

let h1 = 0;
let h2 = 0;
let block = 0;
let blockBytes = 0;
let length = 0;

/** A block's key scrambled before it is mixed into each half. */
function scramble(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** One half's state after mixing in a scrambled block. */
function mixHalf(h: number, k: number): number {
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function mixBlock(block: number): void {
  const k = scramble(block);
  h1 = mixHalf(h1, k);
  h2 = mixHalf(h2, k);
}

function pushByte(b: number): void {
  block |= b << (8 * blockBytes);
  length++;
  if (++blockBytes === 4) {
    mixBlock(block);
    block = 0;
    blockBytes = 0;
  }
}

function pushString(s: string): void {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) pushByte(c);
    else if (c < 0x800) {
      pushByte(0xc0 | (c >> 6));
      pushByte(0x80 | (c & 63));
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          pushByte(0xf0 | (c >> 18));
          pushByte(0x80 | ((c >> 12) & 63));
          pushByte(0x80 | ((c >> 6) & 63));
          pushByte(0x80 | (c & 63));
          continue;
        }
      }
      // Lone surrogates encode as U+FFFD, as TextEncoder does.
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      pushByte(0xe0 | (c >> 12));
      pushByte(0x80 | ((c >> 6) & 63));
      pushByte(0x80 | (c & 63));
    }
  }
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function finish(): void {
  if (blockBytes > 0) {
    const k = scramble(block);
    h1 ^= k;
    h2 ^= k;
  }
  hashOut.hi = fmix(h1 ^ length);
  hashOut.lo = fmix(h2 ^ length);
}

function start(): void {
  h1 = SEED_HI;
  h2 = SEED_LO | 0;
  block = 0;
  blockBytes = 0;
  length = 0;
}

/**
 * Hashes raw text bytes (UTF-8 of `s`) with both seeds; the result is in `hashOut`. Exposed for tests
 * against published MurmurHash3 vectors.
 *
 * @example
 * hashString64('hello'); hashOut.hi === 0x248bfa47; // MurmurHash3_x86_32('hello', 0)
 */
export function hashString64(s: string): void {
  start();
  pushString(s);
  finish();
}

/**
 * Hashes a column value's canonical form (see the file comment); the result is in `hashOut`.
 *
 * @example
 * hashScalar64(5); const { hi, lo } = hashOut;
 */
export function hashScalar64(v: Scalar): void {
  start();
  if (typeof v === 'number') {
    pushByte(0x6e); // 'n'
    pushString(String(v));
  } else if (typeof v === 'string') {
    if (hashAscii(0x73, v)) return; // 's'
    pushByte(0x73);
    pushString(v);
  } else {
    pushByte(0x62); // 'b'
    pushString(v ? 'true' : 'false');
  }
  finish();
}

/**
 * `hashScalar64`'s hash of byte `tag` followed by `s` when `s` is ASCII (ids, categories: the usual case),
 * in local variables rather than the byte-at-a-time module state; returns false, leaving the state as
 * `start()` set it, when `s` is not ASCII.
 */
function hashAscii(tag: number, s: string): boolean {
  let a = h1;
  let b = h2;
  let blk = tag;
  let shift = 8;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return false;
    blk |= c << shift;
    shift += 8;
    if (shift === 32) {
      const k = scramble(blk);
      a = mixHalf(a, k);
      b = mixHalf(b, k);
      blk = 0;
      shift = 0;
    }
  }
  h1 = a;
  h2 = b;
  block = blk;
  blockBytes = shift >>> 3;
  length = n + 1;
  finish();
  return true;
}
