import { createHash, type Hash } from "node:crypto";
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ExitCode, formatSize } from "@iaas/contracts";
import { CliError, interruptedError } from "../CliError.js";
import { headerInt, type ApiClient } from "./ApiClient.js";
import { hashFile } from "./hashFile.js";
import { describeNetworkError } from "./HttpTransport.js";
import { sleep } from "./sleep.js";
import { DEFAULT_STALL_TIMEOUT_MS, DEFAULT_TRANSFER_BACKOFF_MS, IdleWatchdog, isTransient, RetryBudget, stalledError } from "./transferRetry.js";
import type { RetryNotice } from "./uploadFile.js";

export interface DownloadOptions {
  /** The file's URL (an export's `downloadUrl`). */
  url: string;
  /** What the file is, remembered beside a `.part` so only the same file is resumed. */
  exportId: string;
  to: string;
  /** Expected size and sha256, when known beforehand (the export's). */
  sizeBytes: number | null;
  sha256: string | null;
  /** Replace `to` if it exists. */
  force: boolean;
  backoffMs?: readonly number[];
  stallTimeoutMs?: number;
  interrupt?: AbortSignal;
  /** A response starts: the file's size (if known) and the byte it starts at. */
  onStart?: (total: number | null, from: number) => void;
  onProgress?: (position: number) => void;
  onRetry?: (notice: RetryNotice) => void;
  onNote?: (text: string) => void;
}

export interface DownloadResult {
  path: string;
  sizeBytes: number;
  sha256: string;
  /** False when neither the server nor the export named a sha256 to compare with. */
  verified: boolean;
}

/** Beside `PATH.part`: which export (and which version of its file) the bytes belong to. */
const PartInfo = z.object({ exportId: z.string(), etag: z.string().nullable(), size: z.number().nullable().optional() });
type PartInfo = z.infer<typeof PartInfo>;

/** Where the answers so far put the download. */
interface State {
  position: number;
  total: number | null;
  etag: string | null;
  checksum: string | null;
  hash: Hash;
}

/**
 * Downloads a file to `to`: into `to.part` (resumed with `Range` when a `.part` of the same
 * export and ETag is there), resuming dropped connections, checking the sha256 of the whole file,
 * then fsync and an atomic rename. A checksum mismatch deletes the `.part` and fails (exit 1).
 */
export async function downloadFile(client: ApiClient, options: DownloadOptions): Promise<DownloadResult> {
  const { to } = options;
  const part = `${to}.part`;
  const sidecar = `${to}.part.json`;
  await refuseExisting(to, options.force);
  const saved = await readPartInfo(sidecar);
  const partSize = await fileSize(part);
  const total = options.sizeBytes ?? saved?.size ?? null;
  const resumable = saved !== null && partSize !== null && saved.exportId === options.exportId && (total === null || partSize <= total);
  if (partSize !== null && !resumable) options.onNote?.(`discarding ${part}: it is not from export ${options.exportId}`);
  const state: State = {
    position: resumable ? partSize : 0,
    total,
    etag: resumable ? saved.etag : null,
    checksum: null,
    hash: createHash("sha256"),
  };
  if (state.position > 0) {
    options.onNote?.(`resuming the download of ${path.basename(to)} at ${formatSize(state.position)}`);
    await hashFile(part, state.hash, { end: state.position - 1 });
  }
  const fh = await open(part, state.position > 0 ? "r+" : "w");
  try {
    await fh.truncate(state.position);
    if (state.position === 0) await writePartInfo(sidecar, { exportId: options.exportId, etag: null, size: state.total });
    await transfer(client, options, fh, state, sidecar);
    await fh.sync();
  } finally {
    await fh.close();
  }
  const sha256 = state.hash.digest("hex");
  const expected = [...new Set([state.checksum, options.sha256].filter((s): s is string => s !== null).map((s) => s.toLowerCase()))];
  const wrong = expected.find((s) => s !== sha256);
  if (wrong !== undefined) {
    await rm(part, { force: true });
    await rm(sidecar, { force: true });
    throw new CliError(`the downloaded file's sha256 is ${sha256}, not ${wrong} as the server says; ${part} was deleted`, {
      exitCode: ExitCode.JOB_FAILED,
      code: "CHECKSUM_MISMATCH",
      hint: "download it again (the bytes were damaged on the way or on disk); if it happens again, export again",
    });
  }
  await refuseExisting(to, options.force);
  await rename(part, to);
  await syncDir(path.dirname(to));
  await rm(sidecar, { force: true });
  return { path: to, sizeBytes: state.position, sha256, verified: expected.length > 0 };
}

/** GETs the rest of the file (again and again after drops) until `state.total` bytes are in. */
async function transfer(client: ApiClient, options: DownloadOptions, fh: FileHandle, state: State, sidecar: string): Promise<void> {
  const budget = new RetryBudget(options.backoffMs ?? DEFAULT_TRANSFER_BACKOFF_MS);
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const restart = async (why: string): Promise<void> => {
    if (state.position > 0) options.onNote?.(`${why}; downloading from the start`);
    state.position = 0;
    state.hash = createHash("sha256");
    await fh.truncate(0);
  };
  for (;;) {
    if (state.total !== null && state.position >= state.total) return;
    const watchdog = new IdleWatchdog(stallMs);
    try {
      const res = await client.openDownload(options.url, { method: "GET", from: state.position, ifRange: state.etag, signal: watchdog.signal });
      const etag = res.headers.get("etag");
      if (state.position > 0 && res.status === 206) {
        const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        if (range?.[1] === undefined || Number(range[1]) !== state.position || (state.etag !== null && etag !== null && etag !== state.etag)) {
          await res.body?.cancel();
          await restart("the server sent another part of the file than asked for");
          continue;
        }
        if (range[2] !== undefined && range[2] !== "*") state.total = Number(range[2]);
      } else {
        if (state.position > 0) await restart("the file on the server changed (or it does not resume downloads)");
        state.total = headerInt(res, "content-length") ?? state.total;
      }
      state.checksum = res.headers.get("x-checksum-sha256") ?? state.checksum;
      if (etag !== state.etag || state.position === 0) {
        state.etag = etag;
        await writePartInfo(sidecar, { exportId: options.exportId, etag, size: state.total });
      }
      options.onStart?.(state.total, state.position);
      const ended = await readBody(res, fh, state, watchdog, options);
      if (state.total === null && ended) {
        state.total = state.position;
        return;
      }
      if (state.total !== null && state.position > state.total) {
        throw new CliError(`the server sent more than the ${state.total} bytes it announced`, { exitCode: ExitCode.JOB_FAILED });
      }
      if (state.total !== null && state.position < state.total) {
        throw new CliError(`the download broke off at ${formatSize(state.position)} of ${formatSize(state.total)}`, { exitCode: ExitCode.UNREACHABLE, retryable: true });
      }
    } catch (err) {
      let failure = err;
      if (options.interrupt?.aborted) throw interruptedError();
      if (watchdog.fired && !(err instanceof CliError)) failure = stalledError(`the download of ${path.basename(options.to)}`, stallMs);
      else if (!(err instanceof CliError)) failure = new CliError(`the download broke off: ${describeNetworkError(err)}`, { exitCode: ExitCode.UNREACHABLE, retryable: true });
      if (failure instanceof CliError && failure.status === 416) {
        await restart("the server cannot send the rest of the file");
        continue;
      }
      if (!isTransient(failure)) throw failure;
      const delayMs = budget.failure(state.position);
      if (delayMs === null) throw new CliError(`${failure.message} (gave up after ${budget.maxAttempts + 1} tries)`, { exitCode: failure.exitCode, hint: resumeHint(options) });
      options.onRetry?.({ reason: failure.message, position: state.position, delayMs, attempt: budget.attempt, maxAttempts: budget.maxAttempts });
      await sleep(delayMs, options.interrupt).catch(() => {
        throw interruptedError();
      });
    } finally {
      watchdog.stop();
    }
  }
}

/** Appends the response body to the file; true when the body ended normally. */
async function readBody(res: Response, fh: FileHandle, state: State, watchdog: IdleWatchdog, options: DownloadOptions): Promise<boolean> {
  if (res.body === null) return true;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return true;
      watchdog.kick();
      try {
        await fh.write(value, 0, value.byteLength, state.position);
      } catch (err) {
        throw new CliError(`writing ${options.to}.part failed: ${err instanceof Error ? err.message : String(err)}`, {
          exitCode: ExitCode.JOB_FAILED,
          hint: `make room, then run the same command again: it resumes from ${formatSize(state.position)}`,
        });
      }
      state.hash.update(value);
      state.position += value.byteLength;
      options.onProgress?.(state.position);
    }
  } finally {
    reader.releaseLock();
  }
}

function resumeHint(options: DownloadOptions): string {
  return `run the same command again to resume, or: iaas export download ${options.exportId} --to ${options.to}`;
}

/** Refuses to replace an existing file without --force (exit 2). */
export async function refuseExisting(to: string, force: boolean): Promise<void> {
  if (force) return;
  const exists = await stat(to).then(
    () => true,
    () => false,
  );
  if (exists) {
    throw new CliError(`${to} exists`, { exitCode: ExitCode.USAGE, hint: "choose another --to, or add --force to replace it" });
  }
}

async function fileSize(file: string): Promise<number | null> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : null;
  } catch {
    return null;
  }
}

async function readPartInfo(file: string): Promise<PartInfo | null> {
  try {
    const parsed = PartInfo.safeParse(JSON.parse(await readFile(file, "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

async function writePartInfo(file: string, info: PartInfo): Promise<void> {
  await writeFile(file, `${JSON.stringify(info)}\n`);
}

/** fsync of the directory, so the rename survives a crash (best effort: not every system allows it). */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | null = null;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // Directories cannot be opened or synced on some platforms; the rename itself is still atomic.
  } finally {
    await fh?.close();
  }
}
