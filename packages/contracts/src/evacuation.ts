import { z } from "zod";
import { HostState } from "./states.js";

/** `vm migrate`: a stopped VM to another host (default: the scheduler's choice). */
export const VmMigrateRequest = z.object({
  /** The host to move to (id or name); default: placement picks one. */
  host: z.string().min(1).optional(),
});
export type VmMigrateRequest = z.infer<typeof VmMigrateRequest>;

/** `host evacuate`: drain the host and move its VMs; `dryRun` plans only. */
export const HostEvacuateRequest = z.object({
  dryRun: z.boolean().default(false),
});
export type HostEvacuateRequest = z.infer<typeof HostEvacuateRequest>;

/**
 * What evacuation does with one VM: `migrate` (cold migration of a stopped VM from an online
 * host), `restore` (recreated from its newest ready backup, its host being lost), or `skip` with
 * the reason.
 */
export const EvacuationItem = z.object({
  vmId: z.string(),
  vmName: z.string(),
  action: z.enum(["migrate", "restore", "skip"]),
  /** The host it goes to (null for a skip). */
  toHostId: z.string().nullable(),
  /** The job that moves it (null for a skip and in a dry run). */
  jobId: z.string().nullable(),
  /** For `restore`: the backup and when it was taken. */
  backupId: z.string().nullable(),
  backupAt: z.string().nullable(),
  /** Why it is skipped. */
  reason: z.string().nullable(),
});
export type EvacuationItem = z.infer<typeof EvacuationItem>;

export const HostEvacuation = z.object({
  hostId: z.string(),
  hostState: HostState,
  /** Whether the host is drained now (a dry run leaves it as it was). */
  drained: z.boolean(),
  dryRun: z.boolean(),
  items: z.array(EvacuationItem),
});
export type HostEvacuation = z.infer<typeof HostEvacuation>;
