import { isIP } from "node:net";
import type { Express, RequestHandler } from "express";
import helmet from "helmet";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { IaasError } from "@iaas/contracts";
import type { ApiEnv } from "../env.js";
import { addressRateLimits, DEFAULT_RATE_LIMITS, rateLimits, type RateLimitConfig } from "./rateLimit.js";
import { jsonBodiesOnly } from "./bodies.js";
import { installStreamLimiter } from "./streamLimits.js";

/** How /v1 is protected against cross-site use, DNS rebinding, floods and odd bodies. */
export interface HardeningConfig {
  /** Browser origins (`https://console.example.com`) allowed to call /v1; any other Origin gets 403. */
  allowedOrigins: readonly string[];
  /**
   * Host names /v1 answers to besides IP literals and `localhost` (DNS rebinding): exact names,
   * `*.example.com` (subdomains), or `*` (any; e.g. behind a proxy that checks Host itself).
   */
  allowedHosts: readonly string[];
  /** Express "trust proxy" (false, proxy hops, or proxy addresses); decides `req.ip` and `req.hostname`. */
  trustProxy: false | number | string;
  /** Served over TLS: adds Strict-Transport-Security. */
  tls: boolean;
  rateLimit: RateLimitConfig;
  /** Open event/console streams per token; 0: no limit. */
  maxStreamsPerToken: number;
  /** Open event/console streams in this API process, all tokens together; 0: no limit. */
  maxStreams: number;
}

export const DEFAULT_HARDENING: HardeningConfig = {
  allowedOrigins: [],
  allowedHosts: [],
  trustProxy: false,
  tls: false,
  rateLimit: DEFAULT_RATE_LIMITS,
  maxStreamsPerToken: 32,
  maxStreams: 1000,
};

/** The hardening the API's environment asks for. */
export function hardeningFromEnv(env: ApiEnv): HardeningConfig {
  return {
    allowedOrigins: env.IAAS_ALLOWED_ORIGINS,
    allowedHosts: env.IAAS_ALLOWED_HOSTS,
    trustProxy: env.IAAS_TRUST_PROXY,
    tls: env.IAAS_TLS_CERT !== undefined,
    rateLimit: { perToken: env.IAAS_RATE_LIMIT_PER_MINUTE, perAddress: env.IAAS_RATE_LIMIT_PER_ADDRESS_PER_MINUTE, exempt: env.IAAS_RATE_LIMIT_EXEMPT },
    maxStreamsPerToken: env.IAAS_MAX_STREAMS_PER_TOKEN,
    maxStreams: env.IAAS_MAX_STREAMS,
  };
}

/**
 * Security headers for a JSON API (helmet): nothing may frame, embed or run anything from it
 * (`Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`), `nosniff`, no referrer,
 * same-origin resource/opener policies, and HSTS when the API is served over TLS.
 */
export function securityHeaders(tls: boolean): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
    xFrameOptions: { action: "deny" },
    strictTransportSecurity: tls ? { maxAge: 365 * 24 * 3600, includeSubDomains: true } : false,
  });
}

/** `Cache-Control: no-store` (answers carry live state and may be per-token); a route may still set its own. */
export function noStore(): RequestHandler {
  return (_req, res, next) => {
    res.setHeader("Cache-Control", "no-store");
    next();
  };
}

function originOf(text: string): string | null {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}

/** Whether `hostname` (from Host, or X-Forwarded-Host behind a trusted proxy) is one /v1 answers to. */
export function hostAllowed(hostname: string, allowedHosts: readonly string[]): boolean {
  let name = hostname.toLowerCase().replace(/\.$/, "");
  if (name.startsWith("[") && name.endsWith("]")) name = name.slice(1, -1);
  if (isIP(name) !== 0 || name === "localhost") return true;
  return allowedHosts.some((allowed) => allowed === "*" || allowed === name || (allowed.startsWith("*.") && name.endsWith(allowed.slice(1))));
}

/**
 * Refuses (403 `FORBIDDEN_ORIGIN`) what only a browser on another site sends:
 * - an `Origin` not in `allowedOrigins` (browsers send it on every cross-origin and every
 *   non-GET request; CLIs and scripts send none and are unaffected);
 * - without Origin, `Sec-Fetch-Site: cross-site|same-site` (a GET from another site's page);
 * - a Host that is neither an IP literal, `localhost` nor in `allowedHosts`: a page whose DNS name
 *   was re-pointed at this API (DNS rebinding) still sends its own name as Host.
 */
export function originAndHostCheck(config: Pick<HardeningConfig, "allowedOrigins" | "allowedHosts">): RequestHandler {
  const origins = new Set(config.allowedOrigins.map((o) => originOf(o) ?? o));
  return (req, _res, next) => {
    const hostname = req.hostname;
    if (hostname && !hostAllowed(hostname, config.allowedHosts)) {
      next(
        new IaasError("FORBIDDEN_ORIGIN", `this API does not answer to the host name '${hostname}' (DNS rebinding protection)`, {
          hint: "call the API by IP address or localhost, or add the name to the API's IAAS_ALLOWED_HOSTS",
        }),
      );
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const normalized = originOf(origin);
      if (normalized === null || !origins.has(normalized)) {
        next(
          new IaasError("FORBIDDEN_ORIGIN", `requests from the web origin '${origin}' are not allowed`, {
            hint: "browsers may call the API only from origins in the API's IAAS_ALLOWED_ORIGINS; CLIs and scripts send no Origin header",
          }),
        );
        return;
      }
      next();
      return;
    }
    const site = req.headers["sec-fetch-site"];
    if (site === "cross-site" || site === "same-site") {
      next(new IaasError("FORBIDDEN_ORIGIN", `cross-site browser requests are not allowed (Sec-Fetch-Site: ${site})`, { hint: "call the API from a CLI or script, or from an origin in IAAS_ALLOWED_ORIGINS" }));
      return;
    }
    next();
  };
}

const AFTER_AUTH_KEY = "iaasAfterAuthHardening";

/**
 * Mounts what runs before authentication, in this order: "trust proxy", security headers (every
 * answer), then on /v1 `Cache-Control: no-store`, the Origin/Host check, the per-address rate
 * limit and the JSON-body check; and gives the app its stream limiter. Call it before any route,
 * authentication and `express.json`. The per-token rate limit comes later: `afterAuthHardening`.
 */
export function mountHardening(app: Express, deps: { redis: Redis; prefix: string; log: Logger; config?: HardeningConfig | undefined }): HardeningConfig {
  const config = deps.config ?? DEFAULT_HARDENING;
  app.set("trust proxy", config.trustProxy);
  app.use(securityHeaders(config.tls));
  app.use("/v1", noStore(), originAndHostCheck(config), ...addressRateLimits(deps.redis, deps.prefix, config.rateLimit, deps.log), jsonBodiesOnly());
  installStreamLimiter(app, config.maxStreamsPerToken, config.maxStreams);
  app.locals[AFTER_AUTH_KEY] = rateLimits(deps.redis, deps.prefix, config.rateLimit, deps.log);
  return config;
}

/**
 * What runs right after authentication (it reads the auth context): the per-token rate limit, as
 * `rateLimits` builds it from the config given to `mountHardening`. Mount it once on /v1 after the
 * authentication middleware: `app.use("/v1", ...afterAuthHardening(app))`.
 */
export function afterAuthHardening(app: Express): RequestHandler[] {
  const handlers = app.locals[AFTER_AUTH_KEY] as RequestHandler[] | undefined;
  if (!handlers) throw new Error("afterAuthHardening: call mountHardening(app, …) first");
  return handlers;
}
