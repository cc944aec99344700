import type { Scalar } from '../define/types.ts';

/**
 * Compact binary encoding for IRs stored in tiles.
 *
 * Counts and integers are unsigned LEB128 varints (1 byte below 128); other numbers are little-endian f64.
 * `writeNumber` picks the shorter form per value, so sums of small integers stay small. Varints are exact up
 * to 2^53 because they are built with arithmetic, never 32-bit bitwise operators.
 */

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Integers whose zigzag form (times two, see writeNumber) stays below 2^53. */
const COMPACT_INT_LIMIT = 2 ** 50;

/** Tags of `writeScalar`; 0 is null. */
const SCALAR_NULL = 0;
const SCALAR_NUMBER = 1;
const SCALAR_STRING = 2;
const SCALAR_TRUE = 3;
const SCALAR_FALSE = 4;
/** A number with at most 4 decimals (12.34): varuint of zigzag(v * 10^d) * 4 + (d - 1), not tag + f64. */
const SCALAR_DECIMAL = 5;
const DECIMAL_SCALES = [10, 100, 1000, 10000];
/** Mantissas below this keep `zigzag * 4 + 3` under 2^53. */
const DECIMAL_LIMIT = 2 ** 49;

/** `readF64` assembles the stored little-endian bytes here until a reader has a view of the array. */
const f64Scratch = new Float64Array(1);
const f64Bytes = new Uint8Array(f64Scratch.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Floats a reader reads from one array through the scratch before it builds a DataView of that array. */
const FLOATS_BEFORE_VIEW = 8;

const SLAB_BYTES = 8192;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/** Strings up to this length are decoded by `readShortString`. */
const SHORT_STRING = 32;
/** Slots of the decoded-string cache (a power of two). */
const STRING_CACHE_SIZE = 4096;
/** Recently decoded short ASCII strings by a hash of their bytes (see `readShortString`). */
const stringCache: string[] = new Array<string>(STRING_CACHE_SIZE).fill('');
/** Per length, an array of that many char codes for `String.fromCharCode.apply` (no string per char). */
const charCodes: number[][] = Array.from({ length: SHORT_STRING + 1 }, (_, n) =>
  new Array<number>(n).fill(0),
);

/**
 * The string of `buf[start, start + len)` (len <= SHORT_STRING). ASCII strings go through a direct-mapped
 * cache keyed by a hash of their bytes, so a value decoded again (the same merchant, country or device in
 * every tile and run event of a key) returns the string already made instead of a new one: stream workers
 * and fetches decode the same few values over and over, and building them was a fifth of a roll-up's
 * garbage. Strings are immutable, so sharing one is invisible to callers.
 */
function readShortString(buf: Uint8Array, start: number, len: number): string {
  const end = start + len;
  let h = len;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    if (b >= 0x80) return textDecoder.decode(buf.subarray(start, end));
    h = Math.imul(h ^ b, 0x01000193);
  }
  const slot = (h ^ (h >>> 15)) & (STRING_CACHE_SIZE - 1);
  const cached = stringCache[slot];
  if (cached.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (cached.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  const codes = charCodes[len];
  for (let i = 0; i < len; i++) codes[i] = buf[start + i];
  const s = String.fromCharCode.apply(null, codes);
  stringCache[slot] = s;
  return s;
}

/**
 * A growable output buffer.
 *
 * @example
 * const w = new ByteWriter();
 * w.writeVarUint(3); w.writeString('abc');
 * const bytes = w.finish(); // Uint8Array [3, 3, 97, 98, 99]
 */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  writeU8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** Unsigned integer in [0, 2^53) as LEB128. */
  writeVarUint(v: number): void {
    if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v)) {
      throw new RangeError(`ByteWriter.writeVarUint: ${v} is not an integer in [0, 2^53); use writeNumber`);
    }
    this.putVarUint(v);
  }

  /** `writeVarUint` for a value its caller already knows is an integer in [0, 2^53). */
  private putVarUint(v: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    if (v < 128) {
      buf[pos] = v;
      this.pos = pos + 1;
      return;
    }
    // Above 2^31 bitwise operators would truncate: split v into exact 32-bit halves and shift 7-bit groups
    // out of the pair with int32 operations (times and offsets land here; `v % 128` on a double is a
    // C call in V8, several times slower).
    if (v >= 2 ** 31) {
      let hi = Math.floor(v / 2 ** 32);
      let lo = (v - hi * 2 ** 32) >>> 0;
      while (hi !== 0) {
        buf[pos++] = (lo & 127) | 128;
        lo = ((lo >>> 7) | ((hi & 127) << 25)) >>> 0;
        hi >>>= 7;
      }
      v = lo;
    }
    while (v >= 128) {
      buf[pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** Signed integer with |v| < 2^52, zigzag-encoded so small magnitudes of either sign stay short. */
  writeVarInt(v: number): void {
    if (!(Math.abs(v) < 2 ** 52 && Math.floor(v) === v)) {
      throw new RangeError(`ByteWriter.writeVarInt: ${v} is not an integer with |v| < 2^52; use writeNumber`);
    }
    this.writeVarUint(v < 0 ? -2 * v - 1 : 2 * v);
  }

  writeF64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Any number, exactly: small integers as one varint, everything else (floats, -0, huge) as tag + f64. */
  writeNumber(v: number): void {
    if (Number.isInteger(v) && Math.abs(v) < COMPACT_INT_LIMIT && !Object.is(v, -0)) {
      this.putVarUint(2 * (v < 0 ? -2 * v - 1 : 2 * v));
    } else {
      this.writeU8(1);
      this.writeF64(v);
    }
  }

  writeString(s: string): void {
    // Short ASCII strings (ids, categories) are the common case; TextEncoder's per-call cost dominates them.
    if (s.length <= SHORT_STRING && this.putShortAscii(s, -1)) return;
    this.putUtf8(s);
  }

  /**
   * Writes `tag` (unless negative), the length and the bytes of `s` if it is ASCII of at most SHORT_STRING
   * units, in one bounds check; returns false, having written nothing, otherwise.
   */
  private putShortAscii(s: string, tag: number): boolean {
    const n = s.length;
    this.ensure(2 + n);
    const buf = this.buf;
    const at = tag < 0 ? this.pos : this.pos + 1;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return false;
      buf[at + 1 + i] = c;
    }
    if (tag >= 0) buf[this.pos] = tag;
    buf[at] = n;
    this.pos = at + 1 + n;
    return true;
  }

  /** A length-prefixed UTF-8 string of any length. */
  private putUtf8(s: string): void {
    const n = s.length;
    // Worst case 3 bytes per UTF-16 unit; encodeInto writes straight into our buffer.
    this.ensure(8 + n * 3);
    const lenPos = this.pos;
    const written = textEncoder.encodeInto(s, this.buf.subarray(this.pos + 5)).written;
    this.putVarUint(written);
    this.buf.copyWithin(this.pos, lenPos + 5, lenPos + 5 + written);
    this.pos += written;
  }

  /** Raw bytes, no length prefix (see writeBlob for a length-prefixed copy). */
  writeBytes(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /**
   * Bytes `from..to` of what `source` has written so far, e.g. values encoded once and copied into several
   * outputs (a byte loop: most ranges are a few bytes, where `set` + `subarray` cost more than copying).
   */
  writeFrom(source: ByteWriter, from: number, to: number): void {
    const n = to - from;
    this.ensure(n);
    const src = source.buf;
    const buf = this.buf;
    let pos = this.pos;
    if (n > 64) buf.set(src.subarray(from, to), pos);
    else for (let i = from; i < to; i++) buf[pos++] = src[i];
    this.pos = this.pos + n;
  }

  /** Length-prefixed bytes. */
  writeBlob(bytes: Uint8Array): void {
    this.writeVarUint(bytes.length);
    this.writeBytes(bytes);
  }

  /**
   * A column value or null, tagged with its JS type. Fractional numbers that are exactly `m / 10^d` for
   * d <= 4 (prices, amounts) take a varint of `m` (~3 bytes) instead of an f64 (9 bytes): event runs and
   * stored inputs are mostly such values. Decoding divides by the same power of ten, so it is exact.
   */
  writeScalar(v: Scalar | null): void {
    if (typeof v === 'string') {
      if (v.length <= SHORT_STRING && this.putShortAscii(v, SCALAR_STRING)) return;
      this.writeU8(SCALAR_STRING);
      this.putUtf8(v);
    } else if (typeof v === 'number') {
      if (!Number.isInteger(v) && Number.isFinite(v)) {
        for (let d = 0; d < 4; d++) {
          const scale = DECIMAL_SCALES[d];
          const m = Math.round(v * scale);
          if (m / scale === v && Math.abs(m) < DECIMAL_LIMIT) {
            this.writeU8(SCALAR_DECIMAL);
            this.putVarUint((m < 0 ? -2 * m - 1 : 2 * m) * 4 + d);
            return;
          }
        }
      }
      this.writeU8(SCALAR_NUMBER);
      this.writeNumber(v);
    } else if (v === null) this.writeU8(SCALAR_NULL);
    else this.writeU8(v ? SCALAR_TRUE : SCALAR_FALSE);
  }

  /** A copy of the bytes written; the writer can keep being used (or `reset`). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /**
   * `finish` for small outputs made in bulk (tile encodings): the copy is carved from a shared 8 KiB slab,
   * as Node's Buffer pool does, because allocating an ArrayBuffer per tile costs more than encoding it.
   * Slab bytes are never reused, so the copy is as safe to keep as `finish`'s; it keeps its slab alive.
   */
  finishPooled(): Uint8Array {
    const n = this.pos;
    if (n > SLAB_BYTES / 4) return this.finish();
    if (slabUsed + n > SLAB_BYTES) {
      slab = new Uint8Array(SLAB_BYTES);
      slabUsed = 0;
    }
    const out = slab.subarray(slabUsed, slabUsed + n);
    // Most tiles are a few dozen bytes, where a byte loop beats `set`, which needs a view of the source.
    if (n > 64) out.set(this.buf.subarray(0, n));
    else {
      const buf = this.buf;
      for (let i = 0; i < n; i++) slab[slabUsed + i] = buf[i];
    }
    // Keep views 8-byte aligned, so a slab never splits a later Float64Array/DataView reader's word.
    slabUsed += (n + 7) & ~7;
    return out;
  }

  /** Forgets the content but keeps the buffer, so hot loops can reuse one writer. */
  reset(): void {
    this.pos = 0;
  }
}

/**
 * Reads what ByteWriter wrote, in the same order. Throws a RangeError naming the offset on truncated input.
 *
 * @example
 * const r = new ByteReader(bytes);
 * const n = r.readVarUint(); const s = r.readString();
 */
export class ByteReader {
  pos: number;
  /** Where the bytes being read end (exclusive): `buf.length` unless `reset` was given a range. */
  private end: number;
  /** A view of `viewOf` for `readF64` (see there), and the floats read from `floatsOf` without one. */
  private view: DataView | null = null;
  private viewOf: Uint8Array | null = null;
  private floatsOf: Uint8Array | null = null;
  private floats = 0;

  constructor(
    private buf: Uint8Array,
    offset = 0,
  ) {
    this.pos = offset;
    this.end = buf.length;
  }

  /**
   * Starts reading `bytes` at `offset` up to `end`, so hot loops (one read per stored tile) reuse one
   * reader instead of allocating one per tile, and can read a tile inside a larger buffer without a view
   * of it. Returns this reader.
   */
  reset(bytes: Uint8Array, offset = 0, end = bytes.length): this {
    this.buf = bytes;
    this.pos = offset;
    this.end = end;
    return this;
  }

  /** Whether every byte has been read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) {
      throw new RangeError(
        `ByteReader: truncated IR bytes (need ${n} at offset ${this.pos} of ${this.end}); the tile is corrupt or was written by an incompatible version`,
      );
    }
  }

  readU8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  readVarUint(): number {
    const buf = this.buf;
    // The first 28 bits with bit operators, the rest (up to 2^53) with arithmetic.
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const b = this.readU8();
      result |= (b & 127) << shift;
      if (b < 128) return result;
    }
    let scale = 2 ** 28;
    for (;;) {
      if (this.pos >= this.end) this.need(1);
      const b = buf[this.pos++];
      result += (b & 127) * scale;
      if (b < 128) return result;
      scale *= 128;
      if (scale > 2 ** 56) throw new RangeError(`ByteReader: varint too long at offset ${this.pos}`);
    }
  }

  readVarInt(): number {
    // The zigzag sign is the lowest bit, which the varint's first byte holds (no fmod on a double).
    const negative = (this.peekU8() & 1) === 1;
    const z = this.readVarUint();
    return negative ? -(z + 1) / 2 : z / 2;
  }

  readF64(): number {
    this.need(8);
    const buf = this.buf;
    const pos = this.pos;
    this.pos = pos + 8;
    // Readers are often reset onto one array again and again (an LMDB read buffer, a fetch's packed
    // tiles): there a DataView read beats assembling the bytes in the scratch (a store-forwarding stall;
    // ~10% of a fetch's decode CPU). But a writer's tiles each come in their own small array, where a
    // DataView per array cost more than it saved: so the view is built only after a few floats of one array.
    if (this.viewOf === buf) return (this.view as DataView).getFloat64(pos, true);
    if (this.floatsOf !== buf) {
      this.floatsOf = buf;
      this.floats = 0;
    }
    if (++this.floats > FLOATS_BEFORE_VIEW) {
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.viewOf = buf;
      return this.view.getFloat64(pos, true);
    }
    if (LITTLE_ENDIAN) for (let k = 0; k < 8; k++) f64Bytes[k] = buf[pos + k];
    else for (let k = 0; k < 8; k++) f64Bytes[7 - k] = buf[pos + k];
    return f64Scratch[0];
  }

  readNumber(): number {
    // writeNumber's varint is 2 * zigzag(v): the sign is bit 1 of the first byte.
    const negative = (this.peekU8() & 2) === 2;
    const z = this.readVarUint();
    if (z === 1) return this.readF64();
    const half = z / 2;
    return negative ? -(half + 1) / 2 : half / 2;
  }

  /**
   * Moves past one `writeNumber` value without decoding it: a varint (at most 9 bytes, as `readVarUint`
   * takes), or the one-byte varint 1 and an f64. Throws, as `readNumber` would, when it runs past the end or
   * its varint is too long.
   */
  skipNumber(): void {
    const buf = this.buf;
    const end = this.end;
    const at = this.pos;
    let pos = at;
    if (pos < end && buf[pos] === 1) pos += 9;
    else {
      while (pos < end && pos - at < 9 && buf[pos]! >= 128) pos++;
      if (pos - at === 9) throw new RangeError(`ByteReader: varint too long at offset ${pos}`);
      pos++;
    }
    if (pos > end) {
      throw new RangeError(
        `ByteReader: truncated IR bytes (a number at offset ${at} runs past ${end}); the tile is corrupt or was written by an incompatible version`,
      );
    }
    this.pos = pos;
  }

  private peekU8(): number {
    this.need(1);
    return this.buf[this.pos];
  }

  readString(): string {
    const len = this.readVarUint();
    this.need(len);
    const start = this.pos;
    this.pos += len;
    // Short ASCII strings (ids, categories) are the common case; TextDecoder's per-call cost dominates them.
    if (len <= SHORT_STRING) return readShortString(this.buf, start, len);
    return textDecoder.decode(this.buf.subarray(start, start + len));
  }

  /** `n` raw bytes (a view, not a copy). */
  readBytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  readBlob(): Uint8Array {
    return this.readBytes(this.readVarUint());
  }

  readScalar(): Scalar | null {
    const tag = this.readU8();
    switch (tag) {
      case SCALAR_NULL:
        return null;
      case SCALAR_NUMBER:
        return this.readNumber();
      case SCALAR_STRING:
        return this.readString();
      case SCALAR_TRUE:
        return true;
      case SCALAR_FALSE:
        return false;
      case SCALAR_DECIMAL: {
        const k = this.readVarUint();
        const d = k % 4;
        const z = (k - d) / 4;
        return (z % 2 === 1 ? -(z + 1) / 2 : z / 2) / DECIMAL_SCALES[d];
      }
      default:
        throw new RangeError(`ByteReader: unknown scalar tag ${tag} at offset ${this.pos - 1}`);
    }
  }
}
