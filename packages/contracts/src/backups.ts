import { z } from "zod";
import { ImageName, SizeInput, VmName } from "./resources.js";
import { NicRequest } from "./networks.js";
import { PageQuery } from "./pagination.js";

export const BackupKind = z.enum(["full", "incremental"]);
export type BackupKind = z.infer<typeof BackupKind>;

export const BackupState = z.enum(["creating", "ready", "deleting"]);
export type BackupState = z.infer<typeof BackupState>;

/** Most backups a retention policy may keep per VM. */
export const MAX_KEEP_LAST = 1000;
const KeepLast = z.number().int().min(1, "keep-last is at least 1").max(MAX_KEEP_LAST, `keep-last is at most ${MAX_KEEP_LAST}`);

/** What a backup records of its VM, so a restore (or a new VM) can be rebuilt from it. */
export const BackupConfig = z.object({
  cpus: z.number().int(),
  memoryBytes: z.number(),
  diskBytes: z.number(),
  image: z.object({ id: z.string(), name: z.string() }),
  hostname: z.string().nullable(),
  sshKeys: z.array(z.string()),
  userData: z.string().nullable(),
  nics: z.array(z.object({ index: z.number().int(), network: z.string(), networkId: z.string(), mac: z.string(), ip: z.string() })),
});
export type BackupConfig = z.infer<typeof BackupConfig>;

/** `iaas vm backup VM [--incremental] [--keep-last N] [--as-image NAME]`. */
export const VmBackupRequest = z
  .object({
    /** Copy only what changed since the VM's last backup (a full one when there is no usable base). */
    incremental: z.boolean().default(false),
    /** After this backup, keep the newest N backups of the VM (and the fulls they need). */
    keepLast: KeepLast.optional(),
    /** Store the disk as a new image with this name instead of as a backup. */
    asImage: ImageName.optional(),
    /** Copy at most this many bytes per second ("50M"), to spare the host's disk (vzdump --bwlimit). */
    bwlimit: SizeInput.optional(),
  })
  .refine((r) => r.asImage === undefined || (!r.incremental && r.keepLast === undefined), {
    message: "asImage makes an image, not a backup: it cannot be combined with incremental or keepLast",
  });
export type VmBackupRequest = z.infer<typeof VmBackupRequest>;

export const Backup = z.object({
  id: z.string(),
  vmId: z.string(),
  vmName: z.string(),
  /** Whether the VM still exists. */
  vmExists: z.boolean(),
  hostId: z.string(),
  kind: BackupKind,
  state: BackupState,
  parentId: z.string().nullable(),
  live: z.boolean(),
  sizeBytes: z.number().nullable(),
  diskBytes: z.number(),
  bytesCopied: z.number().nullable(),
  sha256: z.string().nullable(),
  config: BackupConfig,
  keepLast: z.number().nullable(),
  scheduleId: z.string().nullable(),
  jobId: z.string(),
  lockJobId: z.string().nullable(),
  verifiedAt: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type Backup = z.infer<typeof Backup>;

export const BackupListQuery = z.object({
  /** A VM's name or id; backups of a deleted VM are found by the name it had. */
  vm: z.string().min(1).optional(),
  ...PageQuery.shape,
});
export type BackupListQuery = z.infer<typeof BackupListQuery>;

/** `iaas backup restore ID VM`: the VM's disk (and CPUs, memory) replaced by the backup's. */
export const BackupRestoreRequest = z.object({
  vm: z.string().min(1, "vm is required: the VM (name or id) to restore into"),
  /** The VM's snapshots live in the disk being replaced: restoring drops them, and must be asked for. */
  discardSnapshots: z.boolean().default(false),
  start: z.boolean().default(false),
});
export type BackupRestoreRequest = z.infer<typeof BackupRestoreRequest>;

/** `iaas vm create NEW --from-backup ID`: a new VM from a backup; CPUs, memory and NICs default to the backup's. */
export const BackupVmCreateRequest = z.object({
  name: VmName,
  cpus: z.number().int().min(1).max(64).optional(),
  memory: SizeInput.optional(),
  /** Grow the disk beyond the backup's size. */
  disk: SizeInput.optional(),
  /** Base the new disk on this image instead of the backup's (needed when that image was deleted). */
  image: z.string().min(1).optional(),
  host: z.string().min(1).optional(),
  /** NICs; left out: the backup's networks, keeping its MACs and addresses where they are free. */
  networks: z.array(NicRequest).max(8).optional(),
  start: z.boolean().default(false),
});
export type BackupVmCreateRequest = z.infer<typeof BackupVmCreateRequest>;

/** `iaas vm backup-schedule set VM --every 24h | --cron "0 3 * * *" --keep-last N [--incremental]`. */
export const BackupScheduleRequest = z
  .object({
    /** An interval: "90m", "24h", "7d" (at least 1m). */
    every: z.string().min(1).optional(),
    /** A 5-field cron pattern, in UTC. */
    cron: z.string().min(1).max(200).optional(),
    keepLast: KeepLast,
    incremental: z.boolean().default(false),
  })
  .refine((r) => (r.every === undefined) !== (r.cron === undefined), { message: "give exactly one of every or cron" });
export type BackupScheduleRequest = z.infer<typeof BackupScheduleRequest>;

export const BackupSchedule = z.object({
  vmId: z.string(),
  vmName: z.string(),
  everyMs: z.number().nullable(),
  cron: z.string().nullable(),
  keepLast: z.number().int(),
  incremental: z.boolean(),
  lastRunAt: z.string().nullable(),
  lastJobId: z.string().nullable(),
  /** When it fires next, as the scheduler has it (null when Redis cannot be asked). */
  nextRunAt: z.string().nullable(),
  createdAt: z.string(),
});
export type BackupSchedule = z.infer<typeof BackupSchedule>;

/** Shortest interval of a backup schedule. */
export const MIN_SCHEDULE_EVERY_MS = 10_000;

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** Reads an interval such as "90s", "30m", "24h", "7d", "2w" (also "1h30m") into milliseconds. */
export function parseDuration(input: string): number {
  const text = input.trim().toLowerCase();
  const parts = [...text.matchAll(/(\d+)\s*([smhdw])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text.replace(/\s+/g, "")) {
    throw new RangeError(`'${input}' is not a duration: use a number and a unit s, m, h, d or w, e.g. 30m, 24h, 7d`);
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * (DURATION_UNITS[p[2] ?? "s"] ?? 0), 0);
}

/** "1d", "6h", "90m" for an interval in milliseconds. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [["w", DURATION_UNITS.w], ["d", DURATION_UNITS.d], ["h", DURATION_UNITS.h], ["m", DURATION_UNITS.m]] as const) {
    if (size !== undefined && ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}

/**
 * What a retention of `keepLast` does to a VM's ready backups: the newest `keepLast` stay; a kept
 * incremental whose parent goes is first made self-contained (`flatten`: its chain copied into
 * one file, a synthetic full), so no kept backup ever loses a file it reads through; the rest go
 * (`prune`, newest first, so an incremental goes before what it builds on).
 */
export function retentionPlan<B extends { id: string; parentId: string | null; createdAt: Date | string }>(backups: B[], keepLast: number): { keep: B[]; flatten: B[]; prune: B[] } {
  const newestFirst = [...backups].sort((a, b) => new Date(b.createdAt).getTime() - new Date(a.createdAt).getTime());
  const keep = newestFirst.slice(0, keepLast);
  const kept = new Set(keep.map((b) => b.id));
  return {
    keep,
    flatten: keep.filter((b) => b.parentId !== null && !kept.has(b.parentId)),
    prune: newestFirst.slice(keepLast),
  };
}
