import { formatDuration, formatSize, type Backup, type BackupSchedule } from "@iaas/contracts";
import { formatAge, shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";
import { indent } from "./networkView.js";

function size(bytes: number | null): string {
  return bytes === null ? "-" : formatSize(bytes);
}

/** The VM a backup is of: its name, marked when the VM has been deleted since. */
function vmLabel(backup: Backup): string {
  return backup.vmExists ? backup.vmName : `${backup.vmName} (deleted)`;
}

/** "live" for a backup of a running VM, "stopped" otherwise. */
function modeLabel(backup: Backup): string {
  return backup.live ? "live" : "stopped";
}

/** `iaas backup list`: ID VM KIND STATE MODE SIZE COPIED PARENT CREATED (MODE: live or stopped VM; PARENT: an incremental's base, shortened). */
export function backupTable(backups: readonly Backup[], now: Date): string {
  return formatTable(
    ["ID", "VM", "KIND", "STATE", "MODE", "SIZE", "COPIED", "PARENT", "CREATED"],
    backups.map((b) => [
      b.id,
      vmLabel(b),
      b.kind,
      b.state,
      modeLabel(b),
      size(b.sizeBytes),
      size(b.bytesCopied),
      b.parentId === null ? "-" : shortId(b.parentId),
      formatAge(b.createdAt, now),
    ]),
  );
}

/** "2025-01-01T00:00:00.000Z (1m ago)"; null stays null. */
function timeWithAge(iso: string | null, now: Date): string | null {
  return iso === null ? null : `${iso} (${formatAge(iso, now)})`;
}

/** `iaas backup show`: the backup, its chain parent and checksum, then the VM configuration it recorded (with its NICs). */
export function backupDetails(backup: Backup, now: Date): string {
  const fields: [string, string | number | null][] = [
    ["id", backup.id],
    ["vm", `${vmLabel(backup)} (${backup.vmId})`],
    ["kind", backup.kind],
    ["parent", backup.parentId ?? (backup.kind === "full" ? "- (a full backup needs no other)" : null)],
    ["state", backup.state],
    ["mode", backup.live ? "live (taken while the VM was running)" : "stopped (taken of a stopped VM)"],
    ["size", size(backup.sizeBytes)],
    ["copied", size(backup.bytesCopied)],
    ["disk", formatSize(backup.diskBytes)],
    ["sha256", backup.sha256],
    ["verified", timeWithAge(backup.verifiedAt, now) ?? "never"],
    ["keep last", backup.keepLast],
    ["schedule", backup.scheduleId === null ? null : `yes (${backup.scheduleId})`],
    ["host", backup.hostId],
    ["job", backup.jobId],
    ["held by job", backup.lockJobId],
    ["created", timeWithAge(backup.createdAt, now)],
    ["finished", backup.finishedAt],
  ];
  const config = backup.config;
  const configFields: [string, string | number | null][] = [
    ["cpus", config.cpus],
    ["memory", formatSize(config.memoryBytes)],
    ["disk", formatSize(config.diskBytes)],
    ["image", `${config.image.name} (${config.image.id})`],
    ["hostname", config.hostname],
    ["ssh keys", config.sshKeys.length],
    ["user data", config.userData === null ? "none" : `${config.userData.length} characters`],
    ["nics", config.nics.length === 0 ? "none" : config.nics.length],
  ];
  const lines = [formatFields(fields), "config:", indent(formatFields(configFields))];
  if (config.nics.length > 0) {
    const nics = formatTable(
      ["NIC", "NETWORK", "MAC", "IP"],
      [...config.nics].sort((a, b) => a.index - b.index).map((nic) => [String(nic.index), nic.network, nic.mac, nic.ip]),
    );
    lines.push(indent(indent(nics)));
  }
  return lines.join("\n");
}

/** `iaas vm backup-schedule show` (and what `set` stored). */
export function scheduleDetails(schedule: BackupSchedule, now: Date): string {
  const fields: [string, string | number | null][] = [
    ["vm", `${schedule.vmName} (${schedule.vmId})`],
    schedule.everyMs !== null ? ["every", formatDuration(schedule.everyMs)] : ["cron", `${schedule.cron ?? "-"} (UTC)`],
    ["keep last", schedule.keepLast],
    ["incremental", schedule.incremental ? "yes" : "no"],
    ["last run", timeWithAge(schedule.lastRunAt, now) ?? "never"],
    ["last job", schedule.lastJobId],
    ["next run", timeWithAge(schedule.nextRunAt, now) ?? "unknown (the scheduler could not be asked)"],
    ["created", schedule.createdAt],
  ];
  return formatFields(fields);
}
