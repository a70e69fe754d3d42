import type { LookupAddress } from "node:dns";
import { promises as dns } from "node:dns";
import http, { type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { IaasError } from "@iaas/contracts";
import { URL_NOT_ALLOWED_HINT, checkAddress, type AllowList, type CheckedUrl } from "./urlPolicy.js";

/** Resolves a host name to all its addresses (the shape of `dns.promises.lookup(h, { all: true })`). */
export type Lookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemLookup: Lookup = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/** Resolves `promise`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * The addresses a checked URL may be fetched from: its IP literal, or every address its name
 * resolves to, each one checked. One denied address refuses the whole name, so DNS cannot mix a
 * private address among public ones and let the connection pick it.
 */
export async function resolveChecked(target: CheckedUrl, allow: AllowList, lookup: Lookup, signal: AbortSignal): Promise<LookupAddress[]> {
  if (target.isIpLiteral) return [{ address: target.host, family: isIP(target.host) }];
  let answers: { address: string; family: number }[];
  try {
    answers = await untilAborted(lookup(target.host), signal);
  } catch (err) {
    if (signal.aborted) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const permanent = code === "ENOTFOUND" || code === "ENODATA";
    throw new IaasError("DOWNLOAD_FAILED", `host name '${target.host}' could not be resolved: ${code ?? (err as Error).message}`, {
      retryable: !permanent,
      hint: permanent ? "check the host name in the URL" : "DNS did not answer; the job retries",
      cause: err,
    });
  }
  if (answers.length === 0) {
    throw new IaasError("DOWNLOAD_FAILED", `host name '${target.host}' has no addresses`, { hint: "check the host name in the URL" });
  }
  for (const answer of answers) {
    const verdict = checkAddress(answer.address, allow, target.host);
    if (!verdict.allowed) {
      throw new IaasError("URL_NOT_ALLOWED", `host '${target.host}' resolves to ${answer.address}, which is not allowed: ${verdict.reason}`, {
        hint: URL_NOT_ALLOWED_HINT,
        details: { host: target.host, address: answer.address },
      });
    }
  }
  return answers.map((a) => ({ address: a.address, family: a.family }));
}

/** A `lookup` for the socket that answers with the checked addresses and never asks DNS again. */
function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const first = addresses[0];
    if (options.all === true) callback(null, addresses);
    else if (first) callback(null, first.address, first.family);
    else callback(Object.assign(new Error("no checked address to connect to"), { code: "ENOTFOUND" }), "", 0);
  };
}

export interface PinnedRequestOptions {
  headers: OutgoingHttpHeaders;
  signal: AbortSignal;
  /** Socket inactivity (connecting, waiting for headers or for body bytes) that calls `onIdle`. */
  idleMs: number;
  onIdle: () => void;
  /** CA certificates (PEM) trusted for https instead of Node's bundled roots. */
  ca?: string;
}

/**
 * GETs a checked URL over a connection to one of `addresses` only. The Host header and TLS SNI
 * stay the URL's host name, so virtual hosts and certificate checks work as usual. A fresh
 * connection per request (`agent: false`): a pooled socket could be bound to another address.
 */
export function requestPinned(target: CheckedUrl, addresses: LookupAddress[], opts: PinnedRequestOptions): Promise<IncomingMessage> {
  const https_ = target.url.protocol === "https:";
  const options: https.RequestOptions = {
    host: target.host,
    port: target.port,
    path: `${target.url.pathname}${target.url.search}`,
    method: "GET",
    headers: { host: target.url.host, ...opts.headers },
    lookup: pinnedLookup(addresses),
    agent: false,
    signal: opts.signal,
    timeout: opts.idleMs,
  };
  if (https_ && !target.isIpLiteral) options.servername = target.host;
  if (https_ && opts.ca !== undefined) options.ca = opts.ca;
  return new Promise((resolve, reject) => {
    const req = (https_ ? https : http).request(options, resolve);
    req.on("error", reject);
    req.on("timeout", opts.onIdle);
    req.end();
  });
}
