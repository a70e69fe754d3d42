import { IaasError } from "@iaas/contracts";
import type { Db, Host, Prisma } from "@iaas/db";
import type { HostAllocation } from "./dto.js";
import { hostAge, hostAges } from "./hostLiveness.js";
import { judgeHost, type HostCapacity, type VmDemand } from "./placement.js";

/** What is allocated on each host: every VM placed there counts, running or not. */
export async function allocationsByHost(db: Db): Promise<Map<string, HostAllocation>> {
  const rows = await db.vm.groupBy({
    by: ["hostId"],
    _sum: { cpus: true, memoryBytes: true, diskBytes: true },
    _count: { _all: true },
  });
  return new Map(
    rows.map((r) => [
      r.hostId,
      {
        cpus: r._sum.cpus ?? 0,
        memoryBytes: Number(r._sum.memoryBytes ?? 0n),
        diskBytes: Number(r._sum.diskBytes ?? 0n),
        vms: r._count._all,
      },
    ]),
  );
}

export const NO_ALLOCATION: HostAllocation = { cpus: 0, memoryBytes: 0, diskBytes: 0, vms: 0 };

/** `ageSeconds`: since the host's last heartbeat, on the database clock (hostAges). */
export function toHostCapacity(host: Host, allocated: HostAllocation, ageSeconds: number, offlineAfterSeconds: number): HostCapacity {
  return {
    id: host.id,
    online: ageSeconds <= offlineAfterSeconds,
    drained: host.drained,
    heartbeatAgeSeconds: Math.round(ageSeconds),
    capacity: { cpus: host.cpus, memoryBytes: Number(host.memoryBytes), diskBytes: Number(host.diskBytes) },
    allocated,
  };
}

export async function loadHostCapacities(db: Db, offlineAfterSeconds: number): Promise<HostCapacity[]> {
  const [hosts, allocations, ages] = await Promise.all([db.host.findMany({ orderBy: { id: "asc" } }), allocationsByHost(db), hostAges(db)]);
  return hosts.map((h) => toHostCapacity(h, allocations.get(h.id) ?? NO_ALLOCATION, ages.get(h.id) ?? Infinity, offlineAfterSeconds));
}

/** Placement, and every change that takes more of a host, serialize on this advisory lock. */
export async function lockPlacement(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$queryRaw`SELECT pg_advisory_xact_lock(7301)::text AS locked`;
}

/**
 * Refuses a demand one host has no room for, judged as placement judges it (call under
 * lockPlacement). `what` names the demand in the message, e.g. "clone 'web2'".
 */
export async function requireHostRoom(tx: Prisma.TransactionClient, host: Host, demand: VmDemand, offlineAfterSeconds: number, what: string): Promise<void> {
  const allocated = (await allocationsByHost(tx)).get(host.id) ?? NO_ALLOCATION;
  const verdict = judgeHost(toHostCapacity(host, allocated, (await hostAge(tx, host.id)) ?? Infinity, offlineAfterSeconds), demand);
  if (!verdict.fits) {
    throw new IaasError("NO_HOST_AVAILABLE", `host '${host.id}' has no room for ${what}: ${verdict.reasons.join(", ")}`, {
      hint: `ask for less, or free resources on that host (\`iaas host show ${host.id}\`)`,
    });
  }
}
