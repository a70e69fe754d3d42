import type { Express, Request, Response } from "express";
import { IaasError } from "@iaas/contracts";
import { maybeAuthOf } from "../auth/AuthContext.js";
import { clientAddress } from "./clientAddress.js";

/**
 * Open long-lived streams (job events, console follow) per API token, counted in this process:
 * each one holds a connection, a polling loop or a Redis connection until the client leaves.
 * With several replicas the limit applies per replica.
 */
export class StreamLimiter {
  private readonly open = new Map<string, number>();

  /** `max` streams per key; 0: no limit. */
  constructor(readonly max: number) {}

  /** Takes a slot for `key`: its release (idempotent), or null when `max` are open. */
  tryAcquire(key: string): (() => void) | null {
    const now = this.open.get(key) ?? 0;
    if (this.max > 0 && now >= this.max) return null;
    this.open.set(key, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }

  /** Streams open for `key`. */
  count(key: string): number {
    return this.open.get(key) ?? 0;
  }
}

const LOCALS_KEY = "iaasStreamLimiter";

/** Gives `app` its stream limiter (the routes find it through `req.app`). */
export function installStreamLimiter(app: Express, max: number): StreamLimiter {
  const limiter = new StreamLimiter(max);
  app.locals[LOCALS_KEY] = limiter;
  return limiter;
}

/** Whose streams a request counts against: its token, else its client address. */
export function streamKeyOf(req: Request): string {
  const tokenId = maybeAuthOf(req)?.tokenId;
  return tokenId ? `t:${tokenId}` : `a:${clientAddress(req)}`;
}

/**
 * Counts the stream `req` is about to open until `res` closes; over the limit throws 429
 * `RATE_LIMITED`. A no-op in an app without a limiter. Call it after the checks that may 404, and
 * before the first byte is written.
 */
export function acquireStream(req: Request, res: Response): void {
  const limiter = req.app.locals[LOCALS_KEY] as StreamLimiter | undefined;
  if (!limiter) return;
  const release = limiter.tryAcquire(streamKeyOf(req));
  if (!release) {
    res.setHeader("Retry-After", "5");
    throw new IaasError("RATE_LIMITED", `too many open event/console streams: at most ${limiter.max} at once per token`, {
      hint: "close some (`--wait`, `console --follow`) and retry; the API's IAAS_MAX_STREAMS_PER_TOKEN sets the limit",
    });
  }
  res.once("close", release);
}
