import { formatSize, type Host } from "@iaas/contracts";
import { formatAge } from "./format.js";
import { formatTable } from "./formatTable.js";

/** `iaas host list`: ID NAME STATE ACCEL CPUS MEMORY DISK VMS HEARTBEAT (allocated/total). */
export function hostTable(hosts: readonly Host[], now: Date): string {
  return formatTable(
    ["ID", "NAME", "STATE", "ACCEL", "CPUS", "MEMORY", "DISK", "VMS", "HEARTBEAT"],
    hosts.map((h) => [
      h.id,
      h.name,
      h.drained ? `${h.state},drained` : h.state,
      h.accelerator,
      `${h.allocated.cpus}/${h.capacity.cpus}`,
      `${formatSize(h.allocated.memoryBytes)}/${formatSize(h.capacity.memoryBytes)}`,
      `${formatSize(h.allocated.diskBytes)}/${formatSize(h.capacity.diskBytes)}`,
      String(h.allocated.vms),
      formatAge(h.lastHeartbeatAt, now),
    ]),
  );
}
