import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { IaasError, type JobResult } from "@iaas/contracts";
import { createJobRow, toDbJobType, transitionVm, type Prisma, type Vm } from "@iaas/db";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { phaseProgress, type PhaseProgress } from "./phaseProgress.js";
import { diskFromBackup } from "./vmBackup.js";

type Ctx = HandlerContext<"vm.migrate">;
type Result = JobResult<"vm.migrate">;

/**
 * Moves a stopped VM to another host, keeping its id, name, MACs and addresses. The API put the
 * VM row (and its port forwards) on the new host when it took the VM's lock; this job makes the
 * disk be there, and a failure puts the row back:
 *
 * - cold, stage 1 (on the old host): the disk (with its internal snapshots and backup bitmap) is
 *   copied into the shared store, `transfers/migrate-<vmId>.qcow2`; then one transaction writes
 *   the queued stage-2 job for the new host and moves the VM's lock to it (the outbox relay
 *   enqueues it). The result names it (`nextJobId`), which `--wait` follows.
 * - cold, stage 2 (on the new host, `stagedDisk`): the file moves into the VM's directory and is
 *   pointed at this host's path of the image.
 * - from a backup (on the new host, `fromBackupId`; the old host is lost): the disk is made from
 *   the backup's chain; snapshot rows (they lived in the lost disk) and the bitmap base go.
 *
 * The old host's copy is removed by that host's OrphanCleaner (the row is on another host).
 */
export const vmMigrate: JobHandler<"vm.migrate"> = {
  async run(ctx) {
    const vm = await ctx.db.vm.findUnique({ where: { id: ctx.payload.vmId } });
    if (!vm) throw new IaasError("NOT_FOUND", `VM ${ctx.payload.vmId} no longer exists`, { hint: "run `iaas vm list`" });
    const expected = ctx.payload.fromBackupId !== undefined || ctx.payload.stagedDisk !== undefined ? ctx.payload.toHostId : ctx.payload.fromHostId;
    if (ctx.hostId !== expected) {
      throw new IaasError("INTERNAL", `this part of the migration of '${vm.name}' belongs on host '${expected}', not '${ctx.hostId}'`, { hint: "report this; the job was routed to the wrong queue" });
    }
    if (ctx.payload.fromBackupId !== undefined) return restoreFromBackup(ctx, vm, ctx.payload.fromBackupId);
    if (ctx.payload.stagedDisk !== undefined) return adoptStagedDisk(ctx, vm, ctx.payload.stagedDisk);
    return stageDisk(ctx, vm);
  },
  async settle(ctx) {
    const { vmId, fromHostId, stagedDisk, fromBackupId } = ctx.payload;
    const vm = await ctx.db.vm.findUnique({ where: { id: vmId } });
    // Nothing is ours any more when another job holds the VM (stage 1 handed it to stage 2).
    if (!vm || vm.lockJobId !== ctx.job.id) return;
    if (stagedDisk !== undefined || fromBackupId !== undefined) {
      // On the new host: what was made here is a copy (or made from a backup); the old host keeps the original.
      await ctx.runtime.removeFiles(vm.id);
    }
    await rm(path.join(ctx.imageStore, stagedDisk ?? stagedDiskOf(vmId)), { force: true });
    await rm(`${path.join(ctx.imageStore, stagedDiskOf(vmId))}.part`, { force: true });
    await ctx.db.$transaction(async (tx) => {
      await moveBack(tx, vm, fromHostId, ctx.job.id);
      if (fromBackupId !== undefined) await tx.backup.updateMany({ where: { id: fromBackupId, lockJobId: ctx.job.id }, data: { lockJobId: null } });
    });
    await ctx.note(`VM '${vm.name}' stays on host '${fromHostId}'`, "warn");
  },
  describe: (r) =>
    r.nextJobId
      ? `disk staged in the shared store; job ${r.nextJobId} takes it over on host '${r.hostId}'`
      : r.backupId
        ? `VM recreated on host '${r.hostId}' from backup ${r.backupId} taken ${r.backupAt ?? "?"}`
        : `VM moved from host '${r.fromHostId}' to host '${r.hostId}'`,
};

/** Where a migrating VM's disk waits in the shared store between its old host and its new one. */
export function stagedDiskOf(vmId: string): string {
  return path.join("transfers", `migrate-${vmId}.qcow2`);
}

const exists = (file: string) => stat(file).then(() => true, () => false);

/** Stage 1, on the old host: the disk into the shared store, then the stage-2 job with the VM's lock. */
async function stageDisk(ctx: Ctx, vm: Vm): Promise<Result> {
  const { fromHostId, toHostId } = ctx.payload;
  if (vm.lockJobId !== ctx.job.id) return handedOver(ctx, vm);
  if ((await ctx.runtime.runningPid(vm)) !== null) {
    throw new IaasError("INVALID_STATE", `QEMU of VM '${vm.name}' runs on host '${ctx.hostId}': a VM is migrated stopped`, { hint: `stop it: \`iaas vm stop ${vm.name} --wait\`, then migrate again` });
  }
  const staged = stagedDiskOf(vm.id);
  const target = path.join(ctx.imageStore, staged);
  if (!(await exists(target))) {
    const disk = ctx.runtime.files(vm.id).disk;
    const size = await stat(disk).then((s) => s.size, () => null);
    if (size === null) {
      throw new IaasError("NOT_FOUND", `the disk of VM '${vm.name}' is missing on host '${ctx.hostId}' (${disk})`, { hint: `look at \`iaas vm show ${vm.name}\`; restore it from a backup (\`iaas backup list --vm ${vm.name}\`)` });
    }
    await mkdir(path.dirname(target), { recursive: true });
    await ctx.progress({ phase: "copy", percent: 1, message: `disk of '${vm.name}' into the shared store for host '${toHostId}'` });
    await copyWithProgress(disk, target, phaseProgress(ctx.progress, "copy", size, { from: 1, to: 95 }), ctx.signal);
  }
  const nextJobId = randomUUID();
  await ctx.db.$transaction(async (tx) => {
    const actor = { name: ctx.job.actorName ?? "system", tokenId: ctx.job.actorTokenId, requestId: ctx.job.requestId };
    await createJobRow(tx, nextJobId, { type: "vm.migrate", payload: { ...ctx.payload, stagedDisk: staged }, hostId: toHostId, vmId: vm.id, imageId: vm.imageId, targetName: vm.name, projectId: vm.projectId }, { actor });
    const { count } = await tx.vm.updateMany({ where: { id: vm.id, lockJobId: ctx.job.id }, data: { lockJobId: nextJobId } });
    if (count === 0) throw new IaasError("VM_BUSY", `VM '${vm.name}' is no longer held by job ${ctx.job.id}`, { hint: `look at \`iaas job list --vm ${vm.name}\`` });
  });
  await ctx.note(`disk staged; host '${toHostId}' takes it over in job ${nextJobId}`);
  return { vmId: vm.id, state: "stopped", hostId: toHostId, fromHostId, nextJobId };
}

/** A redelivered stage 1 that handed the VM over already: the stage-2 job it wrote. */
async function handedOver(ctx: Ctx, vm: Vm): Promise<Result> {
  const next = await ctx.db.job.findFirst({
    where: { type: toDbJobType("vm.migrate"), vmId: vm.id, hostId: ctx.payload.toHostId, id: { not: ctx.job.id }, createdAt: { gte: ctx.job.createdAt } },
    orderBy: { createdAt: "asc" },
  });
  if (!next) {
    throw new IaasError("VM_BUSY", `VM '${vm.name}' is held by ${vm.lockJobId ? `job ${vm.lockJobId}` : "no job"}, not by this migration`, { hint: `look at \`iaas job list --vm ${vm.name}\`` });
  }
  return { vmId: vm.id, state: "stopped", hostId: ctx.payload.toHostId, fromHostId: ctx.payload.fromHostId, nextJobId: next.id };
}

/** Stage 2, on the new host: the staged file becomes the VM's disk. */
async function adoptStagedDisk(ctx: Ctx, vm: Vm, staged: string): Promise<Result> {
  const files = ctx.runtime.files(vm.id);
  const from = path.join(ctx.imageStore, staged);
  if (await exists(from)) {
    await mkdir(files.dir, { recursive: true });
    await ctx.progress({ phase: "copy", percent: 10, message: "taking the staged disk over from the shared store" });
    await rename(from, files.disk).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "EXDEV") throw err;
      const size = (await stat(from)).size;
      await copyWithProgress(from, files.disk, phaseProgress(ctx.progress, "copy", size, { from: 10, to: 90 }), ctx.signal);
      await rm(from, { force: true });
    });
  } else if (!(await ctx.runtime.diskExists(vm.id))) {
    throw new IaasError("NOT_FOUND", `the staged disk of VM '${vm.name}' is missing from the shared store (${from})`, {
      hint: `the VM stays on host '${ctx.payload.fromHostId}'; migrate it again: \`iaas vm migrate ${vm.name}\``,
    });
  }
  await pointAtLocalImage(ctx, vm);
  await transitionVm(ctx.db, vm.id, { to: "stopped", lock: ctx.job.id, from: ["stopped"], error: null });
  await ctx.note(`disk ${files.disk} in place; host '${ctx.payload.fromHostId}' removes its old copy when its worker next cleans up`);
  return { vmId: vm.id, state: "stopped", hostId: ctx.hostId, fromHostId: ctx.payload.fromHostId };
}

/** On the new host, from the newest ready backup (the old host is lost, its disk out of reach). */
async function restoreFromBackup(ctx: Ctx, vm: Vm, backupId: string): Promise<Result> {
  const backup = await ctx.db.backup.findUnique({ where: { id: backupId } });
  if (!backup) throw new IaasError("NOT_FOUND", `backup ${backupId} no longer exists`, { hint: `choose another: \`iaas backup list --vm ${vm.name}\`` });
  const taken = backup.createdAt.toISOString();
  if (!(await ctx.runtime.diskExists(vm.id))) {
    const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
    if (image.state !== "ready" || !image.path) throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is ${image.state}`, { hint: "the disk is made on it; import it again" });
    await mkdir(ctx.runtime.files(vm.id).dir, { recursive: true });
    await ctx.note(`host '${ctx.payload.fromHostId}' is lost: the disk is made from backup ${backup.id} taken ${taken}; what the VM wrote after it is lost with that host`, "warn");
    await diskFromBackup(ctx, vm, backup.id, path.join(ctx.imageStore, image.path));
  }
  await ctx.db.$transaction(async (tx) => {
    // Its snapshots lived in the lost disk, and the new disk has no change bitmap.
    await tx.snapshot.deleteMany({ where: { vmId: vm.id } });
    await tx.vm.updateMany({ where: { id: vm.id, lockJobId: ctx.job.id }, data: { backupBaseId: null } });
    await transitionVm(tx, vm.id, { to: "stopped", lock: ctx.job.id, pid: null, error: null });
    await tx.backup.updateMany({ where: { id: backup.id, lockJobId: ctx.job.id }, data: { lockJobId: null } });
  });
  return { vmId: vm.id, state: "stopped", hostId: ctx.hostId, fromHostId: ctx.payload.fromHostId, backupId: backup.id, backupAt: taken };
}

/**
 * The overlay names the image by the old host's path of the store; where this host mounts the
 * store elsewhere, the name is changed (`qemu-img rebase -u`: same image, no data touched).
 */
async function pointAtLocalImage(ctx: Ctx, vm: Vm): Promise<void> {
  const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
  if (!image.path) throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' has no file`, { hint: "import the image again" });
  const local = path.join(ctx.imageStore, image.path);
  const disk = ctx.runtime.files(vm.id).disk;
  const info = await ctx.qemuImg.info(disk, "qcow2");
  if (info.fullBackingFilename !== local) {
    await ctx.qemuImg.repoint(disk, local, "qcow2");
    await ctx.note(`the disk now names this host's copy of image '${image.name}' (${local}), not ${info.fullBackingFilename ?? "none"}`);
  }
}

/** Puts the VM row and its port forwards back on the old host, while this job still holds it. */
async function moveBack(tx: Prisma.TransactionClient, vm: Vm, fromHostId: string, jobId: string): Promise<void> {
  const { count } = await tx.vm.updateMany({ where: { id: vm.id, lockJobId: jobId }, data: { hostId: fromHostId } });
  if (count > 0) await tx.portForward.updateMany({ where: { vmId: vm.id }, data: { hostId: fromHostId } });
}

/** Copies a file to `${to}.part` with progress, flushes it to disk, then renames it to `to`. */
async function copyWithProgress(from: string, to: string, progress: PhaseProgress, signal: AbortSignal): Promise<void> {
  const part = `${to}.part`;
  await rm(part, { force: true });
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      progress.add(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(from), counter, createWriteStream(part), { signal });
    const handle = await open(part, "r+");
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await rm(part, { force: true });
    throw err;
  }
  await progress.finish();
  await rename(part, to);
}
