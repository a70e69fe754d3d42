import type { Request, RequestHandler } from "express";
import { ipKeyGenerator, rateLimit, type IncrementResponse, type Logger as LimiterLogger } from "express-rate-limit";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { RedisStore, type RedisReply } from "rate-limit-redis";
import { IaasError } from "@iaas/contracts";
import { maybeAuthOf } from "../auth/AuthContext.js";
import { addressMatcher, clientAddress } from "./clientAddress.js";

/**
 * Request rate limits. Counts live in Redis (fixed one-minute windows, `<prefix>:rl:*` keys), so
 * every API replica on the same Redis and queue prefix shares them. Over a limit: 429
 * `RATE_LIMITED` with `Retry-After` (seconds until the window ends) and `RateLimit`/
 * `RateLimit-Policy` headers (IETF draft 8) on every counted answer.
 */
export interface RateLimitConfig {
  /** Requests per window per API token (without one: per client address); 0: no limit. */
  perToken: number;
  /** Requests per window per client address, counted before authentication; 0: no limit. */
  perAddress: number;
  /** Client addresses and CIDRs that address-keyed counting skips (default: loopback). */
  exempt: readonly string[];
  /** Window length in ms; 60 000 (the limits are per minute). */
  windowMs?: number;
  /**
   * Longest a request waits for Redis to count it. A request Redis does not count in time passes
   * uncounted and the failure is logged (at most every 30 s): rate limiting fails open rather
   * than taking every read down with Redis.
   */
  storeTimeoutMs?: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitConfig = { perToken: 600, perAddress: 1200, exempt: ["127.0.0.0/8", "::1"] };

const WINDOW_MS = 60_000;
const STORE_TIMEOUT_MS = 1_000;

/** rate-limit-redis over ioredis, with each count bounded in time and scripts reloaded after a failed load. */
class BoundedRedisStore extends RedisStore {
  private readonly timeoutMs: number;

  constructor(redis: Redis, prefix: string, timeoutMs: number) {
    super({ prefix, sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<RedisReply> });
    this.timeoutMs = timeoutMs;
  }

  override async increment(key: string): Promise<IncrementResponse> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not count the request within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([super.increment(key), timeout]);
    } catch (err) {
      // A script load that failed (Redis down or loading at start) would fail every later count.
      this.incrementScriptSha.catch(() => {
        const reload = this.loadIncrementScript();
        reload.catch(() => undefined);
        this.incrementScriptSha = reload;
      });
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

function limiterLogger(log: Logger | undefined): LimiterLogger | undefined {
  if (!log) return undefined;
  let lastStoreError = 0;
  return {
    error: (err, message) => {
      if (message?.includes("error from store")) {
        if (Date.now() - lastStoreError < 30_000) return;
        lastStoreError = Date.now();
      }
      log.error({ err }, message ?? "rate limiter error");
    },
    warn: (err, message) => log.warn({ err }, message ?? "rate limiter warning"),
  };
}

interface LimiterSpec {
  redis: Redis;
  /** Full Redis key prefix of this limiter's counters. */
  keyPrefix: string;
  name: string;
  limit: number;
  windowMs: number;
  storeTimeoutMs: number;
  /** The counter's key, or null: not counted. */
  key: (req: Request) => string | null;
  refusal: (req: Request, limit: number) => IaasError;
  log: Logger | undefined;
}

function limiter(spec: LimiterSpec): RequestHandler {
  const logger = limiterLogger(spec.log);
  return rateLimit({
    windowMs: spec.windowMs,
    limit: spec.limit,
    standardHeaders: "draft-8",
    legacyHeaders: false,
    identifier: spec.name,
    store: new BoundedRedisStore(spec.redis, spec.keyPrefix, spec.storeTimeoutMs),
    passOnStoreError: true,
    skip: (req) => spec.key(req) === null,
    keyGenerator: (req) => spec.key(req) ?? "",
    handler: (req, _res, next) => next(spec.refusal(req, spec.limit)),
    ...(logger ? { logger } : {}),
  });
}

function addressKey(exempt: readonly string[]): (req: Request) => string | null {
  const isExempt = addressMatcher(exempt);
  return (req) => {
    const address = clientAddress(req);
    if (address === "" || isExempt(address)) return null;
    // IPv6 clients are counted per /56, as one host usually holds a whole prefix.
    return ipKeyGenerator(address);
  };
}

const perMinute = (limit: number, windowMs: number) => (windowMs === WINDOW_MS ? `${limit} a minute` : `${limit} per ${windowMs / 1000} s`);

/**
 * The per-address limit, mounted before authentication on /v1 (it also slows down token guessing).
 * Empty when `perAddress` is 0.
 */
export function addressRateLimits(redis: Redis, prefix: string, config: RateLimitConfig, log?: Logger): RequestHandler[] {
  if (config.perAddress <= 0) return [];
  const windowMs = config.windowMs ?? WINDOW_MS;
  const key = addressKey(config.exempt);
  return [
    limiter({
      redis,
      keyPrefix: `${prefix}:rl:address:`,
      name: "address",
      limit: config.perAddress,
      windowMs,
      storeTimeoutMs: config.storeTimeoutMs ?? STORE_TIMEOUT_MS,
      key,
      refusal: (req, limit) =>
        new IaasError("RATE_LIMITED", `too many requests from ${clientAddress(req)}: more than ${perMinute(limit, windowMs)}`, {
          hint: "wait the Retry-After seconds and retry; the API's IAAS_RATE_LIMIT_PER_ADDRESS_PER_MINUTE sets the limit",
        }),
      log,
    }),
  ];
}

/**
 * The per-token limit: mount it on /v1 AFTER authentication (it reads `maybeAuthOf(req)`), e.g.
 * `app.use("/v1", ...rateLimits(deps.redis, config.queuePrefix, hardening.rateLimit, log))`.
 * Keyed by the token id; a request without one (no auth context, or `IAAS_AUTH=none`) is counted
 * per client address, exempt addresses excepted. Empty when `perToken` is 0.
 */
export function rateLimits(redis: Redis, prefix: string, config: RateLimitConfig, log?: Logger): RequestHandler[] {
  if (config.perToken <= 0) return [];
  const windowMs = config.windowMs ?? WINDOW_MS;
  const byAddress = addressKey(config.exempt);
  const key = (req: Request): string | null => {
    const tokenId = maybeAuthOf(req)?.tokenId;
    if (tokenId) return `t:${tokenId}`;
    const address = byAddress(req);
    return address === null ? null : `a:${address}`;
  };
  return [
    limiter({
      redis,
      keyPrefix: `${prefix}:rl:token:`,
      name: "token",
      limit: config.perToken,
      windowMs,
      storeTimeoutMs: config.storeTimeoutMs ?? STORE_TIMEOUT_MS,
      key,
      refusal: (req, limit) => {
        const auth = maybeAuthOf(req);
        const who = auth?.tokenId ? `token ${auth.tokenName}` : clientAddress(req);
        return new IaasError("RATE_LIMITED", `too many requests for ${who}: more than ${perMinute(limit, windowMs)}`, {
          hint: "wait the Retry-After seconds and retry; the API's IAAS_RATE_LIMIT_PER_MINUTE sets the limit",
        });
      },
      log,
    }),
  ];
}
