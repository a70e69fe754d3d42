import { formatSize, IaasError, parseSize, type VmResizeRequest, type VmSetRequest } from "@iaas/contracts";
import { enforceQuota } from "./ProjectService.js";
import type { Prisma, PrismaClient, Vm } from "@iaas/db";
import { lockPlacement, requireHostRoom } from "./hostCapacity.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { findVm } from "./resolve.js";
import { lockVm, parseMemory, requireHostOnline, type RequestMeta } from "./VmService.js";
import type { HostThresholds } from "./hostLiveness.js";

/** Day-2 changes of a VM's size: grow its disk (a job on its host), set CPUs and memory (a row change). */
export class VmChangeService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  /** Checks that the VM's host has room for the extra CPUs, memory or disk, as placement would. */
  private async requireRoom(tx: Prisma.TransactionClient, vm: Vm, extra: { cpus: number; memoryBytes: number; diskBytes: number }): Promise<void> {
    // Lock order everywhere: placement, then VM rows, then the project row (callers took placement first).
    await enforceQuota(tx, vm.projectId, { vcpus: extra.cpus, memoryBytes: extra.memoryBytes, diskBytes: extra.diskBytes });
    const host = await tx.host.findUniqueOrThrow({ where: { id: vm.hostId } });
    await requireHostRoom(tx, host, { name: vm.name, ...extra }, this.hosts.offlineAfterSeconds, `the change to VM '${vm.name}'`);
  }

  async resize(ref: string, req: VmResizeRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      await lockPlacement(tx);
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      if (vm.state !== "running" && vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `cannot resize VM '${vm.name}': it is ${vm.state}`, { hint: `wait for it: \`iaas vm show ${vm.name}\`` });
      }
      let diskBytes: number;
      try {
        diskBytes = parseSize(req.disk, "G");
      } catch (err) {
        throw new IaasError("VALIDATION_FAILED", (err as Error).message, { hint: "give a size like --disk 20G" });
      }
      const current = Number(vm.diskBytes);
      if (diskBytes <= current) {
        throw new IaasError("VALIDATION_FAILED", `disk ${formatSize(diskBytes)} is not larger than VM '${vm.name}''s ${formatSize(current)}: disks only grow`, {
          hint: `give a size above ${formatSize(current)}; to get a smaller disk, create a new VM`,
        });
      }
      await requireHostOnline(tx, vm, "resize", this.hosts);
      await this.requireRoom(tx, vm, { cpus: 0, memoryBytes: 0, diskBytes: diskBytes - current });
      return { spec: { type: "vm.resize", payload: { vmId: vm.id, diskBytes }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name }, extra: vm };
    });
  }

  /** Sets CPUs and memory of a stopped VM, checked against its host's room; the next start uses them. */
  async set(ref: string, req: VmSetRequest): Promise<Vm> {
    return this.db.$transaction(async (tx) => {
      await lockPlacement(tx);
      const found = await findVm(tx, ref);
      const { count } = await tx.vm.updateMany({ where: { id: found.id, lockJobId: null, state: "stopped" }, data: {} });
      const vm = await tx.vm.findUniqueOrThrow({ where: { id: found.id } });
      if (count === 0) {
        throw new IaasError(vm.lockJobId ? "VM_BUSY" : "INVALID_STATE", `cannot change VM '${vm.name}': ${vm.lockJobId ? `job ${vm.lockJobId} holds it` : `it is ${vm.state}, not stopped`}`, {
          hint: vm.lockJobId ? `wait for it: \`iaas job wait ${vm.lockJobId}\`` : `stop it first: \`iaas vm stop ${vm.name} --wait\``,
          ...(vm.lockJobId ? { details: { jobId: vm.lockJobId } } : {}),
        });
      }
      let memoryBytes = Number(vm.memoryBytes);
      try {
        if (req.memory !== undefined) memoryBytes = parseMemory(req.memory);
      } catch (err) {
        throw new IaasError("VALIDATION_FAILED", (err as Error).message, { hint: "give a size like --memory 1G" });
      }
      const cpus = req.cpus ?? vm.cpus;
      await this.requireRoom(tx, vm, { cpus: Math.max(0, cpus - vm.cpus), memoryBytes: Math.max(0, memoryBytes - Number(vm.memoryBytes)), diskBytes: 0 });
      return tx.vm.update({ where: { id: vm.id }, data: { cpus, memoryBytes: BigInt(memoryBytes) } });
    });
  }
}
