import { chown, mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { BackupConfig, retentionPlan, formatSize, IaasError } from "@iaas/contracts";
import type { Backup, Vm } from "@iaas/db";
import { BACKUP_BITMAP, dirtyBitmaps, runDriveBackup, withBlockNode, type DriveBackupOptions, type QmpClient } from "@iaas/hypervisor";
import type { HandlerContext, JobHandler, WorkerServices } from "../jobs/HandlerContext.js";
import { hashFile } from "./hashFile.js";
import { phaseProgress, type PhaseProgress } from "./phaseProgress.js";
import { startVm } from "./vmPower.js";
import { loadVm, settleVm } from "./vmState.js";

/** The VM's disk as QEMU names it (`-drive … node-name=fmt-disk0`). */
const DISK_NODE = "fmt-disk0";

/** Where a backup lives, relative to the store: one directory per VM, so an incremental names its parent by file name. */
export function backupFile(vmId: string, backupId: string): string {
  return path.join("backups", vmId, `${backupId}.qcow2`);
}

function vmGone(id: string): IaasError {
  return new IaasError("NOT_FOUND", `VM ${id} no longer exists`, { hint: "run `iaas vm list`" });
}

/** The chain a backup is read through: itself, then each parent; every file present. */
async function chainOf(services: WorkerServices, backup: Backup): Promise<Backup[]> {
  const chain = [backup];
  for (let at = backup; at.parentId !== null; ) {
    const parent = await services.db.backup.findUnique({ where: { id: at.parentId } });
    if (!parent || !parent.path) {
      throw new IaasError("BACKUP_CORRUPT", `backup ${backup.id} needs backup ${at.parentId}, which is ${parent ? parent.state : "gone"}`, { hint: "choose another backup (`iaas backup list`)" });
    }
    chain.push(parent);
    at = parent;
  }
  return chain;
}

/** The store path of a backup's top file, checked to exist. */
async function readablePath(services: WorkerServices, backup: Backup): Promise<string> {
  if (!backup.path) throw new IaasError("INVALID_STATE", `backup ${backup.id} has no file (it is ${backup.state})`, { hint: "choose a ready backup" });
  for (const b of await chainOf(services, backup)) {
    const file = path.join(services.imageStore, b.path ?? "");
    if (!(await stat(file).then(() => true, () => false))) {
      throw new IaasError("BACKUP_CORRUPT", `the file of backup ${b.id} is missing from the store (${file})`, { hint: `run \`iaas backup verify ${backup.id}\`; choose another backup` });
    }
  }
  return path.join(services.imageStore, backup.path);
}

/** Whether the disk's dirty bitmap can be trusted for an incremental, and removes one that cannot. */
async function usableBitmap(ctx: HandlerContext<"vm.backup">, vm: Vm, qmp: QmpClient | null): Promise<"usable" | "none"> {
  const disk = ctx.runtime.files(vm.id).disk;
  if (qmp) {
    const bitmap = (await dirtyBitmaps(qmp, DISK_NODE)).find((b) => b.name === BACKUP_BITMAP);
    if (!bitmap) return "none";
    if (!bitmap.inconsistent) return "usable";
    await qmp.execute("block-dirty-bitmap-remove", { node: DISK_NODE, name: BACKUP_BITMAP });
  } else {
    const bitmap = (await ctx.qemuImg.info(disk, "qcow2")).bitmaps.find((b) => b.name === BACKUP_BITMAP);
    if (!bitmap) return "none";
    if (!bitmap.flags.includes("in-use")) return "usable";
    await ctx.qemuImg.bitmap("remove", disk, BACKUP_BITMAP);
  }
  await ctx.note("the disk's change bitmap was not saved cleanly (QEMU did not shut down cleanly): it was dropped", "warn");
  return "none";
}

/** Removes the change bitmap from a VM's disk (before its content is replaced: snapshots and restores). */
export async function dropBackupBitmap(services: WorkerServices, vm: Vm, running: boolean): Promise<void> {
  const disk = services.runtime.files(vm.id).disk;
  if (running) {
    await services.runtime.qmp(vm.id, async (q) => {
      if ((await dirtyBitmaps(q, DISK_NODE)).some((b) => b.name === BACKUP_BITMAP)) await q.execute("block-dirty-bitmap-remove", { node: DISK_NODE, name: BACKUP_BITMAP });
    });
  } else if ((await services.qemuImg.info(disk, "qcow2")).bitmaps.some((b) => b.name === BACKUP_BITMAP)) {
    await services.qemuImg.bitmap("remove", disk, BACKUP_BITMAP);
  }
  await services.db.vm.update({ where: { id: vm.id }, data: { backupBaseId: null } });
}

interface Copied {
  bytes: number;
  kind: "full" | "incremental";
}

/**
 * Copies the disk into `part`: a full backup (the whole disk, self-contained), or an incremental
 * (the clusters the dirty bitmap marks, in a qcow2 on the parent's file). Running VM: QMP
 * drive-backup in its QEMU; stopped VM: `qemu-img convert` for a full, a machine-less QEMU for an
 * incremental. A full one starts the bitmap anew at the instant it copies.
 */
async function copyDisk(ctx: HandlerContext<"vm.backup">, vm: Vm, part: string, parent: Backup | null, progress: PhaseProgress, withBitmap: boolean): Promise<Copied> {
  const disk = ctx.runtime.files(vm.id).disk;
  const running = (await ctx.runtime.runningPid(vm)) !== null;
  const virtualSize = (await ctx.qemuImg.info(disk, "qcow2", { allowShared: true })).virtualSize;
  const onProgress = (done: number) => progress.at(done);
  const speed = ctx.payload.bwlimit !== undefined ? { speed: ctx.payload.bwlimit } : {};
  // QEMU opens the drive-backup target by path while it runs, no longer as root when it runs as
  // IAAS_QEMU_USER: the `.part` qemu-img made is lent to that user for the copy (and the store's
  // directories down to it made searchable), then taken back so the finished file is not left
  // writable by the account every VM's QEMU shares. No-ops when QEMU runs as the worker's user.
  const backupInto = async (qmp: QmpClient, opts: Omit<DriveBackupOptions, "node" | "target">) => {
    await ctx.runtime.giveToQemu(part, ctx.imageStore);
    try {
      return await runDriveBackup(qmp, { node: DISK_NODE, target: part, ...opts });
    } finally {
      await ctx.runtime.takeFromQemu(part);
    }
  };
  const drive = async (qmp: QmpClient): Promise<Copied> => {
    let bitmap: "usable" | "none" = withBitmap ? await usableBitmap(ctx, vm, qmp) : "none";
    if (parent && bitmap === "usable") {
      await ctx.qemuImg.createOnSibling(part, path.basename(parent.path ?? ""), virtualSize);
      const r = await backupInto(qmp, { sync: { mode: "incremental" }, signal: ctx.signal, onProgress, ...speed });
      return { bytes: r.bytes, kind: "incremental" };
    }
    if (parent) await ctx.note("no usable change bitmap on the disk: taking a full backup instead of an incremental", "warn");
    await ctx.qemuImg.create(part, "qcow2", virtualSize);
    const sync: DriveBackupOptions["sync"] = { mode: "full", bitmap: !withBitmap ? "none" : bitmap === "usable" ? "clear" : "add" };
    bitmap = "none";
    const r = await backupInto(qmp, { sync, signal: ctx.signal, onProgress, ...speed });
    return { bytes: r.bytes, kind: "full" };
  };
  if (running) {
    await ctx.note(`live backup of the running VM (QMP drive-backup${withBitmap ? ", change bitmap" : ""})`);
    return ctx.runtime.qmp(vm.id, drive);
  }
  if (parent && withBitmap && (await usableBitmap(ctx, vm, null)) === "usable") {
    await ctx.note("incremental backup of the stopped VM's disk (QEMU without a machine reads its change bitmap)");
    // That QEMU is confined like the VM's (sandbox, IAAS_QEMU_USER): it writes the disk's bitmap
    // and its QMP socket goes in the VM's directory, both given to the QEMU user as at VM start.
    const dir = ctx.runtime.files(vm.id).dir;
    const user = ctx.runtime.qemuUser;
    if (user !== undefined) for (const file of [dir, disk]) await chown(file, user.uid, user.gid);
    return withBlockNode({ binary: ctx.runtime.config.qemuBinary, disk, qmpSocket: path.join(dir, "backup-qmp.sock"), node: DISK_NODE, signal: ctx.signal, user }, drive);
  }
  if (parent) await ctx.note("no usable change bitmap on the disk: taking a full backup instead of an incremental", "warn");
  await ctx.note("backup of the stopped VM's disk (qemu-img convert)");
  await ctx.qemuImg.convert(disk, "qcow2", part, "qcow2", { signal: ctx.signal, ...(ctx.payload.bwlimit !== undefined ? { rateLimit: ctx.payload.bwlimit } : {}), onProgress: (percent) => progress.at((percent / 100) * virtualSize) });
  if (withBitmap) {
    // From now on the disk's writes are counted for the next incremental.
    const bitmaps = (await ctx.qemuImg.info(disk, "qcow2")).bitmaps;
    if (bitmaps.some((b) => b.name === BACKUP_BITMAP)) await ctx.qemuImg.bitmap("remove", disk, BACKUP_BITMAP);
    await ctx.qemuImg.bitmap("add", disk, BACKUP_BITMAP);
  }
  return { bytes: virtualSize, kind: "full" };
}

/**
 * Applies a retention of `keepLast` to the VM's backups: a kept incremental whose parent would go
 * is first made a self-contained (synthetic full) file, then the older backups go, newest first.
 * A backup another job is reading stays, and so does what it builds on.
 */
async function prune(ctx: HandlerContext<"vm.backup">, vmId: string, keepLast: number): Promise<string[]> {
  const ready = await ctx.db.backup.findMany({ where: { vmId, state: "ready" } });
  const plan = retentionPlan(ready, keepLast);
  const spared = new Set<string>();
  const spare = (b: Backup) => {
    for (let at: Backup | undefined = b; at && !spared.has(at.id); at = ready.find((r) => r.id === at?.parentId)) spared.add(at.id);
  };
  for (const b of plan.flatten) {
    if (b.lockJobId !== null) {
      await ctx.note(`retention keeps the chain of backup ${b.id}: job ${b.lockJobId} is reading it`, "warn");
      spare(b);
      continue;
    }
    await flatten(ctx, b);
  }
  const pruned: string[] = [];
  for (const b of plan.prune) {
    if (spared.has(b.id)) continue;
    const { count } = await ctx.db.backup.updateMany({ where: { id: b.id, lockJobId: null, state: "ready" }, data: { state: "deleting", lockJobId: ctx.job.id } });
    if (count === 0) {
      await ctx.note(`retention kept backup ${b.id}: job ${b.lockJobId ?? "?"} is using it`, "warn");
      spare(b);
      continue;
    }
    if (b.path) await rm(path.join(ctx.imageStore, b.path), { force: true });
    await ctx.db.vm.updateMany({ where: { backupBaseId: b.id }, data: { backupBaseId: null } });
    await ctx.db.backup.delete({ where: { id: b.id } });
    pruned.push(b.id);
  }
  if (pruned.length > 0) await ctx.note(`retention (keep the last ${keepLast}): removed ${pruned.length} older backup${pruned.length > 1 ? "s" : ""}`);
  return pruned;
}

/** Makes an incremental self-contained: its chain read through into one qcow2 under the same name (a synthetic full). */
async function flatten(ctx: HandlerContext<"vm.backup">, b: Backup): Promise<void> {
  const file = await readablePath(ctx, b);
  const part = `${file}.flat`;
  await rm(part, { force: true });
  try {
    await ctx.qemuImg.convert(file, "qcow2", part, "qcow2", { signal: ctx.signal });
    const sizeBytes = (await stat(part)).size;
    const sha256 = await hashFile(part, undefined, ctx.signal);
    await rename(part, file);
    await ctx.db.backup.update({ where: { id: b.id }, data: { kind: "full", parentId: null, sizeBytes: BigInt(sizeBytes), sha256 } });
  } finally {
    await rm(part, { force: true });
  }
  await ctx.note(`backup ${b.id} made self-contained (its older chain is pruned)`);
}

async function asImage(ctx: HandlerContext<"vm.backup">, vm: Vm, imageId: string) {
  const relative = path.join("images", `${imageId}.qcow2`);
  const target = path.join(ctx.imageStore, relative);
  const part = `${target}.part`;
  await mkdir(path.dirname(target), { recursive: true });
  await rm(part, { force: true });
  const progress = phaseProgress(ctx.progress, "copy", Number(vm.diskBytes), { from: 2, to: 85 });
  const copied = await copyDisk(ctx, vm, part, null, progress, false);
  await progress.finish();
  const sizeBytes = (await stat(part)).size;
  const sha256 = await hashFile(part, phaseProgress(ctx.progress, "checksum", sizeBytes, { from: 85, to: 100 }), ctx.signal);
  const info = await ctx.qemuImg.info(part, "qcow2");
  await rename(part, target);
  await ctx.db.image.update({
    where: { id: imageId },
    data: { state: "ready", path: relative, sourceFormat: "qcow2", virtualSize: BigInt(info.virtualSize), storedSize: BigInt(sizeBytes), sha256, storedSha256: sha256, checkedAt: new Date() },
  });
  return { vmId: vm.id, backupId: null, imageId, kind: "full" as const, live: copied.bytes > 0 && vm.state === "running", sizeBytes, bytesCopied: copied.bytes, sha256, pruned: [] };
}

/**
 * `vm backup`: a point-in-time copy of the VM's disk into the shared store, live or stopped, full
 * or incremental on the backup the disk's change bitmap counts from, checksummed; then retention.
 * `--as-image` stores the copy as a new image instead.
 */
export const vmBackup: JobHandler<"vm.backup"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw vmGone(ctx.payload.vmId);
    if (ctx.payload.imageId) return asImage(ctx, vm, ctx.payload.imageId);
    const backup = await ctx.db.backup.findUnique({ where: { id: ctx.payload.backupId ?? "" } });
    if (!backup) throw new IaasError("NOT_FOUND", `backup ${ctx.payload.backupId ?? "?"} no longer exists`, { hint: "run `iaas backup list`" });
    const result = (b: Backup, pruned: string[]) => ({
      vmId: vm.id,
      backupId: b.id,
      imageId: null,
      kind: b.kind,
      live: b.live,
      sizeBytes: Number(b.sizeBytes ?? 0),
      bytesCopied: Number(b.bytesCopied ?? 0),
      sha256: b.sha256 ?? "",
      pruned,
    });
    if (backup.state === "ready") return result(backup, []);
    const relative = backupFile(vm.id, backup.id);
    const target = path.join(ctx.imageStore, relative);
    const part = `${target}.part`;
    await mkdir(path.dirname(target), { recursive: true });
    await rm(part, { force: true });
    const parent = backup.parentId ? await ctx.db.backup.findFirst({ where: { id: backup.parentId, state: "ready" } }) : null;
    // A full backup restarts the change bitmap: until it is done, no backup is the base of the next.
    if (!parent) await ctx.db.vm.update({ where: { id: vm.id }, data: { backupBaseId: null } });
    const progress = phaseProgress(ctx.progress, "copy", Number(vm.diskBytes), { from: 2, to: 85 });
    const copied = await copyDisk(ctx, vm, part, parent, progress, true);
    await progress.finish();
    const sizeBytes = (await stat(part)).size;
    const sha256 = await hashFile(part, phaseProgress(ctx.progress, "checksum", sizeBytes, { from: 85, to: 98 }), ctx.signal);
    await rename(part, target);
    const done = await ctx.db.$transaction(async (tx) => {
      const b = await tx.backup.update({
        where: { id: backup.id },
        data: {
          state: "ready",
          path: relative,
          kind: copied.kind,
          parentId: copied.kind === "incremental" ? (parent?.id ?? null) : null,
          sizeBytes: BigInt(sizeBytes),
          bytesCopied: BigInt(copied.bytes),
          sha256,
          finishedAt: new Date(),
        },
      });
      await tx.vm.update({ where: { id: vm.id }, data: { backupBaseId: b.id } });
      return b;
    });
    await ctx.note(`${copied.kind} backup ${done.id}: copied ${formatSize(copied.bytes)}, file ${formatSize(sizeBytes)}, sha256 ${sha256}`);
    const pruned = ctx.payload.keepLast !== undefined ? await prune(ctx, vm.id, ctx.payload.keepLast) : [];
    return result(done, pruned);
  },
  async settle(ctx, error) {
    if (ctx.payload.imageId) {
      const target = path.join(ctx.imageStore, "images", `${ctx.payload.imageId}.qcow2`);
      await Promise.all([rm(target, { force: true }), rm(`${target}.part`, { force: true })]);
      await ctx.db.image.deleteMany({ where: { id: ctx.payload.imageId, state: "importing" } });
    } else if (ctx.payload.backupId) {
      const target = path.join(ctx.imageStore, backupFile(ctx.payload.vmId, ctx.payload.backupId));
      const row = await ctx.db.backup.findUnique({ where: { id: ctx.payload.backupId } });
      if (row && row.state !== "ready") {
        // A backup not taken leaves nothing: no file, no row (the job keeps the error).
        await Promise.all([rm(target, { force: true }), rm(`${target}.part`, { force: true })]);
        await ctx.db.backup.delete({ where: { id: row.id } });
      }
    }
    await settleVm(ctx, error);
  },
  describe: (r) =>
    r.imageId ? `image made from the VM's disk: ${formatSize(r.sizeBytes)}` : `${r.kind} backup ${r.backupId ?? ""}: copied ${formatSize(r.bytesCopied)}, file ${formatSize(r.sizeBytes)}${r.pruned.length ? `, pruned ${r.pruned.length}` : ""}`,
};

/**
 * `backup restore ID VM`: the stopped VM's disk becomes a new overlay on its image holding the
 * backup's content (made on the backup's chain, then rebased onto the image; the image is only
 * read), its CPUs and memory the backup's. Its snapshots went with the old disk; the change
 * bitmap too, so its next backup is full.
 */
export const vmBackupRestore: JobHandler<"vm.backup.restore"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw vmGone(ctx.payload.vmId);
    const backup = await ctx.db.backup.findUniqueOrThrow({ where: { id: ctx.payload.backupId } });
    const config = BackupConfig.parse(backup.config);
    if ((await ctx.runtime.runningPid(vm)) !== null) {
      throw new IaasError("INVALID_STATE", `VM '${vm.name}' is running: a backup is restored into a stopped VM`, { hint: `stop it first: \`iaas vm stop ${vm.name} --wait\`` });
    }
    const source = await readablePath(ctx, backup);
    const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
    if (image.state !== "ready" || !image.path) throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' of VM '${vm.name}' is ${image.state}`, { hint: "import the image again" });
    const files = ctx.runtime.files(vm.id);
    const part = `${files.disk}.restore`;
    await rm(part, { force: true });
    await ctx.progress({ phase: "restore", percent: 10, message: `backup ${backup.id} onto image '${image.name}'` });
    await ctx.qemuImg.overlayFromChain(source, part, path.join(ctx.imageStore, image.path), "qcow2", { signal: ctx.signal });
    await rename(part, files.disk);
    await ctx.db.$transaction([
      ctx.db.snapshot.deleteMany({ where: { vmId: vm.id } }),
      ctx.db.vm.update({ where: { id: vm.id }, data: { cpus: config.cpus, memoryBytes: BigInt(config.memoryBytes), diskBytes: backup.diskBytes, backupBaseId: null } }),
    ]);
    await ctx.note(`disk replaced by backup ${backup.id} (taken ${backup.createdAt.toISOString()}); CPUs ${config.cpus}, memory ${formatSize(config.memoryBytes)}`);
    if (!ctx.payload.start) return { vmId: vm.id, state: "stopped", backupId: backup.id };
    await startVm(ctx, await ctx.db.vm.findUniqueOrThrow({ where: { id: vm.id } }), 70);
    return { vmId: vm.id, state: "running", backupId: backup.id };
  },
  async settle(ctx, error) {
    await rm(`${ctx.runtime.files(ctx.payload.vmId).disk}.restore`, { force: true });
    await settleVm(ctx, error);
  },
  describe: (r) => `VM restored from backup ${r.backupId} (${r.state})`,
};

/** The disk of a new VM made from a backup: a new overlay on its image with the backup's content. */
export async function diskFromBackup(
  ctx: WorkerServices & Pick<HandlerContext<"vm.create">, "progress" | "signal">,
  vm: Vm,
  backupId: string,
  imagePath: string,
): Promise<void> {
  const backup = await ctx.db.backup.findUniqueOrThrow({ where: { id: backupId } });
  const source = await readablePath(ctx, backup);
  const disk = ctx.runtime.files(vm.id).disk;
  const part = `${disk}.part`;
  await rm(part, { force: true });
  await ctx.progress({ phase: "restore", percent: 10, message: `disk from backup ${backup.id} of '${backup.vmName}'` });
  await ctx.qemuImg.overlayFromChain(source, part, imagePath, "qcow2", { signal: ctx.signal });
  if (Number(vm.diskBytes) > Number(backup.diskBytes)) await ctx.qemuImg.resize(part, "qcow2", Number(vm.diskBytes));
  await rename(part, disk);
}

/**
 * `backup verify`: each file of the backup's chain is there, has the sha256 recorded when it was
 * taken, passes `qemu-img check`, and an incremental's backing file is its parent's file.
 */
export const backupVerify: JobHandler<"backup.verify"> = {
  async run(ctx) {
    const backup = await ctx.db.backup.findUniqueOrThrow({ where: { id: ctx.payload.backupId } });
    const chain = await chainOf(ctx, backup);
    const total = chain.reduce((n, b) => n + Number(b.sizeBytes ?? 0), 0);
    const progress = phaseProgress(ctx.progress, "checksum", total, { from: 0, to: 95 });
    const checked: { id: string; sha256: string; sizeBytes: number }[] = [];
    for (const [i, b] of chain.entries()) {
      const file = path.join(ctx.imageStore, b.path ?? "");
      const size = await stat(file).then((s) => s.size, () => null);
      if (size === null) throw new IaasError("BACKUP_CORRUPT", `the file of backup ${b.id} is missing (${file})`, { hint: "the backup cannot be restored; delete it and take a new one" });
      const sha256 = await hashFile(file, progress, ctx.signal);
      if (sha256 !== b.sha256) {
        throw new IaasError("BACKUP_CORRUPT", `backup ${b.id} changed since it was taken: sha256 is ${sha256}, recorded ${b.sha256 ?? "none"}`, {
          hint: "the backup cannot be trusted; delete it and take a new full one",
        });
      }
      const check = await ctx.qemuImg.check(file, "qcow2", { signal: ctx.signal });
      if (!check.ok) throw new IaasError("BACKUP_CORRUPT", `qemu-img check found ${check.corruptions} corruption(s) in backup ${b.id}`, { hint: "delete it and take a new full one" });
      const info = await ctx.qemuImg.info(file, "qcow2");
      const parent = chain[i + 1];
      const expected = parent ? path.basename(parent.path ?? "") : null;
      if (info.backingFilename !== expected) {
        throw new IaasError("BACKUP_CORRUPT", `backup ${b.id} is on '${info.backingFilename ?? "nothing"}', not on ${expected ? `its parent's file ${expected}` : "nothing (a full backup)"}`, {
          hint: "the chain is broken; delete it and take a new full backup",
        });
      }
      checked.push({ id: b.id, sha256, sizeBytes: size });
    }
    await progress.finish();
    await ctx.db.backup.updateMany({ where: { id: { in: chain.map((b) => b.id) } }, data: { verifiedAt: new Date() } });
    return { backupId: backup.id, chain: checked };
  },
  describe: (r) => `backup ${r.backupId} verified: ${r.chain.length} file${r.chain.length > 1 ? "s" : ""}, checksums and chain intact`,
};

export const backupDelete: JobHandler<"backup.delete"> = {
  async run(ctx) {
    const backup = await ctx.db.backup.findUnique({ where: { id: ctx.payload.backupId } });
    if (!backup) return { backupId: ctx.payload.backupId, deleted: true };
    if (backup.path) await rm(path.join(ctx.imageStore, backup.path), { force: true });
    await ctx.db.vm.updateMany({ where: { backupBaseId: backup.id }, data: { backupBaseId: null } });
    await ctx.db.backup.delete({ where: { id: backup.id } });
    return { backupId: backup.id, deleted: true };
  },
  async settle(ctx) {
    await ctx.db.backup.updateMany({ where: { id: ctx.payload.backupId, state: "deleting" }, data: { state: "ready" } });
  },
  describe: (r) => `backup ${r.backupId} deleted`,
};

