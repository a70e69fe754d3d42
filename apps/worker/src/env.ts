import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { AccelSetting, configError, parseEnv, parseSize } from "@iaas/contracts";

/** Unix socket paths are limited to 107 bytes: <data>/vms/<uuid>/ttyS1.sock (the longest) must fit. */
const MAX_DATA_DIR_LENGTH = 107 - "/vms/".length - 36 - "/ttyS1.sock".length;

const WorkerEnv = z.object({
  DATABASE_URL: z.string().url({ message: "DATABASE_URL must be a postgresql:// URL, e.g. postgresql://postgres@127.0.0.1:5432/iaas" }),
  REDIS_URL: z.string().url({ message: "REDIS_URL must be a redis:// URL" }).default("redis://127.0.0.1:6379"),
  IAAS_HOST_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "IAAS_HOST_ID may hold letters, digits, '.', '_', '-' (1-63 characters)")
    .default(os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 63) || "localhost"),
  IAAS_HOST_NAME: z.string().optional(),
  /** This host's own directory for VM disks and runtime files (pidfile, QMP socket, console log). */
  IAAS_DATA_DIR: z.string().min(1).default("/var/lib/iaas"),
  /** The shared image store (same directory as the API's). */
  IAAS_IMAGE_STORE: z.string().min(1, "IAAS_IMAGE_STORE must name the shared image directory"),
  IAAS_ACCEL: AccelSetting.default("auto"),
  IAAS_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  IAAS_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default("iaas"),
  IAAS_HEARTBEAT_SECONDS: z.coerce.number().min(0.2).default(5),
  /** How often running VMs are checked (pid alive, console tail). */
  IAAS_MONITOR_INTERVAL_MS: z.coerce.number().int().min(50).default(1000),
  /**
   * A VM's console.log is rotated once larger than this (its older part kept in console.log.1):
   * a size such as 1M or 4M; 0: never.
   */
  IAAS_CONSOLE_LOG_MAX_BYTES: z
    .string()
    .default("1M")
    .transform((text, ctx) => {
      let bytes: number;
      try {
        bytes = parseSize(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
      if (bytes !== 0 && bytes < 64 * 1024) ctx.addIssue({ code: "custom", message: `must be 0 (never rotate) or at least 64K, got '${text}'` });
      return bytes;
    }),
  IAAS_QEMU_BINARY: z.string().default("qemu-system-x86_64"),
  IAAS_QEMU_IMG_BINARY: z.string().default("qemu-img"),
  /**
   * The unprivileged account a root worker runs QEMU as (default `nobody`); '' keeps QEMU as root.
   * A worker that is not root runs QEMU as itself and refuses a value here.
   */
  IAAS_QEMU_USER: z
    .string()
    .regex(/^$|^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}\$?$/, "IAAS_QEMU_USER must name a user (e.g. nobody), or be empty to keep QEMU as root")
    .optional(),
  /** Schedulable vCPUs per core. */
  IAAS_CPU_ALLOCATION_RATIO: z.coerce.number().positive().default(4),
  /** Override the capacity this host advertises (e.g. 16, 8G, 100G). */
  IAAS_HOST_CPUS: z.coerce.number().int().positive().optional(),
  IAAS_HOST_MEMORY: z.string().optional(),
  IAAS_HOST_DISK: z.string().optional(),
  /** Directory on this host from which `iaas image import --source-path` may read; unset disables it. */
  IAAS_IMPORT_DIR: z.string().min(1).optional(),
  /** Hosts and CIDRs URL imports may reach even though they are private (comma-separated); wins over the deny-list. */
  IAAS_URL_ALLOW_LIST: z.string().optional(),
  /** Largest virtual disk size an imported image may have. */
  IAAS_MAX_IMAGE_VIRTUAL_SIZE: z.string().default("2T"),
  IAAS_MAX_DOWNLOAD_BYTES: z.string().default("256G"),
  IAAS_DOWNLOAD_TIMEOUT_SECONDS: z.coerce.number().int().positive().default(6 * 3600),
  /** `auto`: managed bridge networks when the host can (root, /dev/net/tun, nft, dnsmasq), else user mode. */
  IAAS_NETWORK_MODE: z.enum(["auto", "bridge", "user"]).default("auto"),
  /** Network namespace the worker runs its networking and QEMU in (`ip netns exec`); unset: the host's own. */
  IAAS_NETNS: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "IAAS_NETNS must name a network namespace (letters, digits, '.', '_', '-')")
    .optional(),
  /** Underlay address other hosts reach this one at (VXLAN); default the first global IPv4 address. */
  IAAS_HOST_ADDRESS: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, "IAAS_HOST_ADDRESS must be an IPv4 address").optional(),
  /** How often the host's networking is checked against Postgres (peers joining, leases). */
  IAAS_NETWORK_SYNC_MS: z.coerce.number().int().min(100).default(2000),
  /** Heartbeat age after which another host counts as offline (its VXLAN peer entry is dropped). */
  IAAS_HOST_OFFLINE_SECONDS: z.coerce.number().int().min(1).default(30),
  /** Seconds running jobs get to finish after SIGTERM before the worker exits anyway. */
  IAAS_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).default(30),
  /** A running job's lease (BullMQ lock and Postgres lease); a job whose worker died is redelivered after it. */
  IAAS_JOB_LEASE_SECONDS: z.coerce.number().min(2).max(600).default(30),
  /** How often every ready image's stored file is checked (exists, recorded size); also once at start. */
  IAAS_STORE_CHECK_INTERVAL_SECONDS: z.coerce.number().min(1).default(300),
  /**
   * Port of this worker's Prometheus endpoint (`GET /metrics`); 0: none. Several workers on one
   * machine need a port each (or 0).
   */
  IAAS_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Address the metrics endpoint listens on; 0.0.0.0 (or the host's own address) for a Prometheus elsewhere. */
  IAAS_METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  /** When set, scrapes need `Authorization: Bearer <this>`; unset, none. */
  IAAS_METRICS_TOKEN: z.string().min(16, "IAAS_METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`), or unset for unauthenticated scrapes").optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type WorkerEnv = z.infer<typeof WorkerEnv>;

export function parseWorkerEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  const parsed = parseEnv(WorkerEnv, env);
  const data = { ...parsed, IAAS_DATA_DIR: path.resolve(parsed.IAAS_DATA_DIR), IAAS_IMAGE_STORE: path.resolve(parsed.IAAS_IMAGE_STORE) };
  if (data.IAAS_DATA_DIR.length > MAX_DATA_DIR_LENGTH) {
    throw configError([
      `IAAS_DATA_DIR: '${data.IAAS_DATA_DIR}' is ${data.IAAS_DATA_DIR.length} characters; at most ${MAX_DATA_DIR_LENGTH} so the VMs' socket paths fit the 107-byte unix socket limit`,
    ]);
  }
  return data;
}
