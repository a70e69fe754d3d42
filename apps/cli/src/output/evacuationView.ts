import type { HostEvacuation, Job } from "@iaas/contracts";
import { shortId } from "./format.js";
import { formatTable } from "./formatTable.js";
import type { HostNames } from "./vmView.js";

/** `iaas host evacuate`: a headline, then VM ACTION TO JOB BACKUP REASON, one row per VM. */
export function evacuationView(e: HostEvacuation, names: HostNames): string {
  const host = names.get(e.hostId) ?? e.hostId;
  const moving = e.items.filter((i) => i.action !== "skip").length;
  const headline = e.dryRun
    ? `host ${host} (${e.hostState}): plan only, nothing drained or moved; ${moving} of ${e.items.length} VMs would move`
    : `host ${host} (${e.hostState}): drained; ${moving} of ${e.items.length} VMs moving`;
  if (e.items.length === 0) return `${headline}\nno VMs on it`;
  const table = formatTable(
    ["VM", "ACTION", "TO", "JOB", "BACKUP", "REASON"],
    e.items.map((i) => [
      i.vmName,
      i.action,
      i.toHostId === null ? "-" : (names.get(i.toHostId) ?? i.toHostId),
      i.jobId === null ? "-" : shortId(i.jobId),
      i.backupId === null ? "-" : `${shortId(i.backupId)} (${i.backupAt ?? "?"})`,
      i.reason ?? "-",
    ]),
  );
  return `${headline}\n${table}`;
}

/** After `--wait`: VM JOB STATE OUTCOME for each followed job (the last of its chain). */
export function evacuationOutcome(rows: readonly { vmName: string; job: Job }[]): string {
  return formatTable(
    ["VM", "JOB", "STATE", "OUTCOME"],
    rows.map(({ vmName, job }) => [vmName, shortId(job.id), job.state, job.state === "succeeded" ? `on host ${String(job.result?.["hostId"] ?? job.hostId ?? "?")}` : (job.error?.message ?? "-")]),
  );
}
