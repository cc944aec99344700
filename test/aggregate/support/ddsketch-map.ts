import type { ByteReader, ByteWriter } from '../../../src/aggregate/bytes.ts';
import { DD_GAMMA } from '../../../src/aggregate/sketch/ddsketch.ts';

/**
 * The DDSketch as it was with a Map per store (src/aggregate/sketch/ddsketch.ts at e79c4be, the parent of the
 * sorted-array layout), kept as the reference for that layout: both must encode byte-identically and answer
 * the same quantiles for the same inputs. Changed from the original only in how the encoder sorts the bucket
 * indices (Array#sort here; an Int32Array scratch with an insertion sort there).
 */
const INV_LOG_GAMMA = 1 / Math.log(DD_GAMMA);

interface MapIr {
  count: number;
  zeros: number;
  min: number;
  max: number;
  positive: Map<number, number>;
  negative: Map<number, number>;
}

/**
 * The store of a sketch without values on that side, shared and never mutated (`storeOf` replaces it
 * before the first bump): most inputs (amounts) are all positive, and an empty Map per IR row was garbage.
 */
const EMPTY_STORE: Map<number, number> = new Map();

function ddInit(): MapIr {
  return { count: 0, zeros: 0, min: Infinity, max: -Infinity, positive: new Map(), negative: EMPTY_STORE };
}

/** `ir`'s store of one sign, made its own (not the shared empty one) so it can be bumped. */
function storeOf(ir: MapIr, negative: boolean): Map<number, number> {
  if (negative) return ir.negative === EMPTY_STORE ? (ir.negative = new Map()) : ir.negative;
  return ir.positive === EMPTY_STORE ? (ir.positive = new Map()) : ir.positive;
}

/** A copy of a store (the shared empty one stays shared). */
const copyStore = (store: Map<number, number>) => (store.size === 0 ? EMPTY_STORE : new Map(store));

/** The bucket index of |x| (x ≠ 0). */
function ddIndex(absX: number): number {
  return Math.ceil(Math.log(absX) * INV_LOG_GAMMA);
}

function bump(store: Map<number, number>, index: number, n: number): void {
  store.set(index, (store.get(index) ?? 0) + n);
}

function ddAdd(ir: MapIr, x: number): MapIr {
  if (!Number.isFinite(x)) {
    throw new RangeError(
      `approx_percentile: input ${x} is not a finite number; filter it out with a source filter or a derived column`,
    );
  }
  ir.count++;
  if (x < ir.min) ir.min = x;
  if (x > ir.max) ir.max = x;
  if (x > 0) bump(storeOf(ir, false), ddIndex(x), 1);
  else if (x < 0) bump(storeOf(ir, true), ddIndex(-x), 1);
  else ir.zeros++;
  return ir;
}

function ddMerge(a: MapIr, b: MapIr): MapIr {
  if (b.count === 0) return a;
  a.count += b.count;
  a.zeros += b.zeros;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  if (b.positive.size > 0) {
    const store = storeOf(a, false);
    b.positive.forEach((n, i) => bump(store, i, n));
  }
  if (b.negative.size > 0) {
    const store = storeOf(a, true);
    b.negative.forEach((n, i) => bump(store, i, n));
  }
  return a;
}

function ddClone(ir: MapIr): MapIr {
  return { ...ir, positive: copyStore(ir.positive), negative: copyStore(ir.negative) };
}

const representative = (i: number): number => (2 * DD_GAMMA ** i) / (DD_GAMMA + 1);

/** One estimate per requested quantile, in the order requested; null when the sketch is empty. */
function ddQuantiles(ir: MapIr, qs: readonly number[]): number[] | null {
  if (ir.count === 0) return null;
  const neg = [...ir.negative.keys()].sort((x, y) => y - x);
  const pos = [...ir.positive.keys()].sort((x, y) => x - y);
  return qs.map((q) => {
    const rank = q * (ir.count - 1);
    let cum = 0;
    let value: number | undefined;
    for (const i of neg) {
      cum += ir.negative.get(i) as number;
      if (cum > rank) {
        value = -representative(i);
        break;
      }
    }
    if (value === undefined) {
      cum += ir.zeros;
      if (cum > rank) value = 0;
    }
    if (value === undefined) {
      for (const i of pos) {
        cum += ir.positive.get(i) as number;
        if (cum > rank) {
          value = representative(i);
          break;
        }
      }
    }
    return Math.min(ir.max, Math.max(ir.min, value ?? ir.max));
  });
}

function encodeStore(store: Map<number, number>, out: ByteWriter): void {
  const keys = [...store.keys()].sort((x, y) => x - y);
  const n = keys.length;
  out.writeVarUint(n);
  let prev = 0;
  for (let k = 0; k < n; k++) {
    const i = keys[k];
    if (k === 0) out.writeVarInt(i);
    else out.writeVarUint(i - prev);
    prev = i;
    out.writeVarUint(store.get(i) as number);
  }
}

function decodeStore(input: ByteReader): Map<number, number> {
  const n = input.readVarUint();
  if (n === 0) return EMPTY_STORE;
  const store = new Map<number, number>();
  let index = 0;
  for (let k = 0; k < n; k++) {
    index = k === 0 ? input.readVarInt() : index + input.readVarUint();
    store.set(index, input.readVarUint());
  }
  return store;
}

function ddEncode(ir: MapIr, out: ByteWriter): void {
  out.writeVarUint(ir.count);
  if (ir.count === 0) return;
  out.writeVarUint(ir.zeros);
  out.writeNumber(ir.min);
  out.writeNumber(ir.max);
  encodeStore(ir.positive, out);
  encodeStore(ir.negative, out);
}

function ddDecode(input: ByteReader): MapIr {
  const count = input.readVarUint();
  if (count === 0) return ddInit();
  const zeros = input.readVarUint();
  const min = input.readNumber();
  const max = input.readNumber();
  const positive = decodeStore(input);
  const negative = decodeStore(input);
  return { count, zeros, min, max, positive, negative };
}

export const mapSketch = {
  init: ddInit,
  add: ddAdd,
  merge: ddMerge,
  clone: ddClone,
  quantiles: ddQuantiles,
  encode: ddEncode,
  decode: ddDecode,
};
export type { MapIr };
