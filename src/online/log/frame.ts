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
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
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

export function payloadValid(header: FrameHeader, payload: Buffer): boolean {
  return payload.length === header.length && crc32(payload) === header.crc;
}
