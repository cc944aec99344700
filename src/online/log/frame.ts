import { readSync } from 'node:fs';
import { crc32 } from 'node:zlib';

/**
 * Framing of the embedded log's segment files. A frame is one appended batch:
 *
 *   u32 payloadLength | u32 crc32(payload) | u32 recordCount | payload (UTF-8 JSON array of rows)
 *
 * all little-endian. The CRC catches a torn or corrupted tail after a crash: recovery keeps the longest
 * prefix of whole, valid frames. One frame per batch keeps per-event overhead to a JSON array element.
 */
export const FRAME_HEADER = 12;

export function encodeFrame(rows: readonly unknown[]): Buffer {
  return encodeJsonFrame(rows, rows.length);
}

/** A frame of any JSON value with record count `count` (the file log's journal frames). */
export function encodeJsonFrame(value: unknown, count: number): Buffer {
  return encodeTextFrame(JSON.stringify(value), count);
}

/** A frame of JSON text already made (`encodeJsonFrame` of the value it is the text of). */
export function encodeTextFrame(json: string, count: number): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  frame.writeUInt32LE(count, 8);
  payload.copy(frame, FRAME_HEADER);
  return frame;
}

export interface FrameHeader {
  readonly length: number;
  readonly crc: number;
  readonly count: number;
}

export function readHeader(buf: Buffer, at = 0): FrameHeader {
  return { length: buf.readUInt32LE(at), crc: buf.readUInt32LE(at + 4), count: buf.readUInt32LE(at + 8) };
}

/**
 * A frame is valid when its payload has the header's length and CRC and is not empty: a JSON value takes at
 * least 2 bytes (`[]`), and a file extended by a crash before its data reached the disk reads as zeros, a
 * header of length 0 and CRC 0 that an empty payload would match.
 */
export function payloadValid(header: FrameHeader, payload: Buffer): boolean {
  return header.length >= 2 && payload.length === header.length && crc32(payload) === header.crc;
}

/** Bytes read per system call when scanning a file's frames (a keyed batch's frames are ~100 bytes). */
const SCAN_CHUNK = 1 << 20;

/**
 * Calls `onFrame` for each whole frame with a valid CRC of file `fd` (of `size` bytes) from its start, in
 * order, until the first one that is not; returns the position after the last valid frame. Reads the file
 * in `SCAN_CHUNK` blocks (two reads per frame made reopening a log of 1.6M small frames take ~9 s).
 * `payload` is only valid during the call.
 */
export function scanFrames(
  fd: number,
  size: number,
  onFrame: (header: FrameHeader, payload: Buffer) => void,
): number {
  let buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(size, FRAME_HEADER)));
  let bufStart = 0;
  let bufLen = 0;
  let position = 0;
  /** Makes bytes [position, end) of the file available in `buf`; false if the file ends before `end`. */
  const load = (end: number): boolean => {
    if (end > size) return false;
    if (end <= bufStart + bufLen && position >= bufStart) return true;
    if (end - position > buf.length) buf = Buffer.allocUnsafe(Math.max(end - position, SCAN_CHUNK));
    const want = Math.min(buf.length, size - position);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, buf, got, want - got, position + got);
      if (n === 0) break;
      got += n;
    }
    bufStart = position;
    bufLen = got;
    return end <= bufStart + bufLen;
  };
  while (load(position + FRAME_HEADER)) {
    const h = readHeader(buf, position - bufStart);
    if (!load(position + FRAME_HEADER + h.length)) break;
    const at = position - bufStart + FRAME_HEADER;
    const payload = buf.subarray(at, at + h.length);
    if (!payloadValid(h, payload)) break;
    onFrame(h, payload);
    position += FRAME_HEADER + h.length;
  }
  return position;
}
