import { IaasError } from "@iaas/contracts";
import type { Prisma } from "@iaas/db";
import { hostAges } from "./hostLiveness.js";

/**
 * Image work (import, export, delete) can run on any live host, since the store is shared: take
 * the one with the least unfinished work, or the one asked for.
 */
export async function pickWorkHost(tx: Prisma.TransactionClient, offlineAfterSeconds: number, pinned?: string): Promise<string> {
  const ages = await hostAges(tx);
  const hosts = (await tx.host.findMany({ where: { drained: false }, orderBy: { id: "asc" } })).filter((h) => (ages.get(h.id) ?? Infinity) <= offlineAfterSeconds);
  if (pinned !== undefined) {
    if (!hosts.some((h) => h.id === pinned)) {
      const known = await tx.host.findUnique({ where: { id: pinned } });
      if (!known) throw new IaasError("NOT_FOUND", `host '${pinned}' not found`, { hint: "`iaas host list` shows the hosts" });
      throw new IaasError("HOST_OFFLINE", `host '${pinned}' is not online${known.drained ? " (drained)" : ""}`, { hint: "`iaas host list` shows which hosts are online" });
    }
    return pinned;
  }
  const [first] = hosts;
  if (!first) {
    throw new IaasError("NO_HOST_AVAILABLE", "no host is online to process the image", {
      hint: "start a worker (`npm run up`), then retry; `iaas host list` shows host state",
    });
  }
  const load = await tx.job.groupBy({ by: ["hostId"], where: { state: { in: ["queued", "running"] } }, _count: { _all: true } });
  const count = new Map(load.map((l) => [l.hostId, l._count._all]));
  return hosts.reduce((best, h) => ((count.get(h.id) ?? 0) < (count.get(best.id) ?? 0) ? h : best), first).id;
}
