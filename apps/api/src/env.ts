import path from "node:path";
import { z } from "zod";
import { parseEnv } from "@iaas/contracts";

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
  /** How often the outbox relay re-enqueues queued jobs missing from Redis, and the sweeper runs. */
  IAAS_RELAY_INTERVAL_MS: z.coerce.number().int().min(100).default(3000),
  /** When set, every /v1 request needs `Authorization: Bearer <token>`. */
  IAAS_API_TOKEN: z.string().min(1).optional(),
  /** Largest image upload accepted. */
  IAAS_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(64 * 1024 ** 3),
  /** How long an export stays downloadable before it is deleted. */
  IAAS_EXPORT_TTL_SECONDS: z.coerce.number().int().positive().default(24 * 3600),
  /** Mounts POST /v1/bench/noop for `npm run bench:jobs`; never needed in production. */
  IAAS_ENABLE_BENCH_JOBS: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type ApiEnv = z.infer<typeof ApiEnv> & { IAAS_IMAGE_STORE: string };

/** Parses the API's environment; throws one error that names every bad variable. */
export function parseApiEnv(env: NodeJS.ProcessEnv): ApiEnv {
  const parsed = parseEnv(ApiEnv, env);
  return { ...parsed, IAAS_IMAGE_STORE: path.resolve(parsed.IAAS_IMAGE_STORE) };
}
