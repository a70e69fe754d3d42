import {
  BackupConfig,
  IaasError,
  looksLikeUuid,
  parseSize,
  type BackupRestoreRequest,
  type BackupVmCreateRequest,
  type NicRequest,
  type VmBackupRequest,
} from "@iaas/contracts";
import { enforceQuota } from "./ProjectService.js";
import { isUniqueViolation, type Backup, type Image, type Prisma, type PrismaClient, type Vm } from "@iaas/db";
import { inProject } from "../auth/scope.js";
import { lockPlacement, requireHostRoom } from "./hostCapacity.js";
import { requireUsableImage } from "./imageUsable.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { pickWorkHost } from "./pickWorkHost.js";
import { findVm } from "./resolve.js";
import { lockVm, parseMemory, requireHostOnline, type RequestMeta, type VmService } from "./VmService.js";
import type { HostThresholds } from "./hostLiveness.js";

type Tx = Prisma.TransactionClient;

/** A backup by id, or by a unique prefix of its id (at least 6 hex digits, as `backup list` prints). */
export async function findBackup(db: Tx | PrismaClient, ref: string): Promise<Backup> {
  const id = ref.toLowerCase();
  let found: Backup | null = null;
  if (looksLikeUuid(id)) found = await db.backup.findFirst({ where: { id, ...inProject() } });
  else if (/^[0-9a-f-]{6,35}$/.test(id)) {
    const matches = await db.$queryRaw<{ id: string }[]>`SELECT id::text AS id FROM "Backup" WHERE id::text LIKE ${`${id}%`} AND (${inProject().projectId ?? null}::uuid IS NULL OR "projectId" = ${inProject().projectId ?? null}::uuid) LIMIT 2`;
    if (matches.length > 1) throw new IaasError("VALIDATION_FAILED", `backup id prefix '${ref}' matches more than one backup`, { hint: "give more of the id (`iaas backup list`)" });
    found = matches[0] ? await db.backup.findFirst({ where: { id: matches[0].id, ...inProject() } }) : null;
  }
  if (!found) throw new IaasError("NOT_FOUND", `backup '${ref}' not found`, { hint: "run `iaas backup list` to see the backups" });
  return found;
}

/** What a backup records of its VM: enough to rebuild it (CPUs, memory, disk, image, NICs, cloud-init). */
export async function backupConfigOf(tx: Tx, vm: Vm): Promise<BackupConfig> {
  const image = await tx.image.findUniqueOrThrow({ where: { id: vm.imageId }, select: { id: true, name: true } });
  const nics = await tx.nic.findMany({ where: { vmId: vm.id }, include: { network: { select: { name: true } } }, orderBy: { index: "asc" } });
  return {
    cpus: vm.cpus,
    memoryBytes: Number(vm.memoryBytes),
    diskBytes: Number(vm.diskBytes),
    image,
    hostname: vm.hostname,
    sshKeys: vm.sshKeys,
    userData: vm.userData,
    nics: nics.map((n) => ({ index: n.index, network: n.network.name, networkId: n.networkId, mac: n.mac, ip: n.ip })),
  };
}

/** `--bwlimit 50M` (bytes per second) as the job's payload has it. */
function bandwidthOf(input: string | number | undefined): { bwlimit?: number } {
  if (input === undefined) return {};
  let bytes: number;
  try {
    bytes = typeof input === "number" ? input : parseSize(input, "M");
  } catch (err) {
    throw new IaasError("VALIDATION_FAILED", `invalid bwlimit: ${(err as Error).message}`, { hint: "give bytes per second like --bwlimit 50M" });
  }
  if (bytes < 64 * 1024) throw new IaasError("VALIDATION_FAILED", `bwlimit ${bytes} B/s is below 64 KiB/s`, { hint: "give bytes per second like --bwlimit 50M" });
  return { bwlimit: bytes };
}

/** Takes a backup's lock for a job that reads or removes it; a held one is BACKUP_IN_USE naming the job. */
async function lockBackup(tx: Tx, backup: Backup, jobId: string, verb: string): Promise<Backup> {
  if (backup.state !== "ready") {
    throw new IaasError("INVALID_STATE", `cannot ${verb} backup ${backup.id}: it is ${backup.state}`, {
      hint: backup.state === "creating" ? `wait for job ${backup.jobId}` : "choose a ready backup (`iaas backup list`)",
    });
  }
  const { count } = await tx.backup.updateMany({ where: { id: backup.id, lockJobId: null, state: "ready" }, data: { lockJobId: jobId } });
  if (count === 0) {
    const now = await tx.backup.findUniqueOrThrow({ where: { id: backup.id } });
    throw new IaasError("BACKUP_IN_USE", `backup ${backup.id} is in use by job ${now.lockJobId ?? "?"}`, {
      hint: `wait for it: \`iaas job wait ${now.lockJobId ?? ""}\``,
      ...(now.lockJobId ? { details: { jobId: now.lockJobId } } : {}),
    });
  }
  return tx.backup.findUniqueOrThrow({ where: { id: backup.id } });
}

/** Takes a backup's lock for a job that reads its whole chain, checked ready (a VM recreated from it). */
export async function lockBackupFor(tx: Tx, backup: Backup, jobId: string, verb: string): Promise<Backup> {
  const locked = await lockBackup(tx, backup, jobId, verb);
  await readyChain(tx, locked);
  return locked;
}

/** The ready chain a backup needs, itself first, then its parents (checked, so a restore never reads half a chain). */
async function readyChain(tx: Tx, backup: Backup): Promise<Backup[]> {
  const chain = [backup];
  for (let at = backup; at.parentId !== null; ) {
    const parent = await tx.backup.findUnique({ where: { id: at.parentId } });
    if (!parent || parent.state !== "ready") {
      throw new IaasError("INVALID_STATE", `backup ${backup.id} needs backup ${at.parentId}, which is ${parent ? parent.state : "gone"}`, {
        hint: "choose another backup (`iaas backup list`)",
      });
    }
    chain.push(parent);
    at = parent;
  }
  return chain;
}

/**
 * Backups of VMs: `vm backup` (live or stopped, full or incremental, or `--as-image`), verify,
 * delete, restore in place and a new VM from a backup. Rows are written with their job, under the
 * VM's lock (and the backup's, for jobs that read or remove one); workers do the copying.
 */
export class BackupService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly vms: VmService,
    private readonly hosts: HostThresholds,
  ) {}

  async backup(ref: string, req: VmBackupRequest & { scheduleId?: string }, meta: RequestMeta): Promise<Submitted<{ vm: Vm; backup: Backup | null; image: Image | null }>> {
    const bwlimit = bandwidthOf(req.bwlimit);
    return this.submitter.submit<{ vm: Vm; backup: Backup | null; image: Image | null }>(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      if (vm.state !== "running" && vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `cannot back up VM '${vm.name}': it is ${vm.state}`, { hint: `wait for it: \`iaas vm show ${vm.name}\`` });
      }
      await requireHostOnline(tx, vm, "back up", this.hosts);
      const spec = { type: "vm.backup" as const, hostId: vm.hostId, vmId: vm.id, targetName: vm.name };
      await enforceQuota(tx, vm.projectId, req.asImage !== undefined ? { images: 1 } : { backups: 1 });
      if (req.asImage !== undefined) {
        let image: Image;
        try {
          image = await tx.image.create({
            data: { projectId: vm.projectId, name: req.asImage, state: "importing", originType: "vm", originLocation: vm.name, description: `disk of VM '${vm.name}'`, lockJobId: jobId },
          });
        } catch (err) {
          if (isUniqueViolation(err, "name")) throw new IaasError("NAME_TAKEN", `an image named '${req.asImage}' already exists`, { hint: "choose another name for --as-image" });
          throw err;
        }
        return { spec: { ...spec, imageId: image.id, payload: { vmId: vm.id, imageId: image.id, ...bwlimit } }, extra: { vm, backup: null, image } };
      }
      // An incremental goes on the backup the disk's dirty bitmap counts from; without one it is full.
      const base = req.incremental && vm.backupBaseId ? await tx.backup.findFirst({ where: { id: vm.backupBaseId, state: "ready" } }) : null;
      const backup = await tx.backup.create({
        data: {
          projectId: vm.projectId,
          vmId: vm.id,
          vmName: vm.name,
          hostId: vm.hostId,
          kind: base ? "incremental" : "full",
          parentId: base?.id ?? null,
          live: vm.state === "running",
          diskBytes: vm.diskBytes,
          config: await backupConfigOf(tx, vm),
          keepLast: req.keepLast ?? null,
          scheduleId: req.scheduleId ?? null,
          jobId,
        },
      });
      const payload = { vmId: vm.id, backupId: backup.id, ...bwlimit, ...(req.keepLast !== undefined ? { keepLast: req.keepLast } : {}), ...(req.scheduleId ? { scheduleId: req.scheduleId } : {}) };
      return { spec: { ...spec, payload }, extra: { vm, backup, image: null } };
    });
  }

  /** Backups in the project (of one VM, by its name or id); `page` adds ordering and paging to the filter. */
  async list(vmRef: string | undefined, page: (where: Prisma.BackupWhereInput) => Prisma.BackupFindManyArgs): Promise<Backup[]> {
    let where: Prisma.BackupWhereInput = {};
    if (vmRef !== undefined) {
      const vm = await findVm(this.db, vmRef).catch(() => null);
      where = vm ? { vmId: vm.id } : looksLikeUuid(vmRef) ? { vmId: vmRef.toLowerCase() } : { vmName: vmRef };
    }
    return this.db.backup.findMany(page({ ...where, ...inProject() }));
  }

  async verify(ref: string, meta: RequestMeta): Promise<Submitted<Backup>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const backup = await lockBackup(tx, await findBackup(tx, ref), jobId, "verify");
      const hostId = await pickWorkHost(tx, this.hosts.offlineAfterSeconds);
      return { spec: { type: "backup.verify", payload: { backupId: backup.id }, hostId, vmId: backup.vmId, targetName: backup.vmName }, extra: backup };
    });
  }

  async remove(ref: string, meta: RequestMeta): Promise<Submitted<Backup>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const found = await findBackup(tx, ref);
      const children = await tx.backup.findMany({ where: { parentId: found.id }, select: { id: true } });
      if (children.length > 0) {
        throw new IaasError("BACKUP_IN_USE", `backup ${found.id} is the base of incremental backup${children.length > 1 ? "s" : ""} ${children.map((c) => c.id).join(", ")}`, {
          hint: "delete the incrementals first (newest first), or let retention (--keep-last) prune the chain",
        });
      }
      const { count } = await tx.backup.updateMany({ where: { id: found.id, lockJobId: null, state: "ready" }, data: { lockJobId: jobId, state: "deleting" } });
      if (count === 0) {
        throw new IaasError(found.lockJobId ? "BACKUP_IN_USE" : "INVALID_STATE", `cannot delete backup ${found.id}: ${found.lockJobId ? `job ${found.lockJobId} holds it` : `it is ${found.state}`}`, {
          hint: found.lockJobId ? `wait for it: \`iaas job wait ${found.lockJobId}\`` : `wait for job ${found.jobId}`,
        });
      }
      const hostId = await pickWorkHost(tx, this.hosts.offlineAfterSeconds);
      return { spec: { type: "backup.delete", payload: { backupId: found.id }, hostId, vmId: found.vmId, targetName: found.vmName }, extra: found };
    });
  }

  /** In place: the VM's disk becomes the backup's content; its CPUs and memory the backup's. */
  async restore(ref: string, req: BackupRestoreRequest, meta: RequestMeta): Promise<Submitted<{ vm: Vm; backup: Backup }>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      await lockPlacement(tx);
      const backup = await lockBackup(tx, await findBackup(tx, ref), jobId, "restore");
      await readyChain(tx, backup);
      const vm = await lockVm(tx, await findVm(tx, req.vm), jobId);
      if (vm.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' is ${vm.state}: a backup is restored into a stopped VM`, { hint: `stop it first: \`iaas vm stop ${vm.name} --wait\`` });
      }
      const snapshots = await tx.snapshot.findMany({ where: { vmId: vm.id }, select: { name: true } });
      if (snapshots.length > 0 && !req.discardSnapshots) {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' has snapshots (${snapshots.map((s) => s.name).join(", ")}) that live in the disk a restore replaces`, {
          hint: "pass --discard-snapshots to drop them with the old disk, or delete them first",
        });
      }
      const config = BackupConfig.parse(backup.config);
      // The restored disk is rebased on the VM's image.
      await requireUsableImage(tx, vm.imageId, `restore backup ${backup.id} into VM '${vm.name}'`);
      const host = await requireHostOnline(tx, vm, "restore", this.hosts);
      const more = { cpus: Math.max(0, config.cpus - vm.cpus), memoryBytes: Math.max(0, config.memoryBytes - Number(vm.memoryBytes)), diskBytes: Math.max(0, Number(backup.diskBytes) - Number(vm.diskBytes)) };
      await requireHostRoom(tx, host, { name: vm.name, ...more }, this.hosts.offlineAfterSeconds, `VM '${vm.name}' as backup ${backup.id} has it`);
      return {
        spec: { type: "vm.backup.restore", payload: { vmId: vm.id, backupId: backup.id, start: req.start }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: { vm, backup },
      };
    });
  }

  /** A new VM whose disk is the backup's content, with the backup's CPUs, memory, NICs and cloud-init unless told otherwise. */
  async createVm(ref: string, req: BackupVmCreateRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    const backup = await findBackup(this.db, ref);
    const config = BackupConfig.parse(backup.config);
    const imageRef = req.image ?? config.image.id;
    if (req.image === undefined && !(await this.db.image.findUnique({ where: { id: config.image.id } }))) {
      throw new IaasError("NOT_FOUND", `image '${config.image.name}' that backup ${backup.id} was taken on was deleted`, {
        hint: "base the new disk on another image: `iaas vm create NAME --from-backup ID --image IMAGE`",
      });
    }
    let memoryBytes = config.memoryBytes;
    try {
      if (req.memory !== undefined) memoryBytes = parseMemory(req.memory);
    } catch (err) {
      throw new IaasError("VALIDATION_FAILED", (err as Error).message, { hint: "give a size like --memory 1G" });
    }
    const networks = req.networks ?? (await this.recordedNics(config));
    return this.vms.create(
      {
        name: req.name,
        image: imageRef,
        cpus: req.cpus ?? config.cpus,
        memory: memoryBytes,
        disk: req.disk ?? Number(backup.diskBytes),
        ...(req.host !== undefined ? { host: req.host } : {}),
        start: req.start,
        dryRun: false,
        networks,
        sshKeys: config.sshKeys,
        ...(config.userData !== null ? { userData: config.userData } : {}),
      },
      meta,
      {
        minDiskBytes: Number(backup.diskBytes),
        lock: async (tx, jobId) => {
          const locked = await lockBackup(tx, await findBackup(tx, backup.id), jobId, "restore");
          await readyChain(tx, locked);
          return locked.id;
        },
      },
    );
  }

  /** The backup's NICs on networks that still exist, keeping a MAC and address when no one holds them now. */
  private async recordedNics(config: BackupConfig): Promise<NicRequest[]> {
    const nics: NicRequest[] = [];
    for (const nic of config.nics) {
      const network = await this.db.network.findFirst({ where: { id: nic.networkId, ...inProject() } });
      if (!network) {
        throw new IaasError("NOT_FOUND", `network '${nic.network}' the backup's VM was on no longer exists`, {
          hint: "give the new VM's networks with --network NAME (or --no-network)",
        });
      }
      const taken = await this.db.nic.findFirst({ where: { OR: [{ mac: nic.mac }, { networkId: network.id, ip: nic.ip }] } });
      nics.push(taken ? { network: network.name } : { network: network.name, ip: nic.ip, mac: nic.mac });
    }
    return nics;
  }
}
