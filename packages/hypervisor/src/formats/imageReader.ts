import type { FileHandle } from "node:fs/promises";

/** Why an image header cannot be read: truncated, malformed or impossible fields. */
export class ImageHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageHeaderError";
  }
}

/** Random access to the bytes of an image file, so header parsers need not know about files. */
export interface ImageReader {
  readonly size: number;
  /** Up to `length` bytes at `offset` (fewer at the end of the file). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** Reads an open file. The caller keeps ownership of the handle. */
export function fileImageReader(fh: FileHandle, size: number): ImageReader {
  return {
    size,
    async read(offset, length) {
      const len = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(len);
      let done = 0;
      while (done < len) {
        const { bytesRead } = await fh.read(buf, done, len - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === len ? buf : buf.subarray(0, done);
    },
  };
}

/** Reads a buffer (unit tests, and data already in memory). */
export function bufferImageReader(data: Uint8Array): ImageReader {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return {
    size: b.length,
    read(offset, length) {
      const start = Math.min(Math.max(0, offset), b.length);
      return Promise.resolve(b.subarray(start, Math.min(b.length, start + length)));
    },
  };
}

/** Exactly `length` bytes at `offset`, or an ImageHeaderError naming `what` was cut off. */
export async function readExactly(r: ImageReader, offset: number, length: number, what: string): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > r.size) {
    throw new ImageHeaderError(`${what} at byte ${offset} (${length} bytes) lies past the end of the file (${r.size} bytes)`);
  }
  const b = await r.read(offset, length);
  if (b.length < length) throw new ImageHeaderError(`${what} is truncated: read ${b.length} of ${length} bytes`);
  return b;
}

/** A 64-bit header field as a number, refusing values a JS number cannot hold exactly. */
export function safeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageHeaderError(`${what} ${v} is too large`);
  return Number(v);
}

/** The text of `b` up to its first NUL byte (how C parsers see it), as latin1. */
export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString("latin1", 0, nul < 0 ? b.length : nul);
}
