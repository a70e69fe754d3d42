import { formatSize, type Host, type Vm, type VmCreateDryRun } from "@iaas/contracts";
import { shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

/** Host id → name, for showing hosts by name; ids that are missing show shortened. */
export type HostNames = ReadonlyMap<string, string>;

export function hostNames(hosts: readonly Host[]): HostNames {
  return new Map(hosts.map((h) => [h.id, h.name]));
}

function hostLabel(id: string, names: HostNames): string {
  return names.get(id) ?? shortId(id);
}

/** `iaas vm list`: NAME STATE HOST CPUS MEMORY DISK IMAGE. */
export function vmTable(vms: readonly Vm[], names: HostNames): string {
  return formatTable(
    ["NAME", "STATE", "HOST", "CPUS", "MEMORY", "DISK", "IMAGE"],
    vms.map((vm) => [
      vm.name,
      vm.state,
      hostLabel(vm.hostId, names),
      String(vm.cpus),
      formatSize(vm.memoryBytes),
      formatSize(vm.diskBytes),
      vm.imageName ?? shortId(vm.imageId),
    ]),
  );
}

/** `iaas vm show`. */
export function vmDetails(vm: Vm, names: HostNames): string {
  const host = names.get(vm.hostId);
  const lines = formatFields([
    ["name", vm.name],
    ["id", vm.id],
    ["state", vm.state],
    ["host", host === undefined ? vm.hostId : `${host} (${vm.hostId})`],
    ["image", vm.imageName === null ? vm.imageId : `${vm.imageName} (${vm.imageId})`],
    ["cpus", vm.cpus],
    ["memory", formatSize(vm.memoryBytes)],
    ["disk", formatSize(vm.diskBytes)],
    ["accelerator", vm.accelerator],
    ["pid", vm.pid],
    ["held by job", vm.lockJobId],
    ["created", vm.createdAt],
    ["updated", vm.updatedAt],
  ]);
  if (vm.lastError === null) return lines;
  const error = formatFields([
    ["last error", `${vm.lastError.message} (${vm.lastError.code})`],
    ...(vm.lastError.hint === null ? [] : [["hint", vm.lastError.hint] as const]),
  ]);
  return `${lines}\n${error}`;
}

/** `iaas vm create --dry-run`: the chosen host, then every candidate with its verdict. */
export function dryRunView(plan: VmCreateDryRun, names: HostNames): string {
  const chosen = names.get(plan.placement.hostId);
  const head = [
    `vm ${plan.name} (${plan.cpus} CPU${plan.cpus === 1 ? "" : "s"}, ${formatSize(plan.memoryBytes)} memory, ${formatSize(plan.diskBytes)} disk) would be placed on host ${chosen === undefined ? plan.placement.hostId : `${chosen} (${plan.placement.hostId})`}`,
    "nothing was created (dry run)",
    "",
  ];
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
