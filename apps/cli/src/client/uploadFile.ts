import { stat } from "node:fs/promises";
import { ExitCode, formatSize, type Image } from "@iaas/contracts";
import { CliError, interruptedError } from "../CliError.js";
import type { ApiClient } from "./ApiClient.js";
import { fileBytes } from "./hashFile.js";
import { describeNetworkError } from "./HttpTransport.js";
import type { JobAccepted } from "@iaas/contracts";
import { sleep } from "./sleep.js";
import { DEFAULT_STALL_TIMEOUT_MS, DEFAULT_TRANSFER_BACKOFF_MS, IdleWatchdog, isTransient, RetryBudget, stalledError } from "./transferRetry.js";

/** A pause before resuming a transfer, for the user to see. */
export interface RetryNotice {
  reason: string;
  /** Bytes the far end had when the transfer broke off. */
  position: number;
  delayMs: number;
  attempt: number;
  maxAttempts: number;
}

export interface UploadOptions {
  /** The image awaiting its content (its `uploadUrl`, else `/v1/images/:id/file`). */
  image: Pick<Image, "id" | "name" | "uploadUrl">;
  file: string;
  size: number;
  /** Pauses between tries after a dropped connection or a 5xx (default 0.5 s, 1 s, 2 s … 10 s). */
  backoffMs?: readonly number[];
  /** A PUT that moves no byte for this long is treated as a dropped connection (default 60 s). */
  stallTimeoutMs?: number;
  /** Aborted on Ctrl-C. */
  interrupt?: AbortSignal;
  /** A PUT starts sending from byte `from` (what the server has). */
  onStart?: (from: number) => void;
  /** The position in the file: bytes the server has, plus bytes sent since. */
  onProgress?: (position: number) => void;
  onRetry?: (notice: RetryNotice) => void;
}

/**
 * Uploads `file` to an image resumably: asks the server how much it has (HEAD, `Upload-Offset`),
 * PUTs the rest from there (`Content-Range`), and after a dropped connection, a stall or a 5xx
 * pauses and resumes from the server's offset again; a `409 UPLOAD_OFFSET_MISMATCH` just asks
 * again. Ends with the import job the server made once the file was whole.
 */
export async function uploadImageFile(client: ApiClient, options: UploadOptions): Promise<JobAccepted> {
  const { file, size, image } = options;
  const url = image.uploadUrl ?? `/v1/images/${encodeURIComponent(image.id)}/file`;
  const budget = new RetryBudget(options.backoffMs ?? DEFAULT_TRANSFER_BACKOFF_MS);
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  let known = 0;
  let mismatchAt: number | null = null;

  const pause = async (err: unknown, reason?: string): Promise<void> => {
    if (!isTransient(err)) throw err;
    const delayMs = budget.failure(known);
    if (delayMs === null) {
      throw new CliError(`${err.message} (gave up after ${budget.maxAttempts + 1} tries)`, {
        exitCode: err.exitCode,
        hint: err.hint,
        code: err.code,
        status: err.status,
      });
    }
    const why = reason ?? (err.cause === undefined ? err.message : describeNetworkError(err.cause));
    options.onRetry?.({ reason: why, position: known, delayMs, attempt: budget.attempt, maxAttempts: budget.maxAttempts });
    await sleep(delayMs, options.interrupt).catch(() => {
      throw interruptedError();
    });
  };

  for (;;) {
    let offset: number;
    try {
      offset = (await client.uploadOffset(url)).offset;
    } catch (err) {
      await pause(err);
      continue;
    }
    known = offset;
    if (mismatchAt !== null && offset === mismatchAt) {
      // The server refused bytes at the offset it still reports: it is busy with an earlier request.
      mismatchAt = null;
      await pause(busyError(offset), `the server is still receiving an earlier request at ${formatSize(offset)}`);
      continue;
    }
    mismatchAt = null;
    if (offset > size) throw tooMuchError(image.name, file, offset, size);
    if (offset === size) return importJobOf(client, image, size);
    await assertSize(file, size);
    options.onStart?.(offset);
    const watchdog = new IdleWatchdog(stallMs);
    const body = fileBytes(file, offset, size - 1, (position) => {
      // Once the body is sent, the answer may take a while (the server finishes the file).
      watchdog.kick(position >= size ? stallMs * 5 : stallMs);
      options.onProgress?.(position);
    });
    try {
      const answer = await client.putUploadRange(url, body, offset, size, watchdog.signal);
      if (answer.kind === "complete") return answer.accepted;
      known = answer.offset;
      if (answer.offset <= offset) await pause(busyError(answer.offset), `the server kept no bytes past ${formatSize(answer.offset)}`);
    } catch (err) {
      const failure = watchdog.fired && !(err instanceof CliError) ? stalledError(`the upload to ${image.name}`, stallMs) : err;
      if (failure instanceof CliError && failure.code === "UPLOAD_OFFSET_MISMATCH") {
        mismatchAt = offset;
        continue;
      }
      if (isTransient(failure)) known = await peekOffset(client, url, known);
      await pause(failure);
    } finally {
      watchdog.stop();
    }
  }
}

/** Where the server got to, after a broken PUT (for the message and the retry count); `known` if it cannot say. */
async function peekOffset(client: ApiClient, url: string, known: number): Promise<number> {
  try {
    return (await client.uploadOffset(url)).offset;
  } catch {
    return known;
  }
}

/** The server has every byte but its answer to the last PUT was lost: find the import job it made. */
async function importJobOf(client: ApiClient, image: UploadOptions["image"], size: number): Promise<JobAccepted> {
  const [job] = await client.listJobs({ image: image.id, type: "image.import", limit: 1 });
  if (job === undefined) {
    throw new CliError(`the server has all ${formatSize(size)} of image ${image.name} but shows no import job for it`, {
      exitCode: ExitCode.JOB_FAILED,
      hint: `see \`iaas image show ${image.name}\`; delete it with \`iaas image delete ${image.name}\` and import again`,
    });
  }
  return { job, image: await client.getImage(image.id) };
}

/** A retryable error for "the server did not take the bytes yet". */
function busyError(offset: number): CliError {
  return new CliError(`the server's upload offset stays at ${offset}`, { exitCode: ExitCode.NOT_FOUND_OR_CONFLICT, retryable: true });
}

function tooMuchError(name: string, file: string, offset: number, size: number): CliError {
  return new CliError(`the server has ${offset} bytes of image ${name}, more than the ${size} bytes of ${file}`, {
    exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
    hint: `it holds another upload: delete it with \`iaas image delete ${name}\`, then import again`,
  });
}

/** The file must not change size between tries (the server appends what it is sent). */
async function assertSize(file: string, size: number): Promise<void> {
  const now = (await stat(file)).size;
  if (now !== size) {
    throw new CliError(`${file} changed during the upload: it was ${size} bytes and is now ${now}`, {
      exitCode: ExitCode.USAGE,
      hint: "upload a file that does not change; delete the image and import again",
    });
  }
}
