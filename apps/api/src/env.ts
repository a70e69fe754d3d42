import path from "node:path";
import { z } from "zod";
import { parseEnv } from "@iaas/contracts";
import { addressList, hardeningEnvChecks, hostNameList, originList, trustProxySetting } from "./http/envParsers.js";

const ApiEnv = z.object({
  DATABASE_URL: z.string().url({ message: "DATABASE_URL must be a postgresql:// URL, e.g. postgresql://postgres@127.0.0.1:5432/iaas" }),
  REDIS_URL: z.string().url({ message: "REDIS_URL must be a redis:// URL, e.g. redis://127.0.0.1:6379" }).default("redis://127.0.0.1:6379"),
  IAAS_API_HOST: z.string().default("127.0.0.1"),
  IAAS_API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Shared directory every host can read: images and staged uploads. */
  IAAS_IMAGE_STORE: z.string().min(1, "IAAS_IMAGE_STORE must name the shared image directory"),
  IAAS_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/, "IAAS_QUEUE_PREFIX may hold letters, digits, '_', '.', '-'").default("iaas"),
  /** A host whose last heartbeat is older than this is offline. */
  IAAS_HOST_OFFLINE_SECONDS: z.coerce.number().int().min(1).default(30),
  /** A host offline this long is lost: its VMs show as `unknown`, and may be force-deleted or evacuated from their backups. */
  IAAS_HOST_LOST_SECONDS: z.coerce.number().int().min(1).default(300),
  /** How often the outbox relay re-enqueues queued jobs missing from Redis, and the sweeper runs. */
  IAAS_RELAY_INTERVAL_MS: z.coerce.number().int().min(100).default(3000),
  /**
   * Job events are pushed (Postgres LISTEN/NOTIFY); this is only the safety net against a lost
   * notification: how often one query checks every job an open stream or wait watches.
   */
  IAAS_EVENT_SAFETY_POLL_MS: z.coerce.number().int().min(100).default(5000),
  /** Seconds in-flight requests get to finish after SIGTERM before their connections are closed. */
  IAAS_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).default(10),
  /**
   * `token` (default): every /v1 request needs an API token (`iaas token create`); `none`: no
   * authentication, everyone is the local admin — refused unless the API listens on loopback only.
   */
  IAAS_AUTH: z.enum(["token", "none"]).default("token"),
  /** Largest image upload accepted. */
  IAAS_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(64 * 1024 ** 3),
  /** How long an export stays downloadable before it is deleted. */
  IAAS_EXPORT_TTL_SECONDS: z.coerce.number().int().positive().default(24 * 3600),
  /** Finished jobs (and their events) older than this many days are deleted, unless something still names them. */
  IAAS_JOB_RETENTION_DAYS: z.coerce.number().positive().default(30),
  /** An upload that received no bytes for this many hours is marked failed and its staging file removed. */
  IAAS_UPLOAD_TTL_HOURS: z.coerce.number().positive().default(24),
  /** Mounts POST /v1/bench/noop for `npm run bench:jobs`; never needed in production. */
  IAAS_ENABLE_BENCH_JOBS: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  // --- HTTP hardening (apps/api/src/http; README "Configuration") ---
  /** HTTPS: PEM certificate (chain) and private key files; both or neither. */
  IAAS_TLS_CERT: z.string().min(1).optional(),
  IAAS_TLS_KEY: z.string().min(1).optional(),
  /** Browser origins (`https://console.example.com`) allowed to call /v1; a request with another Origin gets 403. */
  IAAS_ALLOWED_ORIGINS: originList(),
  /** Host names /v1 answers to besides IP literals and localhost (DNS rebinding); `*.example.com`, `*` for any. */
  IAAS_ALLOWED_HOSTS: hostNameList(),
  /** Express "trust proxy": proxy hops or addresses whose X-Forwarded-For names the client. */
  IAAS_TRUST_PROXY: trustProxySetting(),
  /** Requests per minute per API token (without a token: per client address); 0: no limit. */
  IAAS_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(600),
  /** Requests per minute per client address, before authentication; 0: no limit. */
  IAAS_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: z.coerce.number().int().min(0).default(1200),
  /** Client addresses/CIDRs no per-address limit applies to (default loopback: the local CLI, tests, benchmarks). */
  IAAS_RATE_LIMIT_EXEMPT: addressList("127.0.0.0/8,::1"),
  /** Open job-event and console-follow streams per API token (per address without one); 0: no limit. */
  IAAS_MAX_STREAMS_PER_TOKEN: z.coerce.number().int().min(0).default(32),
  /** Open job-event and console-follow streams in this API process, all tokens together; 0: no limit. */
  IAAS_MAX_STREAMS: z.coerce.number().int().min(0).default(1000),
  /** Largest request head (request line + headers); larger gets 431. */
  IAAS_MAX_HEADER_BYTES: z.coerce.number().int().min(1024).max(1024 ** 2).default(16 * 1024),
  /** Time a client has to send the request head (slowloris). */
  IAAS_HEADERS_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(30),
  /** Time a client has to send a whole request, body included; 0: none (uploads of many GiB take hours). */
  IAAS_REQUEST_TIMEOUT_SECONDS: z.coerce.number().int().min(0).default(0),
  /** A request body that sends nothing for this long is cut off; 0: never. */
  IAAS_BODY_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(0).default(120),
  // --- end HTTP hardening ---
  /** When set, `GET /metrics` answers only with `Authorization: Bearer <this>`; unset, scrapes need no token. */
  IAAS_METRICS_TOKEN: z.string().min(16, "IAAS_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`), or unset for unauthenticated scrapes").optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
}).superRefine(hardeningEnvChecks);
export type ApiEnv = z.infer<typeof ApiEnv> & { IAAS_IMAGE_STORE: string };

/** Parses the API's environment; throws one error that names every bad variable. */
export function parseApiEnv(env: NodeJS.ProcessEnv): ApiEnv {
  if (env["IAAS_API_TOKEN"] !== undefined) {
    throw new Error("IAAS_API_TOKEN is gone: the API uses per-user tokens now. Unset it; create tokens with `iaas token create` (`npm run up` makes the first admin token)");
  }
  const parsed = parseEnv(ApiEnv, env);
  if (parsed.IAAS_AUTH === "none" && !isLoopback(parsed.IAAS_API_HOST)) {
    throw new Error(`IAAS_AUTH=none lets anyone who reaches the API act as admin: it is only allowed with IAAS_API_HOST on loopback (127.0.0.1, ::1, localhost), not '${parsed.IAAS_API_HOST}'`);
  }
  if (parsed.IAAS_HOST_LOST_SECONDS <= parsed.IAAS_HOST_OFFLINE_SECONDS) {
    throw new Error(
      `IAAS_HOST_LOST_SECONDS (${parsed.IAAS_HOST_LOST_SECONDS}) must be larger than IAAS_HOST_OFFLINE_SECONDS (${parsed.IAAS_HOST_OFFLINE_SECONDS}): a host is offline first, lost later`,
    );
  }
  return { ...parsed, IAAS_IMAGE_STORE: path.resolve(parsed.IAAS_IMAGE_STORE) };
}

/** Whether a listen address is loopback only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
