import { formatSize, IaasError, type Placement, type PlacementCandidate } from "@iaas/contracts";

export interface HostCapacity {
  id: string;
  online: boolean;
  drained: boolean;
  /** Seconds since the last heartbeat, for messages. */
  heartbeatAgeSeconds: number;
  capacity: { cpus: number; memoryBytes: number; diskBytes: number };
  allocated: { cpus: number; memoryBytes: number; diskBytes: number; vms: number };
}

export interface VmDemand {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  /** What else keeps a host out (e.g. it cannot join the VM's networks), by host id. */
  otherReasons?: (hostId: string) => string[];
}

/** Judges one host: what it lacks (reasons) and, if it fits, its load after placing the VM. */
export function judgeHost(host: HostCapacity, demand: VmDemand): PlacementCandidate {
  const reasons: string[] = [];
  if (!host.online) reasons.push(`offline (last heartbeat ${host.heartbeatAgeSeconds}s ago)`);
  if (host.drained) reasons.push("drained");
  const free = {
    cpus: host.capacity.cpus - host.allocated.cpus,
    memoryBytes: host.capacity.memoryBytes - host.allocated.memoryBytes,
    diskBytes: host.capacity.diskBytes - host.allocated.diskBytes,
  };
  if (demand.cpus > free.cpus) reasons.push(`needs ${demand.cpus} vCPU, ${Math.max(free.cpus, 0)} free`);
  if (demand.memoryBytes > free.memoryBytes) {
    reasons.push(`needs ${formatSize(demand.memoryBytes)} memory, ${formatSize(Math.max(free.memoryBytes, 0))} free`);
  }
  if (demand.diskBytes > free.diskBytes) {
    reasons.push(`needs ${formatSize(demand.diskBytes)} disk, ${formatSize(Math.max(free.diskBytes, 0))} free`);
  }
  reasons.push(...(demand.otherReasons?.(host.id) ?? []));
  if (reasons.length > 0) return { hostId: host.id, fits: false, reasons, score: null };
  const share = (used: number, total: number) => (total > 0 ? used / total : 1);
  const score = Math.max(
    share(host.allocated.cpus + demand.cpus, host.capacity.cpus),
    share(host.allocated.memoryBytes + demand.memoryBytes, host.capacity.memoryBytes),
    share(host.allocated.diskBytes + demand.diskBytes, host.capacity.diskBytes),
  );
  return { hostId: host.id, fits: true, reasons: [], score: Math.round(score * 10_000) / 10_000 };
}

/**
 * Places a VM on the live, non-drained host with room whose most loaded resource stays lowest
 * (spreading load); ties go to the host with fewer VMs, then by id. `pinnedHost` restricts the
 * choice to one host. Throws NO_HOST_AVAILABLE listing what each host lacks.
 */
export function placeVm(hosts: HostCapacity[], demand: VmDemand, pinnedHost?: string): Placement {
  if (pinnedHost !== undefined && !hosts.some((h) => h.id === pinnedHost)) {
    throw new IaasError("NOT_FOUND", `host '${pinnedHost}' not found`, {
      hint: "run `iaas host list` to see the hosts",
    });
  }
  const considered = pinnedHost === undefined ? hosts : hosts.filter((h) => h.id === pinnedHost);
  const candidates = considered.map((h) => judgeHost(h, demand));
  const vmsOn = new Map(hosts.map((h) => [h.id, h.allocated.vms]));
  const fitting = candidates
    .filter((c) => c.fits)
    .sort((a, b) => (a.score ?? 0) - (b.score ?? 0) || (vmsOn.get(a.hostId) ?? 0) - (vmsOn.get(b.hostId) ?? 0) || a.hostId.localeCompare(b.hostId));
  const chosen = fitting[0];
  if (!chosen) {
    const wanted = `${demand.cpus} vCPU, ${formatSize(demand.memoryBytes)} memory, ${formatSize(demand.diskBytes)} disk`;
    const lacks = candidates.map((c) => `${c.hostId}: ${c.reasons.join(", ")}`).join("; ");
    throw new IaasError(
      "NO_HOST_AVAILABLE",
      candidates.length === 0
        ? `no host can take VM '${demand.name}' (${wanted}): no hosts are registered`
        : `no host can take VM '${demand.name}' (${wanted}): ${lacks}`,
      {
        hint:
          candidates.length === 0
            ? "start a worker (`npm run up`, or `node apps/worker/dist/main.js`) so it registers its host"
            : "free resources (`iaas vm delete ...`), ask for less (--cpus/--memory/--disk), use another network, or bring another host online",
        details: { candidates },
      },
    );
  }
  return { hostId: chosen.hostId, candidates };
}
