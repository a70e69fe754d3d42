import { formatSize, type Host, type Vm, type VmCreateDryRun } from "@iaas/contracts";
import { shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";
import { indent, nicTable } from "./networkView.js";

/** Host id → name, for showing hosts by name; ids that are missing show shortened. */
export type HostNames = ReadonlyMap<string, string>;

export function hostNames(hosts: readonly Host[]): HostNames {
  return new Map(hosts.map((h) => [h.id, h.name]));
}

function hostLabel(id: string, names: HostNames): string {
  return names.get(id) ?? shortId(id);
}

/** The name of the VM's host: from the VM, else from the host list. */
function vmHostName(vm: Vm, names: HostNames): string | undefined {
  return vm.hostName ?? names.get(vm.hostId);
}

/** The IP column: the first NIC's address, "user" for user-mode networking, "-" without a NIC. */
function vmIp(vm: Vm): string {
  const first = vm.nics[0];
  if (first !== undefined) return vm.nics.length > 1 ? `${first.ip} (+${vm.nics.length - 1})` : first.ip;
  return vm.userModeNetworking ? "user" : "-";
}

/** The STATE column: "unknown (was running)" for a VM whose host is lost. */
export function vmStateLabel(vm: Vm): string {
  return vm.state === "unknown" && vm.reportedState !== undefined ? `unknown (was ${vm.reportedState})` : vm.state;
}

/** `iaas vm list`: NAME STATE HOST IP CPUS MEMORY DISK IMAGE. */
export function vmTable(vms: readonly Vm[], names: HostNames): string {
  return formatTable(
    ["NAME", "STATE", "HOST", "IP", "CPUS", "MEMORY", "DISK", "IMAGE"],
    vms.map((vm) => [
      vm.name,
      vmStateLabel(vm),
      vmHostName(vm, names) ?? shortId(vm.hostId),
      vmIp(vm),
      String(vm.cpus),
      formatSize(vm.memoryBytes),
      formatSize(vm.diskBytes),
      vm.imageName ?? shortId(vm.imageId),
    ]),
  );
}

/** `iaas vm show`: the VM, its last error, then its NICs (with DHCP leases and port forwards). */
export function vmDetails(vm: Vm, names: HostNames, now: Date): string {
  const host = vmHostName(vm, names);
  const fields: [string, string | number | null][] = [
    ["name", vm.name],
    ["id", vm.id],
    ["state", vmStateLabel(vm)],
    ["host", `${host === undefined ? vm.hostId : `${host} (${vm.hostId})`}${vm.hostState !== undefined && vm.hostState !== "online" ? ` — ${vm.hostState}` : ""}`],
    ["hostname", vm.hostname],
    ["image", vm.imageName === null ? vm.imageId : `${vm.imageName} (${vm.imageId})`],
    ["cpus", vm.cpus],
    ["memory", formatSize(vm.memoryBytes)],
    ["disk", formatSize(vm.diskBytes)],
    ["accelerator", vm.accelerator],
    ["pid", vm.pid],
    ["held by job", vm.lockJobId],
    ["created", vm.createdAt],
    ["updated", vm.updatedAt],
  ];
  if (vm.lastError !== null) {
    fields.push(["last error", `${vm.lastError.message} (${vm.lastError.code})`]);
    if (vm.lastError.hint !== null) fields.push(["hint", vm.lastError.hint]);
  }
  if (vm.hostState === "lost") {
    fields.push(["hint", `its host is lost: \`iaas vm delete ${vm.name} --force\` removes its records, \`iaas vm migrate ${vm.name}\` recreates it elsewhere from its newest backup`]);
  }
  if (vm.userModeNetworking) fields.push(["networking", "user-mode (the host has no bridge support): isolated, reachable through port forwards only"]);
  fields.push(["nics", vm.nics.length === 0 ? "none" : String(vm.nics.length)]);
  const lines = formatFields(fields);
  return vm.nics.length === 0 ? lines : `${lines}\n${indent(nicTable(vm.nics, now))}`;
}

/** A placement decision; `quota` (the project's verdict) is missing from older APIs. */
export type DryRunPlan = Omit<VmCreateDryRun, "quota"> & { quota?: readonly string[] };

/**
 * `iaas vm create --dry-run`: the chosen host, the project's quota verdict (when the API gives
 * one), then every candidate with its verdict.
 */
export function dryRunView(plan: DryRunPlan, names: HostNames): string {
  const chosen = names.get(plan.placement.hostId);
  const head = [
    `vm ${plan.name} (${plan.cpus} CPU${plan.cpus === 1 ? "" : "s"}, ${formatSize(plan.memoryBytes)} memory, ${formatSize(plan.diskBytes)} disk) would be placed on host ${chosen === undefined ? plan.placement.hostId : `${chosen} (${plan.placement.hostId})`}`,
    "nothing was created (dry run)",
  ];
  if (plan.quota !== undefined) {
    if (plan.quota.length === 0) head.push("quota: fits the project's quotas");
    else head.push("quota: the project's quotas would refuse it (QUOTA_EXCEEDED):", ...plan.quota.map((problem) => `  - ${problem}`));
  }
  head.push("");
  const table = formatTable(
    ["HOST", "FITS", "SCORE", "REASONS"],
    plan.placement.candidates.map((c) => [
      `${c.hostId === plan.placement.hostId ? "* " : "  "}${hostLabel(c.hostId, names)}`,
      c.fits ? "yes" : "no",
      c.score === null ? "-" : c.score.toFixed(2),
      c.reasons.length === 0 ? "-" : c.reasons.join("; "),
    ]),
  );
  return `${head.join("\n")}\n${table}`;
}
