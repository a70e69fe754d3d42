import { formatSize, type Host } from "@iaas/contracts";
import { formatAge } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";
import { hostNetworkLabel } from "./networkView.js";

/** `iaas host list`: ID NAME STATE ACCEL CPUS MEMORY DISK VMS NETWORK HEARTBEAT (allocated/total). */
export function hostTable(hosts: readonly Host[], now: Date): string {
  return formatTable(
    ["ID", "NAME", "STATE", "ACCEL", "CPUS", "MEMORY", "DISK", "VMS", "NETWORK", "HEARTBEAT"],
    hosts.map((h) => [
      h.id,
      h.name,
      hostState(h),
      h.accelerator,
      `${h.allocated.cpus}/${h.capacity.cpus}`,
      `${formatSize(h.allocated.memoryBytes)}/${formatSize(h.capacity.memoryBytes)}`,
      `${formatSize(h.allocated.diskBytes)}/${formatSize(h.capacity.diskBytes)}`,
      String(h.allocated.vms),
      hostNetworkLabel(h),
      formatAge(h.lastHeartbeatAt, now),
    ]),
  );
}

function hostState(h: Host): string {
  return h.drained ? `${h.state},drained` : h.state;
}

/** `iaas host show`: resources, then networking: mode, underlay address, capabilities and notes. */
export function hostDetails(h: Host, now: Date): string {
  const fields: [string, string | number | null][] = [
    ["name", h.name],
    ["id", h.id],
    ["state", hostState(h)],
    ["accelerator", h.accelerator],
    ["qemu", h.qemuVersion],
    ["cpus", `${h.allocated.cpus}/${h.capacity.cpus} allocated`],
    ["memory", `${formatSize(h.allocated.memoryBytes)}/${formatSize(h.capacity.memoryBytes)} allocated`],
    ["disk", `${formatSize(h.allocated.diskBytes)}/${formatSize(h.capacity.diskBytes)} allocated`],
    ["vms", h.allocated.vms],
    ["labels", Object.keys(h.labels).length === 0 ? null : Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["heartbeat", formatAge(h.lastHeartbeatAt, now)],
    ["started", h.startedAt],
  ];
  const net = h.network;
  if (net === null) {
    fields.push(["network", "not reported yet (the worker reports it with its heartbeat)"]);
    return formatFields(fields);
  }
  const capabilities = Object.entries(net.capabilities).map(([name, ok]) => `${name} ${ok ? "yes" : "no"}`);
  fields.push(
    ["network", net.mode === "bridge" ? "bridge (managed networks)" : "user (user-mode NICs: isolated, port forwards only)"],
    ["address", net.address],
    ["capabilities", capabilities.join(", ")],
    ["routes", net.routes.length === 0 ? null : net.routes.map((r) => `${r.cidr} (${r.dev})`).join(", ")],
    ["listening", net.listening.length === 0 ? null : net.listening.map((l) => `${l.port}/${l.protocol}`).join(", ")],
  );
  if (net.notes.length === 0) {
    fields.push(["notes", "none"]);
    return formatFields(fields);
  }
  return [formatFields(fields), "notes:", ...net.notes.map((note) => `  - ${note}`)].join("\n");
}
