import {
  formatSize,
  IaasError,
  MIB,
  parseSize,
  type JobType,
  type VmCreateDryRun,
  type VmCreateRequest,
  type VmState,
  type VmStopRequest,
} from "@iaas/contracts";
import { enforceQuota, quotaVerdict } from "./ProjectService.js";
import { currentProjectId } from "../auth/scope.js";
import { isUniqueViolation, type Db, type Image, type Prisma, type PrismaClient, type Vm } from "@iaas/db";
import { parseSshKeys, validateHostname, validateUserData } from "@iaas/hypervisor";
import { hostNetworkOf } from "./dto.js";
import { allocateNic, networkReasons, resolveNicRequests, type NetworkDemand } from "./nicAllocation.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { loadHostCapacities, lockPlacement } from "./hostCapacity.js";
import { requireVmHostOnline, type HostThresholds } from "./hostLiveness.js";
import { placeVm, type VmDemand } from "./placement.js";
import { assertImageUsable } from "./imageUsable.js";
import { findImage, findVm } from "./resolve.js";

export type VmAction = "start" | "stop" | "reboot" | "delete";

const ACTION_RULES: Record<VmAction, { job: JobType; from: VmState[]; verb: string }> = {
  start: { job: "vm.start", from: ["stopped"], verb: "start" },
  stop: { job: "vm.stop", from: ["running", "error"], verb: "stop" },
  reboot: { job: "vm.reboot", from: ["running"], verb: "reboot" },
  delete: { job: "vm.delete", from: ["stopped", "running", "error", "creating"], verb: "delete" },
};

const MIN_MEMORY = 16 * MIB;

/** Reads a memory size: "512M", bytes, or a bare number of MiB (as QEMU's -m reads it). */
export function parseMemory(input: number | string): number {
  const bytes = typeof input === "number" ? (input < MIB ? input * MIB : input) : parseSize(input, "M");
  if (bytes < MIN_MEMORY) throw new RangeError(`memory ${formatSize(bytes)} is too small: at least 16 MiB`);
  if (bytes % MIB !== 0) throw new RangeError(`memory ${formatSize(bytes)} must be a whole number of MiB`);
  return bytes;
}

function validation(message: string, hint: string): IaasError {
  return new IaasError("VALIDATION_FAILED", message, { hint });
}

/** What a new VM takes of its project's quotas. */
export function quotaDemand(d: { cpus: number; memoryBytes: number; diskBytes: number }) {
  return { vms: 1, vcpus: d.cpus, memoryBytes: d.memoryBytes, diskBytes: d.diskBytes };
}

export interface RequestMeta {
  idempotencyKey?: string | undefined;
  hash: string;
}

/** A VM made from a backup: the disk must hold the backup, and the job holds the backup while it reads it. */
export interface FromBackup {
  minDiskBytes: number;
  /** Locks the backup for the job in the submitting transaction; returns its id. */
  lock(tx: Prisma.TransactionClient, jobId: string): Promise<string>;
}

export class VmService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  private async demandFor(tx: Prisma.TransactionClient | PrismaClient, req: VmCreateRequest): Promise<{ image: Image; demand: VmDemand }> {
    const image = await findImage(tx, req.image);
    assertImageUsable(image, `create VM '${req.name}'`);
    if (image.lockJobId !== null) {
      throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is busy: job ${image.lockJobId} holds it`, {
        hint: `wait for it with \`iaas job wait ${image.lockJobId}\``,
      });
    }
    let memoryBytes: number;
    let diskBytes: number;
    try {
      memoryBytes = parseMemory(req.memory);
      // A number is bytes (SizeInput); a bare number in a string is GiB, as the CLI's --disk reads it.
      diskBytes = req.disk === undefined ? Number(image.virtualSize) : typeof req.disk === "number" ? req.disk : parseSize(req.disk, "G");
    } catch (err) {
      throw validation((err as Error).message, "give sizes like --memory 512M --disk 2G");
    }
    if (diskBytes < Number(image.virtualSize)) {
      throw validation(
        `disk ${formatSize(diskBytes)} is smaller than image '${image.name}' (${formatSize(Number(image.virtualSize))})`,
        `use --disk ${formatSize(Number(image.virtualSize)).replace(" ", "").replace("iB", "")} or more, or leave --disk out`,
      );
    }
    return { image, demand: { name: req.name, cpus: req.cpus, memoryBytes, diskBytes } };
  }

  /** The NICs asked for, and a placement rule that keeps out hosts that cannot join their networks. */
  private async networkDemand(tx: Prisma.TransactionClient | PrismaClient, req: VmCreateRequest, demand: VmDemand): Promise<NetworkDemand[]> {
    const nics = await resolveNicRequests(tx as Prisma.TransactionClient, req.networks);
    const hosts = await tx.host.findMany({ select: { id: true, network: true } });
    const info = new Map(hosts.map((h) => [h.id, hostNetworkOf(h)]));
    demand.otherReasons = (hostId) => networkReasons(hostId, info.get(hostId) ?? null, nics);
    return nics;
  }

  async dryRun(req: VmCreateRequest): Promise<VmCreateDryRun> {
    const { image, demand } = await this.demandFor(this.db, req);
    await this.networkDemand(this.db, req, demand);
    const hosts = await loadHostCapacities(this.db, this.hosts.offlineAfterSeconds);
    const placement = placeVm(hosts, demand, req.host);
    const quota = await quotaVerdict(this.db, currentProjectId(), quotaDemand(demand));
    return { dryRun: true, name: req.name, imageId: image.id, cpus: demand.cpus, memoryBytes: demand.memoryBytes, diskBytes: demand.diskBytes, placement, quota };
  }

  async create(req: VmCreateRequest, meta: RequestMeta, fromBackup?: FromBackup): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      // Serialize placement so two concurrent creates cannot both take a host's last room.
      await lockPlacement(tx);
      const { image, demand } = await this.demandFor(tx, req);
      if (fromBackup && demand.diskBytes < fromBackup.minDiskBytes) {
        throw validation(`disk ${formatSize(demand.diskBytes)} is smaller than the backup's disk (${formatSize(fromBackup.minDiskBytes)})`, "leave --disk out, or give a larger one");
      }
      await enforceQuota(tx, currentProjectId(), quotaDemand(demand));
      const fromBackupId = fromBackup ? await fromBackup.lock(tx, jobId) : undefined;
      const guest = cloudInitOf(req);
      const nics = await this.networkDemand(tx, req, demand);
      const placement = placeVm(await loadHostCapacities(tx, this.hosts.offlineAfterSeconds), demand, req.host);
      let vm: Vm;
      try {
        vm = await tx.vm.create({
          data: {
            projectId: currentProjectId(),
            name: req.name,
            state: "creating",
            hostId: placement.hostId,
            imageId: image.id,
            cpus: demand.cpus,
            memoryBytes: BigInt(demand.memoryBytes),
            diskBytes: BigInt(demand.diskBytes),
            ...guest,
            lockJobId: jobId,
          },
        });
      } catch (err) {
        if (isUniqueViolation(err, "name")) {
          throw new IaasError("NAME_TAKEN", `a VM named '${req.name}' already exists`, {
            hint: "choose another name, or delete the old VM with `iaas vm delete`",
          });
        }
        throw err;
      }
      for (const [index, nic] of nics.entries()) await allocateNic(tx, vm.id, index, nic.network, nic.request);
      return {
        spec: { type: "vm.create", payload: { vmId: vm.id, start: req.start, ...(fromBackupId ? { fromBackupId } : {}) }, hostId: vm.hostId, vmId: vm.id, imageId: image.id, targetName: vm.name },
        extra: vm,
      };
    });
  }

  /**
   * Start, stop, reboot or delete: the job, its first event and the VM's lock are one statement
   * (the hot path). A refused lock is explained afterwards: VM_BUSY naming the holder,
   * INVALID_STATE, or HOST_OFFLINE / HOST_LOST.
   */
  async act(ref: string, action: VmAction, meta: RequestMeta, stop?: VmStopRequest): Promise<Submitted<Vm>> {
    const rule = ACTION_RULES[action];
    const vm = await findVm(this.db, ref);
    const payload =
      action === "stop"
        ? { vmId: vm.id, force: stop?.force ?? false, timeoutSeconds: stop?.timeoutSeconds ?? 60 }
        : { vmId: vm.id };
    const spec = { type: rule.job, payload, hostId: vm.hostId, vmId: vm.id, targetName: vm.name } as const;
    const submitted = await this.submitter.submitDirect(meta, spec, {
      from: rule.from,
      onlineWithinSeconds: this.hosts.offlineAfterSeconds,
      refused: () => this.whyRefused(vm.id, action),
    });
    return { ...submitted, extra: submitted.replayed ? null : { ...vm, lockJobId: submitted.job.id, hostId: submitted.job.hostId ?? vm.hostId } };
  }

  /** Why a VM's lock was refused, as the error the user gets; returns when nothing is in the way any more. */
  private async whyRefused(vmId: string, action: VmAction): Promise<void> {
    const rule = ACTION_RULES[action];
    const vm = await findVm(this.db, vmId);
    if (vm.lockJobId !== null) await throwBusy(this.db, vm);
    if (!rule.from.includes(vm.state)) {
      throw new IaasError("INVALID_STATE", `cannot ${rule.verb} VM '${vm.name}': it is ${vm.state}`, {
        hint: stateHint(action, vm.state, vm.name),
      });
    }
    await requireVmHostOnline(this.db, vm, rule.verb, this.hosts);
  }
}

/**
 * Refuses to act on a VM whose host is offline (its worker would never take the job): HOST_OFFLINE,
 * or HOST_LOST past IAAS_HOST_LOST_SECONDS (database clock). Answers the host.
 */
export async function requireHostOnline(tx: Prisma.TransactionClient, vm: Vm, verb: string, hosts: HostThresholds) {
  await requireVmHostOnline(tx, vm, verb, hosts);
  return tx.host.findUniqueOrThrow({ where: { id: vm.hostId } });
}

/** The cloud-init settings of a create request, checked: host name, SSH keys, user-data. */
function cloudInitOf(req: VmCreateRequest): { hostname: string; sshKeys: string[]; userData: string | null } {
  return {
    hostname: validateHostname(req.hostname ?? req.name),
    sshKeys: (req.sshKeys ?? []).flatMap((key, i) => parseSshKeys(key, `sshKeys[${i}]`)),
    userData: req.userData === undefined ? null : validateUserData(req.userData),
  };
}

/**
 * Takes a VM's lock for `jobId` (one job at a time changes a VM) and returns the VM as it is under
 * the lock; a VM another job holds is VM_BUSY naming that job.
 */
export async function lockVm(tx: Prisma.TransactionClient, vm: Vm, jobId: string): Promise<Vm> {
  const { count } = await tx.vm.updateMany({ where: { id: vm.id, lockJobId: null }, data: { lockJobId: jobId } });
  if (count === 0) await throwBusy(tx, await tx.vm.findUniqueOrThrow({ where: { id: vm.id } }));
  return tx.vm.findUniqueOrThrow({ where: { id: vm.id } });
}

async function throwBusy(tx: Db, vm: Vm): Promise<never> {
  const holder = vm.lockJobId ? await tx.job.findUnique({ where: { id: vm.lockJobId } }) : null;
  const jobId = holder?.id ?? vm.lockJobId ?? "unknown";
  throw new IaasError(
    "VM_BUSY",
    `VM '${vm.name}' is busy: job ${jobId}${holder ? ` (${holder.type}, ${holder.state})` : ""} holds it`,
    { hint: `wait for that job with \`iaas job wait ${jobId}\`, then retry`, details: { jobId } },
  );
}

function stateHint(action: VmAction, state: VmState, name: string): string {
  if (action === "start" && state === "running") return `it is already running; see its console with \`iaas vm console ${name}\``;
  if (action === "stop" && state === "stopped") return "it is already stopped";
  if (action === "reboot" && state === "stopped") return `start it instead: \`iaas vm start ${name}\``;
  return `see its state with \`iaas vm show ${name}\``;
}
