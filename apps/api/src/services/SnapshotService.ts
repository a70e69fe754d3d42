import { IaasError, sameSnapshotMachine, snapshotMachineOf, type SnapshotCreateRequest, type SnapshotRestoreRequest } from "@iaas/contracts";
import { isUniqueViolation, type Prisma, type PrismaClient, type Snapshot, type Vm } from "@iaas/db";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { findVm } from "./resolve.js";
import { lockVm, requireHostOnline, type RequestMeta } from "./VmService.js";
import type { HostThresholds } from "./hostLiveness.js";

export async function findSnapshot(tx: Prisma.TransactionClient, vm: Vm, name: string): Promise<Snapshot> {
  const snap = await tx.snapshot.findUnique({ where: { vmId_name: { vmId: vm.id, name } } });
  if (!snap) throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no snapshot '${name}'`, { hint: `see its snapshots with \`iaas vm snapshot list ${vm.name}\`` });
  return snap;
}

/** Snapshots of a VM: the row is written with the job, under the VM's lock; the worker does the rest. */
export class SnapshotService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  async create(ref: string, req: SnapshotCreateRequest, meta: RequestMeta): Promise<Submitted<{ vm: Vm; snapshot: Snapshot }>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      if (vm.state !== "running" && vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `cannot snapshot VM '${vm.name}': it is ${vm.state}`, { hint: `wait for it: \`iaas vm show ${vm.name}\`` });
      }
      if (req.memory && vm.state !== "running") {
        throw new IaasError("VALIDATION_FAILED", `VM '${vm.name}' is stopped: it has no memory to save`, { hint: "leave --memory out for a disk snapshot, or start the VM first" });
      }
      await requireHostOnline(tx, vm, "snapshot", this.hosts);
      let snapshot: Snapshot;
      try {
        snapshot = await tx.snapshot.create({
          data: { vmId: vm.id, name: req.name, kind: req.memory ? "memory" : "disk", description: req.description ?? null, vmState: vm.state },
        });
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new IaasError("NAME_TAKEN", `VM '${vm.name}' already has a snapshot named '${req.name}'`, {
            hint: `choose another name, or delete it: \`iaas vm snapshot delete ${vm.name} ${req.name}\``,
          });
        }
        throw err;
      }
      return {
        spec: { type: "vm.snapshot.create", payload: { vmId: vm.id, snapshotId: snapshot.id }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: { vm, snapshot },
      };
    });
  }

  async restore(ref: string, name: string, req: SnapshotRestoreRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      const snap = await findSnapshot(tx, vm, name);
      if (snap.state !== "ready") throw new IaasError("INVALID_STATE", `snapshot '${name}' is ${snap.state}`, { hint: "wait for its job to finish" });
      if (vm.state !== "running" && vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `cannot restore VM '${vm.name}': it is ${vm.state}`, { hint: `wait for it: \`iaas vm show ${vm.name}\`` });
      }
      if (snap.kind === "disk" && vm.state === "running" && !req.restart) {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' is running: disk-only snapshot '${name}' is restored on a stopped VM`, {
          hint: `stop it first (\`iaas vm stop ${vm.name} --wait\`), or pass --restart to stop, restore and start it`,
        });
      }
      if (snap.kind === "memory") {
        const nics = await tx.nic.findMany({ where: { vmId: vm.id }, orderBy: { index: "asc" }, select: { mac: true } });
        if (!sameSnapshotMachine(snap.machine, snapshotMachineOf(vm, nics.map((n) => n.mac)))) {
          throw new IaasError("INVALID_STATE", `VM '${vm.name}' changed since memory snapshot '${name}' was taken (CPUs, memory or NICs): its saved state cannot be loaded`, {
            hint: "restore a disk-only snapshot instead, or put the VM's configuration back",
          });
        }
      }
      await requireHostOnline(tx, vm, "restore", this.hosts);
      return {
        spec: { type: "vm.snapshot.restore", payload: { vmId: vm.id, snapshotId: snap.id, restart: req.restart }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: vm,
      };
    });
  }

  async delete(ref: string, name: string, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      const snap = await findSnapshot(tx, vm, name);
      await requireHostOnline(tx, vm, "delete a snapshot of", this.hosts);
      await tx.snapshot.update({ where: { id: snap.id }, data: { state: "deleting" } });
      return {
        spec: { type: "vm.snapshot.delete", payload: { vmId: vm.id, snapshotId: snap.id }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: vm,
      };
    });
  }
}
