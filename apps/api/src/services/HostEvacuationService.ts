import { IaasError, type EvacuationItem, type HostEvacuation } from "@iaas/contracts";
import type { PrismaClient, Vm } from "@iaas/db";
import { formatSilence, hostAge, type HostThresholds } from "./hostLiveness.js";
import { requestHash } from "./JobSubmitter.js";
import type { RequestMeta } from "./VmService.js";
import type { VmMigrationService } from "./VmMigrationService.js";

/**
 * `iaas host evacuate H`: drains H (nothing new lands on it), then moves each of its VMs through
 * VmMigrationService, one transaction per VM: a stopped VM of an online host is migrated cold, a
 * VM of a lost host is recreated from its newest ready backup; what cannot move is skipped with
 * the reason. A dry run plans the same without draining or submitting anything.
 */
export class HostEvacuationService {
  constructor(
    private readonly db: PrismaClient,
    private readonly migrations: VmMigrationService,
    private readonly hosts: HostThresholds,
  ) {}

  async evacuate(hostRef: string, dryRun: boolean, meta: RequestMeta): Promise<HostEvacuation> {
    const host = await this.db.host.findFirst({ where: { OR: [{ id: hostRef }, { name: hostRef }] } });
    if (!host) throw new IaasError("NOT_FOUND", `host '${hostRef}' not found`, { hint: "`iaas host list` shows the hosts" });
    const hostState = await this.migrations.hostStateOf(this.db, host.id);
    if (hostState === "offline") {
      const age = (await hostAge(this.db, host.id)) ?? 0;
      throw new IaasError(
        "HOST_OFFLINE",
        `host '${host.id}' is offline (no heartbeat for ${formatSilence(age)}) but not lost yet (after ${formatSilence(this.hosts.lostAfterSeconds)}): its VMs' disks cannot be read, and it may come back`,
        { hint: `bring its worker back and evacuate it then, or wait until it counts as lost (IAAS_HOST_LOST_SECONDS) to recreate its VMs from their backups` },
      );
    }
    if (!dryRun) await this.db.host.update({ where: { id: host.id }, data: { drained: true } });
    const vms = await this.db.vm.findMany({ where: { hostId: host.id }, orderBy: { name: "asc" } });
    const items: EvacuationItem[] = [];
    for (const vm of vms) items.push(dryRun ? await this.planOne(vm, hostState) : await this.moveOne(vm, meta));
    return { hostId: host.id, hostState, drained: dryRun ? host.drained : true, dryRun, items };
  }

  private async planOne(vm: Vm, hostState: HostEvacuation["hostState"]): Promise<EvacuationItem> {
    try {
      const plan = await this.db.$transaction((tx) => this.migrations.plan(tx, vm, hostState));
      return item(vm, { action: plan.action, toHostId: plan.toHostId, ...(plan.action === "restore" ? { backupId: plan.backup.id, backupAt: plan.backup.createdAt.toISOString() } : {}) });
    } catch (err) {
      return skipped(vm, err);
    }
  }

  private async moveOne(vm: Vm, meta: RequestMeta): Promise<EvacuationItem> {
    // One job per VM: an Idempotency-Key of the request becomes one key per VM, so a replay answers the same jobs.
    const perVm = { idempotencyKey: meta.idempotencyKey === undefined ? undefined : `${meta.idempotencyKey}:${vm.id}`, hash: requestHash("POST", `evacuate/${vm.id}`, meta.hash) };
    try {
      const submitted = await this.migrations.submitMove(perVm, async (tx) => {
        const now = await tx.vm.findUnique({ where: { id: vm.id } });
        if (!now) throw new IaasError("NOT_FOUND", `VM '${vm.name}' was deleted meanwhile`, { hint: "nothing to do" });
        if (now.hostId !== vm.hostId) throw new IaasError("INVALID_STATE", `VM '${vm.name}' moved to host '${now.hostId}' meanwhile`, { hint: "nothing to do" });
        return now;
      });
      const payload = submitted.job.payload as { toHostId?: string; fromBackupId?: string };
      const backup = payload.fromBackupId ? await this.db.backup.findUnique({ where: { id: payload.fromBackupId } }) : null;
      return item(vm, {
        action: payload.fromBackupId ? "restore" : "migrate",
        toHostId: payload.toHostId ?? null,
        jobId: submitted.job.id,
        backupId: payload.fromBackupId ?? null,
        backupAt: backup?.createdAt.toISOString() ?? null,
      });
    } catch (err) {
      return skipped(vm, err);
    }
  }
}

function item(vm: Vm, fields: Partial<EvacuationItem> & Pick<EvacuationItem, "action">): EvacuationItem {
  return { vmId: vm.id, vmName: vm.name, toHostId: null, jobId: null, backupId: null, backupAt: null, reason: null, ...fields };
}

/** A VM that cannot move: the refusal's message and what to do (anything else is a real failure). */
function skipped(vm: Vm, err: unknown): EvacuationItem {
  if (!(err instanceof IaasError)) throw err;
  const hint = err.hint ? `: ${err.hint}` : "";
  return item(vm, { action: "skip", reason: `${err.message}${hint}` });
}
