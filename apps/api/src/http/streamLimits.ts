import type { Express, Request, Response } from "express";
import { IaasError } from "@iaas/contracts";
import { maybeAuthOf } from "../auth/AuthContext.js";
import { clientAddress } from "./clientAddress.js";

/** Why a stream was refused: its token has `maxPerKey` open, or the process has `maxTotal`. */
export type StreamRefusal = "token" | "process";

/** What a stream carries: a job's events (SSE) or a VM's serial console (`console --follow`). */
export type StreamKind = "job-events" | "console";

/**
 * Open long-lived streams (job events, console follow), counted in this process: each one holds a
 * connection, a polling loop or a Redis connection until the client leaves. Limited per API token
 * and in total per process (one app per process); with several replicas each has its own.
 */
export class StreamLimiter {
  private readonly open = new Map<string, number>();
  private openTotal = 0;
  private readonly openByKind = new Map<StreamKind, number>();

  /** `maxPerKey` streams per key and `maxTotal` in all; 0: no limit. */
  constructor(
    readonly maxPerKey: number,
    readonly maxTotal = 0,
  ) {}

  /** Takes a slot for `key`: its release (idempotent), or why there is none. */
  tryAcquire(key: string, kind: StreamKind = "job-events"): { release: () => void } | { refused: StreamRefusal } {
    const now = this.open.get(key) ?? 0;
    if (this.maxPerKey > 0 && now >= this.maxPerKey) return { refused: "token" };
    if (this.maxTotal > 0 && this.openTotal >= this.maxTotal) return { refused: "process" };
    this.open.set(key, now + 1);
    this.openTotal++;
    this.openByKind.set(kind, (this.openByKind.get(kind) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.openTotal--;
        this.openByKind.set(kind, (this.openByKind.get(kind) ?? 1) - 1);
        const left = (this.open.get(key) ?? 1) - 1;
        if (left <= 0) this.open.delete(key);
        else this.open.set(key, left);
      },
    };
  }

  /** Streams open for `key`. */
  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Streams open in this process. */
  total(): number {
    return this.openTotal;
  }

  /** Streams open in this process of one kind (the `iaas_open_streams` gauge). */
  totalOf(kind: StreamKind): number {
    return this.openByKind.get(kind) ?? 0;
  }
}

const LOCALS_KEY = "iaasStreamLimiter";

/** Gives `app` its stream limiter (the routes find it through `req.app`). */
export function installStreamLimiter(app: Express, maxPerToken: number, maxTotal = 0): StreamLimiter {
  const limiter = new StreamLimiter(maxPerToken, maxTotal);
  app.locals[LOCALS_KEY] = limiter;
  return limiter;
}

/** The stream limiter `mountHardening` gave `app`, if any (tests read its counts). */
export function streamLimiterOf(app: Express): StreamLimiter | undefined {
  return app.locals[LOCALS_KEY] as StreamLimiter | undefined;
}

/** Whose streams a request counts against: its token, else its client address. */
export function streamKeyOf(req: Request): string {
  const tokenId = maybeAuthOf(req)?.tokenId;
  return tokenId ? `t:${tokenId}` : `a:${clientAddress(req)}`;
}

/**
 * Counts the stream `req` is about to open until `res` closes. Over the token's limit it throws 429
 * `RATE_LIMITED`; over the process's, 503 `SERVICE_UNAVAILABLE` (another replica, or this one
 * later, can serve it). A no-op in an app without a limiter, and for a response already closed
 * (the client left: the caller stops at its next `gone` check). Call it after the checks that may
 * 404, and before the first byte is written.
 */
export function acquireStream(req: Request, res: Response): void {
  const limiter = req.app.locals[LOCALS_KEY] as StreamLimiter | undefined;
  if (!limiter || res.closed) return;
  // The matched route tells the kind: /v1/vms/:ref/console, else a job's event stream.
  const routePath = (req.route as { path?: unknown } | undefined)?.path;
  const slot = limiter.tryAcquire(streamKeyOf(req), typeof routePath === "string" && routePath.endsWith("/console") ? "console" : "job-events");
  if ("refused" in slot) {
    res.setHeader("Retry-After", "5");
    if (slot.refused === "token") {
      throw new IaasError("RATE_LIMITED", `too many open event/console streams: at most ${limiter.maxPerKey} at once per token`, {
        hint: "close some (`--wait`, `console --follow`) and retry; the API's IAAS_MAX_STREAMS_PER_TOKEN sets the limit",
      });
    }
    throw new IaasError("SERVICE_UNAVAILABLE", `this API process already serves ${limiter.maxTotal} event/console streams, its most`, {
      hint: "retry in a few seconds or through another API replica; the API's IAAS_MAX_STREAMS sets the limit",
    });
  }
  res.once("close", slot.release);
}
