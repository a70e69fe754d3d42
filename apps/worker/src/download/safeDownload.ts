import { createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { STATUS_CODES, type IncomingMessage } from "node:http";
import { pipeline } from "node:stream/promises";
import { IaasError } from "@iaas/contracts";
import { ProgressMeter, type DownloadProgress } from "./ProgressMeter.js";
import { requestPinned, resolveChecked, systemLookup, type Lookup } from "./pinnedRequest.js";
import { checkUrl, redactUrl, type AllowList, type CheckedUrl } from "./urlPolicy.js";

export type { DownloadProgress } from "./ProgressMeter.js";
export type { Lookup } from "./pinnedRequest.js";

export interface SafeDownloadOptions {
  allow: AllowList;
  maxBytes: number;
  /** The whole download, redirects included. */
  timeoutMs: number;
  /** No byte for this long (connecting, waiting, streaming) fails the attempt; default 60 s. */
  idleTimeoutMs?: number;
  /** Default 5. */
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Called at most every ~250 ms, and once at the end. */
  onProgress?(p: DownloadProgress): void;
  /** Default: `dns.promises.lookup(hostname, { all: true })`. */
  lookup?: Lookup;
  /** CA certificates (PEM) trusted for https instead of Node's bundled roots (a private mirror). */
  ca?: string;
}

export interface SafeDownloadResult {
  /** Size of `dest` when done. */
  bytes: number;
  /** The URL the content came from, after redirects. */
  finalUrl: string;
  contentType: string | null;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))}s`;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const RETRY_HINT = "the job retries; an interrupted download resumes where it stopped";

interface Attempt {
  readonly url: string;
  readonly dest: string;
  readonly opts: SafeDownloadOptions;
  readonly signal: AbortSignal;
  readonly onIdle: () => void;
}

function tooLarge(shown: string, maxBytes: number, size: number | null): IaasError {
  const what = size === null ? `more than ${maxBytes} bytes` : `${size} bytes, more than the limit of ${maxBytes}`;
  return new IaasError("IMAGE_TOO_LARGE", `${shown} is ${what}`, { hint: "use a smaller image, or ask an operator to raise the download size limit" });
}

function statusError(status: number, shown: string): IaasError {
  const text = `${shown} answered HTTP ${status} ${STATUS_CODES[status] ?? ""}`.trimEnd();
  const retryable = status >= 500 || status === 408 || status === 429;
  return new IaasError("DOWNLOAD_FAILED", text, {
    retryable,
    hint: retryable ? "the server had a problem; the job retries" : "check the URL: it must be reachable from the worker hosts without credentials",
    details: { status },
  });
}

function headerNumber(value: string | undefined): number | null {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
}

/** `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`). */
function contentRange(value: string | undefined): { start: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

async function existingSize(dest: string): Promise<number> {
  try {
    return (await stat(dest)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
}

/** A refusal met after a redirect names the hop, so the user sees where the URL led. */
function describeHop(err: unknown, from: string | null, to: string): unknown {
  if (from === null || !(err instanceof IaasError) || err.code !== "URL_NOT_ALLOWED") return err;
  return new IaasError("URL_NOT_ALLOWED", `redirect from ${from} to ${to} refused: ${err.message}`, { hint: err.hint, details: err.details, cause: err });
}

/** GETs `a.url`, following redirects by hand with every hop re-checked (scheme and addresses). */
async function follow(a: Attempt, startAt: number): Promise<{ res: IncomingMessage; target: CheckedUrl }> {
  const maxRedirects = a.opts.maxRedirects ?? 5;
  const headers = { "user-agent": "iaas-worker", "accept-encoding": "identity", ...(startAt > 0 ? { range: `bytes=${startAt}-` } : {}) };
  let raw = a.url;
  let from: string | null = null;
  for (let hops = 0; ; hops++) {
    let target: CheckedUrl;
    let res: IncomingMessage;
    try {
      target = checkUrl(raw, a.opts.allow);
      const addresses = await resolveChecked(target, a.opts.allow, a.opts.lookup ?? systemLookup, a.signal);
      res = await requestPinned(target, addresses, { headers, signal: a.signal, idleMs: a.opts.idleTimeoutMs ?? 60_000, onIdle: a.onIdle, ca: a.opts.ca });
    } catch (err) {
      throw describeHop(err, from, raw);
    }
    const status = res.statusCode ?? 0;
    if (!REDIRECTS.has(status)) return { res, target };
    res.destroy();
    const shown = redactUrl(target.url);
    const location = res.headers.location;
    if (location === undefined) {
      throw new IaasError("DOWNLOAD_FAILED", `${shown} answered ${status} without a Location header`, { hint: "give the URL the content is finally served from" });
    }
    let next: URL;
    try {
      next = new URL(location, target.url);
    } catch {
      throw new IaasError("DOWNLOAD_FAILED", `${shown} redirects to an invalid URL '${location.slice(0, 200)}'`, { hint: "give the URL the content is finally served from" });
    }
    if (hops >= maxRedirects) {
      throw new IaasError("DOWNLOAD_FAILED", `gave up after ${maxRedirects} redirects (the last from ${shown} to ${redactUrl(next)})`, {
        hint: "the URL redirects in a loop or too often; give the URL the content is finally served from",
        details: { maxRedirects },
      });
    }
    from = shown;
    raw = next.href;
  }
}

/** Streams the body into `dest` (appending after `startAt` bytes, or from scratch), bounded by size. */
async function receive(a: Attempt, res: IncomingMessage, target: CheckedUrl, startAt: number, total: number | null): Promise<SafeDownloadResult> {
  const shown = redactUrl(target.url);
  const length = headerNumber(res.headers["content-length"]);
  const expected = total ?? (length === null ? null : startAt + length);
  if (expected !== null && expected > a.opts.maxBytes) {
    res.destroy();
    throw tooLarge(shown, a.opts.maxBytes, expected);
  }
  const meter = new ProgressMeter(startAt, expected, a.opts.onProgress);
  const maxBytes = a.opts.maxBytes;
  await pipeline(
    res,
    async function* bounded(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        if (meter.bytesDone + chunk.length > maxBytes) throw tooLarge(shown, maxBytes, null);
        meter.add(chunk.length);
        yield chunk;
      }
    },
    createWriteStream(a.dest, { flags: startAt > 0 ? "a" : "w" }),
    { signal: a.signal },
  );
  meter.finish();
  if (expected !== null && meter.bytesDone !== expected) {
    throw new IaasError("DOWNLOAD_FAILED", `${shown} ended after ${meter.bytesDone} of ${expected} bytes`, { retryable: true, hint: RETRY_HINT });
  }
  return { bytes: meter.bytesDone, finalUrl: target.url.href, contentType: res.headers["content-type"] ?? null };
}

/** One attempt: resume what `dest` holds when the server honours the range, else start over. */
async function transfer(a: Attempt): Promise<SafeDownloadResult> {
  let startAt = await existingSize(a.dest);
  for (;;) {
    const { res, target } = await follow(a, startAt);
    const status = res.statusCode ?? 0;
    if (status === 200) return receive(a, res, target, 0, null);
    const range = contentRange(res.headers["content-range"]);
    if (status === 206 && startAt > 0 && range?.start === startAt) return receive(a, res, target, startAt, range.total);
    res.destroy();
    const unsatisfied = /^bytes \*\/(\d+)$/.exec(res.headers["content-range"] ?? "");
    // An earlier attempt got every byte but not the end of the message: the file is complete.
    if (status === 416 && startAt > 0 && Number(unsatisfied?.[1]) === startAt) return { bytes: startAt, finalUrl: target.url.href, contentType: null };
    if (startAt === 0 || (status !== 206 && status !== 416)) throw statusError(status, redactUrl(target.url));
    // The server does not resume where the file ends: start over without a Range.
    startAt = 0;
  }
}

function asCancelled(reason: unknown): IaasError {
  return reason instanceof IaasError ? reason : new IaasError("JOB_CANCELLED", "the download was cancelled", { cause: reason });
}

/**
 * Downloads `url` into `dest` without letting the URL reach anything but the public internet
 * (or what `opts.allow` admits): every address of every hop is checked and the connection is
 * pinned to a checked address, so DNS cannot answer differently the second time (rebinding).
 *
 * If `dest` already holds bytes from a cut attempt it asks for the rest (`Range`) and appends
 * when the server honours it, else starts over. Errors are IaasError: URL_NOT_ALLOWED,
 * IMAGE_TOO_LARGE, DOWNLOAD_FAILED (retryable for 5xx, timeouts and lost connections), or the
 * caller's abort reason (JOB_CANCELLED when it is not an IaasError).
 */
export async function safeDownload(url: string, dest: string, opts: SafeDownloadOptions): Promise<SafeDownloadResult> {
  if (opts.signal?.aborted === true) throw asCancelled(opts.signal.reason);
  const controller = new AbortController();
  const fail = (err: IaasError): void => {
    if (!controller.signal.aborted) controller.abort(err);
  };
  const shown = (() => {
    try {
      return redactUrl(new URL(url));
    } catch {
      return url.slice(0, 200);
    }
  })();
  const onCallerAbort = (): void => fail(asCancelled(opts.signal?.reason));
  opts.signal?.addEventListener("abort", onCallerAbort, { once: true });
  const timer = setTimeout(() => {
    fail(new IaasError("DOWNLOAD_FAILED", `download of ${shown} did not finish within ${seconds(opts.timeoutMs)}`, { retryable: true, hint: RETRY_HINT }));
  }, opts.timeoutMs);
  const onIdle = (): void => {
    fail(new IaasError("DOWNLOAD_FAILED", `download of ${shown} stalled: no data for ${seconds(opts.idleTimeoutMs ?? 60_000)}`, { retryable: true, hint: RETRY_HINT }));
  };
  try {
    return await transfer({ url, dest, opts, signal: controller.signal, onIdle });
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason as IaasError;
    if (err instanceof IaasError) throw err;
    const detail = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new IaasError("DOWNLOAD_FAILED", `download of ${shown} failed: ${(err as Error).message}${detail === (err as Error).message ? "" : ` (${detail})`}`, {
      retryable: true,
      hint: RETRY_HINT,
      cause: err,
    });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onCallerAbort);
  }
}
