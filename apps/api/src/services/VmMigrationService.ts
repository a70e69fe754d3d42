import { IaasError, type HostState, type JobError, type VmMigrateRequest } from "@iaas/contracts";
import { finishJobIn, type Backup, type Host, type Prisma, type PrismaClient, type Vm } from "@iaas/db";
import { lockBackupFor } from "./BackupService.js";
import { hostNetworkOf } from "./dto.js";
import { loadHostCapacities, lockPlacement } from "./hostCapacity.js";
import { formatSilence, hostAge, hostStateOf, type HostThresholds } from "./hostLiveness.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { networkReasons, type NetworkDemand } from "./nicAllocation.js";
import { placeVm } from "./placement.js";
import { findVm } from "./resolve.js";
import { lockVm, type RequestMeta } from "./VmService.js";

type Tx = Prisma.TransactionClient;

/** Where a VM goes and how: its disk copied from its online host, or made from its newest backup. */
export type MigrationPlan =
  | { action: "migrate"; toHostId: string }
  | { action: "restore"; toHostId: string; backup: Backup };

/**
 * Moves VMs between hosts, keeping id, name, MACs and addresses (`vm migrate`, and each VM of
 * `host evacuate`). From an online host a stopped VM is migrated cold: its host copies the disk
 * into the shared store and the new host takes it over (two `vm.migrate` jobs, the second queued
 * by the first). From a lost host the disk cannot be read, so the VM is recreated from its newest
 * ready backup on the new host. The VM row is on the new host from the submit on (placement counts
 * it there); a migration that fails moves it back.
 */
export class VmMigrationService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  /** `POST /v1/vms/:ref/migrate`. */
  async migrate(ref: string, req: VmMigrateRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    const target = req.host === undefined ? undefined : await this.findHost(req.host);
    return this.submitMove(meta, (tx) => findVm(tx, ref), target?.id);
  }

  /**
   * Submits the move of one VM (found again inside the transaction): releases what a lost host's
   * dead jobs hold, plans, takes the VM's lock (and the backup's), puts the row on the new host
   * and writes the job. Refusals are IaasErrors saying why.
   */
  async submitMove(meta: RequestMeta, find: (tx: Tx) => Promise<Vm>, pinnedHost?: string): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      await lockPlacement(tx);
      let vm = await find(tx);
      const sourceState = await this.hostStateOf(tx, vm.hostId);
      if (sourceState === "lost" && (await releaseDeadJobs(tx, vm, `VM '${vm.name}' is being recreated on another host from its backup`)).length > 0) {
        vm = await tx.vm.findUniqueOrThrow({ where: { id: vm.id } });
      }
      // Planned before the lock is taken: the plan refuses a VM another job holds.
      const plan = await this.plan(tx, vm, sourceState, pinnedHost);
      vm = await lockVm(tx, vm, jobId);
      if (plan.action === "restore") await lockBackupFor(tx, plan.backup, jobId, "restore");
      await moveRows(tx, vm, plan.toHostId);
      const payload = { vmId: vm.id, fromHostId: vm.hostId, toHostId: plan.toHostId, ...(plan.action === "restore" ? { fromBackupId: plan.backup.id } : {}) };
      return {
        spec: {
          type: "vm.migrate",
          payload,
          // A cold migration starts on the VM's host, which reads the disk; a restore runs where the VM goes.
          hostId: plan.action === "migrate" ? vm.hostId : plan.toHostId,
          vmId: vm.id,
          imageId: vm.imageId,
          targetName: vm.name,
          projectId: vm.projectId,
        },
        extra: vm,
      };
    });
  }

  async hostStateOf(db: Tx | PrismaClient, hostId: string): Promise<HostState> {
    const age = await hostAge(db, hostId);
    return age === null ? "lost" : hostStateOf(age, this.hosts);
  }

  /**
   * How a VM can move, or an IaasError saying why it cannot: a VM on an online host must be
   * stopped; one on an offline host waits until the host returns or counts as lost; one on a lost
   * host needs a ready backup. The new host is placement's choice among the others (or `pinned`).
   */
  async plan(tx: Tx, vm: Vm, sourceState: HostState, pinned?: string): Promise<MigrationPlan> {
    const holder = vm.lockJobId === null ? null : await tx.job.findUnique({ where: { id: vm.lockJobId } });
    // A job of the lost host holding the VM never ends there: the move ends it (releaseDeadJobs).
    if (vm.lockJobId !== null && !(sourceState === "lost" && holder?.hostId === vm.hostId)) {
      throw new IaasError("VM_BUSY", `VM '${vm.name}' is busy: job ${vm.lockJobId}${holder ? ` (${holder.type}, ${holder.state})` : ""} holds it`, {
        hint: `wait for it: \`iaas job wait ${vm.lockJobId}\``,
        details: { jobId: vm.lockJobId },
      });
    }
    if (pinned === vm.hostId) throw new IaasError("VALIDATION_FAILED", `VM '${vm.name}' is on host '${vm.hostId}' already`, { hint: "name another host with --host, or leave --host out" });
    let backup: Backup | null = null;
    if (sourceState === "online") {
      if (vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' is ${vm.state}: a VM is migrated stopped`, { hint: `stop it first: \`iaas vm stop ${vm.name} --wait\`` });
      }
    } else if (sourceState === "offline") {
      const age = (await hostAge(tx, vm.hostId)) ?? 0;
      throw new IaasError("HOST_OFFLINE", `the host of VM '${vm.name}', '${vm.hostId}', is offline (no heartbeat for ${formatSilence(age)}), not lost yet (after ${formatSilence(this.hosts.lostAfterSeconds)}): its disk may come back`, {
        hint: `bring the worker of host '${vm.hostId}' back and retry, or wait until the host counts as lost (IAAS_HOST_LOST_SECONDS)`,
      });
    } else {
      if (vm.state === "deleting") {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' was being deleted when its host was lost`, { hint: `remove its records with \`iaas vm delete ${vm.name} --force\`` });
      }
      backup = await newestReadyBackup(tx, vm.id);
      if (!backup) {
        throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no backup; its disk is on the lost host '${vm.hostId}'`, {
          hint: `\`iaas vm delete ${vm.name} --force\` or wait for the host`,
        });
      }
      const image = await tx.image.findUniqueOrThrow({ where: { id: vm.imageId } });
      if (image.state !== "ready" || image.path === null) {
        throw new IaasError("IMAGE_NOT_READY", `the image of VM '${vm.name}', '${image.name}', is ${image.state}: the disk is made on it`, { hint: `check the image: \`iaas image show ${image.name}\`` });
      }
    }
    const toHostId = await this.placeElsewhere(tx, vm, pinned);
    return backup ? { action: "restore", toHostId, backup } : { action: "migrate", toHostId };
  }

  /** Placement's choice for the VM among the other hosts: room, networks, and its port forwards free there. */
  private async placeElsewhere(tx: Tx, vm: Vm, pinned?: string): Promise<string> {
    const nics = await tx.nic.findMany({ where: { vmId: vm.id }, include: { network: true, forwards: true } });
    const others = await tx.nic.findMany({ where: { networkId: { in: nics.map((n) => n.networkId) }, vmId: { not: vm.id } }, select: { networkId: true, vm: { select: { hostId: true } } } });
    const demands: NetworkDemand[] = nics.map((n) => ({
      network: n.network,
      request: { network: n.networkId },
      hostIds: [...new Set(others.filter((o) => o.networkId === n.networkId).map((o) => o.vm.hostId))],
    }));
    const forwards = nics.flatMap((n) => n.forwards);
    const taken = forwards.length === 0 ? [] : await tx.portForward.findMany({ where: { vmId: { not: vm.id }, OR: forwards.map((f) => ({ protocol: f.protocol, hostPort: f.hostPort })) } });
    const info = new Map((await tx.host.findMany({ select: { id: true, network: true } })).map((h) => [h.id, hostNetworkOf(h)]));
    const demand = {
      name: vm.name,
      cpus: vm.cpus,
      memoryBytes: Number(vm.memoryBytes),
      diskBytes: Number(vm.diskBytes),
      otherReasons: (hostId: string) => [
        ...networkReasons(hostId, info.get(hostId) ?? null, demands),
        ...taken.filter((t) => t.hostId === hostId).map((t) => `port ${t.protocol}/${t.hostPort} is forwarded there already`),
      ],
    };
    const hosts = (await loadHostCapacities(tx, this.hosts.offlineAfterSeconds)).filter((h) => h.id !== vm.hostId);
    return placeVm(hosts, demand, pinned).hostId;
  }

  private async findHost(ref: string): Promise<Host> {
    const host = await this.db.host.findFirst({ where: { OR: [{ id: ref }, { name: ref }] } });
    if (!host) throw new IaasError("NOT_FOUND", `host '${ref}' not found`, { hint: "`iaas host list` shows the hosts" });
    return host;
  }
}

/** The newest ready backup of a VM (the one a lost VM is recreated from). */
export async function newestReadyBackup(db: Tx | PrismaClient, vmId: string): Promise<Backup | null> {
  return db.backup.findFirst({ where: { vmId, state: "ready" }, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
}

/** Puts a VM's row, and its port forwards, on another host. */
export async function moveRows(tx: Tx, vm: Vm, toHostId: string): Promise<void> {
  await tx.vm.update({ where: { id: vm.id }, data: { hostId: toHostId } });
  await tx.portForward.updateMany({ where: { vmId: vm.id }, data: { hostId: toHostId } });
}

/**
 * Ends the unfinished jobs of a VM on its lost host (they can never run there): queued ones are
 * cancelled, running ones failed with HOST_LOST; their locks go with them. Returns their ids.
 */
export async function releaseDeadJobs(tx: Tx, vm: Vm, why: string): Promise<string[]> {
  const jobs = await tx.job.findMany({
    where: { state: { in: ["queued", "running"] }, OR: [{ vmId: vm.id, hostId: vm.hostId }, ...(vm.lockJobId ? [{ id: vm.lockJobId, hostId: vm.hostId }] : [])] },
    select: { id: true, state: true },
  });
  for (const job of jobs) {
    const error: JobError = {
      code: job.state === "queued" ? "JOB_CANCELLED" : "HOST_LOST",
      message: `host '${vm.hostId}' is lost: ${why}`,
      hint: `\`iaas vm show ${vm.name}\``,
    };
    await finishJobIn(tx, job.id, job.state === "queued" ? { state: "cancelled", error } : { state: "failed", error });
  }
  return jobs.map((j) => j.id);
}
