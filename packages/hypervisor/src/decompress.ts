import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { formatSize, IaasError } from "@iaas/contracts";
import { ProcessError, run, type ResourceLimits } from "./run.js";
import { SparseFileWriter } from "./SparseFileWriter.js";

export type CompressionKind = "gzip" | "xz";

export interface DecompressOptions {
  /** Stops the work; the partial destination is removed and the signal's reason is thrown. */
  signal?: AbortSignal;
  /** Compressed bytes read and decompressed bytes written so far; at least every MiB, and once at the end. */
  onProgress?(bytesIn: number, bytesOut: number): void;
  /** Refuse (IMAGE_TOO_LARGE) once the output grows past this many bytes: decompression bombs. */
  maxOutputBytes?: number;
  /** Default `xz`. */
  xzBinary?: string;
  /** Limits for the xz process. Default: 2 GiB of address space (xz itself stops at 1 GiB). null = none. */
  xzLimits?: ResourceLimits | null;
}

export interface DecompressResult {
  bytesIn: number;
  bytesOut: number;
}

const PROGRESS_STEP = 1024 * 1024;
const XZ_MEMLIMIT = "1GiB";

/** Passes chunks through, calling `onChunk` with each one's size; `onChunk` may throw to stop the stream. */
class ByteCounter extends Transform {
  constructor(private readonly onChunk: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.onChunk(chunk.length);
      cb(null, chunk);
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function tooLarge(src: string, max: number): IaasError {
  return new IaasError("IMAGE_TOO_LARGE", `'${src}' decompresses to more than ${formatSize(max)} (${max} bytes), the most allowed`, {
    retryable: false,
    hint: "upload a smaller image, or ask an operator to raise the image size limit",
    details: { path: src, maxOutputBytes: max },
  });
}

function corrupt(src: string, kind: CompressionKind, detail: string, cause: unknown): IaasError {
  return new IaasError("IMAGE_INVALID", `'${src}' is not valid ${kind} data: ${detail}`, {
    retryable: false,
    hint: `upload the file again; \`${kind === "gzip" ? "gzip" : "xz"} -t FILE\` checks a compressed file locally`,
    details: { path: src, compression: kind },
    cause,
  });
}

function isZlibDataError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("Z_");
}

/** Read through a function so a check after an await is not narrowed away by one before it. */
function aborted(signal: AbortSignal | undefined): signal is AbortSignal {
  return signal?.aborted === true;
}

/** What to throw for an aborted run: the signal's reason when it is an error. */
function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new IaasError("JOB_CANCELLED", "decompression was cancelled", { retryable: false });
}

/**
 * Streams `src` into `dst`, decompressing gzip (node:zlib) or xz (the `xz -dc` process through
 * run()). `dst` is written sparse: zero regions (the empty part of a raw disk image) become holes,
 * not written blocks. Stops as soon as the output passes `maxOutputBytes` (IaasError
 * IMAGE_TOO_LARGE), and throws IMAGE_INVALID for corrupt input, or the abort signal's reason; on
 * any failure or abort the partial `dst` is removed.
 */
export async function decompress(src: string, dst: string, kind: CompressionKind, opts: DecompressOptions = {}): Promise<DecompressResult> {
  const max = opts.maxOutputBytes;
  if (max !== undefined && (!Number.isSafeInteger(max) || max <= 0)) throw new RangeError(`maxOutputBytes must be a positive integer, got ${max}`);
  if (aborted(opts.signal)) throw abortReason(opts.signal);
  let bytesIn = 0;
  let bytesOut = 0;
  let reportedIn = 0;
  let reportedOut = 0;
  const report = (force: boolean): void => {
    if (!force && bytesIn - reportedIn < PROGRESS_STEP && bytesOut - reportedOut < PROGRESS_STEP) return;
    reportedIn = bytesIn;
    reportedOut = bytesOut;
    opts.onProgress?.(bytesIn, bytesOut);
  };
  const inCounter = new ByteCounter((n) => {
    bytesIn += n;
    report(false);
  });
  const outCounter = new ByteCounter((n) => {
    bytesOut += n;
    if (max !== undefined && bytesOut > max) throw tooLarge(src, max);
    report(false);
  });

  try {
    if (kind === "gzip") {
      await pipeline(createReadStream(src), inCounter, createGunzip({ chunkSize: 64 * 1024 }), outCounter, new SparseFileWriter(dst), { signal: opts.signal });
    } else {
      await xzDecompress(src, dst, inCounter, outCounter, opts);
    }
  } catch (err) {
    await rm(dst, { force: true });
    if (aborted(opts.signal)) throw abortReason(opts.signal);
    if (err instanceof IaasError) throw err;
    if (isZlibDataError(err)) throw corrupt(src, kind, err.message, err);
    throw new IaasError("INTERNAL", `decompressing '${src}' to '${dst}' failed: ${err instanceof Error ? err.message : String(err)}`, {
      retryable: true,
      hint: "check that the source is readable and the destination's file system has room",
      details: { src, dst, compression: kind },
      cause: err,
    });
  }
  report(true);
  return { bytesIn, bytesOut };
}

async function xzDecompress(src: string, dst: string, inCounter: ByteCounter, outCounter: ByteCounter, opts: DecompressOptions): Promise<void> {
  const input = createReadStream(src);
  // Read errors reach run() through inCounter; write errors through outCounter.
  void pipeline(input, inCounter).catch(() => undefined);
  const writer = new SparseFileWriter(dst);
  const written = pipeline(outCounter, writer);
  written.catch(() => undefined);
  const argv = [opts.xzBinary ?? "xz", "--decompress", "--stdout", "--format=xz", `--memlimit-decompress=${XZ_MEMLIMIT}`];
  const limits = opts.xzLimits === undefined ? { addressSpaceBytes: 2 * 2 ** 30 } : (opts.xzLimits ?? undefined);
  try {
    await run(argv, { stdin: inCounter, stdout: outCounter, signal: opts.signal, limits });
  } catch (err) {
    // The file is closed before the caller removes it, so nothing writes to it afterwards.
    writer.destroy();
    await finished(writer).catch(() => undefined);
    if (!(err instanceof ProcessError)) throw err;
    if (err.reason === "io" && err.cause !== undefined) throw err.cause;
    if (err.reason === "exit" || err.reason === "signal") throw corrupt(src, "xz", err.stderrTail.trim() || err.message, err);
    if (err.reason === "spawn") {
      throw new IaasError("INTERNAL", `xz could not be started: ${err.message}`, { retryable: false, hint: "install xz-utils on this host", cause: err });
    }
    throw err;
  }
  await written;
}
