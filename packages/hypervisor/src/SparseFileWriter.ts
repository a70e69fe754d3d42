import { open, type FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";

/** Holes are made per block of this size (the usual file system block). */
const BLOCK = 4096;
const ZEROS = Buffer.alloc(64 * 1024);

/** Whether `buf[start, end)` holds only zero bytes. */
export function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i += ZEROS.length) {
    const n = Math.min(ZEROS.length, end - i);
    if (buf.compare(ZEROS, 0, n, i, i + n) !== 0) return false;
  }
  return true;
}

/**
 * A writable stream into a new file (created or truncated) that leaves a hole wherever the data
 * is zero: zero runs are skipped (the file offset moves on without a write) and the file is
 * extended to its full length at the end, so a disk image's empty regions take no space. Every
 * byte written is at a higher offset than the last, so skipped bytes read back as zeros.
 */
export class SparseFileWriter extends Writable {
  private fh: FileHandle | null = null;
  private position = 0;

  constructor(private readonly path: string) {
    super({ highWaterMark: 1024 * 1024 });
  }

  /** Bytes the stream has taken so far (the file's length once it finishes). */
  get bytesWritten(): number {
    return this.position;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, "w").then(
      (fh) => {
        this.fh = fh;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeChunk(chunk).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    const fh = this.handle();
    // Trailing zeros were skipped: set the length (a hole up to it).
    fh.truncate(this.position).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    if (fh === null) {
      callback(error);
      return;
    }
    fh.close().then(
      () => callback(error),
      (closeError: Error) => callback(error ?? closeError),
    );
  }

  private handle(): FileHandle {
    if (this.fh === null) throw new Error(`${this.path} is not open`);
    return this.fh;
  }

  /** Writes the runs of `chunk` that hold data, cut at block boundaries (by file offset); zero runs are skipped. */
  private async writeChunk(chunk: Buffer): Promise<void> {
    const base = this.position;
    let runStart = -1;
    let i = 0;
    while (i < chunk.length) {
      const end = Math.min(chunk.length, i + BLOCK - ((base + i) % BLOCK));
      if (isZeroRange(chunk, i, end)) {
        if (runStart >= 0) await this.writeAt(chunk, runStart, i, base);
        runStart = -1;
      } else if (runStart < 0) {
        runStart = i;
      }
      i = end;
    }
    if (runStart >= 0) await this.writeAt(chunk, runStart, chunk.length, base);
    this.position = base + chunk.length;
  }

  private async writeAt(chunk: Buffer, from: number, to: number, base: number): Promise<void> {
    const fh = this.handle();
    let done = from;
    while (done < to) {
      const { bytesWritten } = await fh.write(chunk, done, to - done, base + done);
      done += bytesWritten;
    }
  }
}
