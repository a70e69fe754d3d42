import { randomUUID } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { IaasError } from "@iaas/contracts";
import { createJobRow, type Vm } from "@iaas/db";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { startVm } from "./vmPower.js";
import { loadVm, setVmState, settleVm } from "./vmState.js";

/**
 * Makes the clone's disk: `qemu-img convert -B IMAGE` of the source's overlay (or of one of its
 * snapshots, read with -U while the source may run) into a new overlay on the same image, so the
 * clone holds what the source wrote and shares the rest. Then optionally starts it.
 */
export const vmClone: JobHandler<"vm.clone"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw new IaasError("NOT_FOUND", `VM ${ctx.payload.vmId} no longer exists`, { hint: "run `iaas vm list`" });
    const { sourceVmId, snapshot } = ctx.payload;
    if (vm.hostId !== ctx.hostId) return stageForOtherHost(ctx, vm);
    if (vm.state === "creating" && ctx.payload.stagedDisk !== undefined) {
      await adoptStagedDisk(ctx, vm, ctx.payload.stagedDisk);
    } else if (vm.state === "creating") {
      const source = await ctx.db.vm.findUnique({ where: { id: sourceVmId } });
      if (!source) throw new IaasError("NOT_FOUND", `source VM ${sourceVmId} no longer exists`, { hint: "run `iaas vm list`" });
      const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
      if (image.state !== "ready" || !image.path) throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is ${image.state}`, { hint: "import the image again" });
      const files = ctx.runtime.files(vm.id);
      await mkdir(files.dir, { recursive: true });
      const part = `${files.disk}.part`;
      await rm(part, { force: true });
      await ctx.progress({ phase: "copy", percent: 20, message: `disk of '${source.name}'${snapshot ? ` at snapshot '${snapshot}'` : ""} onto image '${image.name}'` });
      await ctx.qemuImg.cloneOverlay(ctx.runtime.files(source.id).disk, part, path.join(ctx.imageStore, image.path), "qcow2", {
        ...(snapshot !== undefined ? { snapshot, shared: true } : {}),
        signal: ctx.signal,
      });
      await rename(part, files.disk);
      await setVmState(ctx, "stopped", { from: ["creating"] });
      await ctx.note(`disk ${files.disk} made from '${source.name}'`);
    }
    if (!ctx.payload.start) return { vmId: vm.id, state: "stopped", sourceVmId };
    await startVm(ctx, vm, 60);
    return { vmId: vm.id, state: "running", sourceVmId };
  },
  async settle(ctx, error) {
    const vm = await loadVm(ctx);
    if (vm?.state === "creating") await ctx.runtime.removeFiles(vm.id);
    await rm(path.join(ctx.imageStore, stagedDiskOf(ctx.payload.vmId)), { force: true });
    await rm(path.join(ctx.imageStore, `${stagedDiskOf(ctx.payload.vmId)}.part`), { force: true });
    await settleVm(ctx, error);
  },
  describe: (r) => (r.nextJobId ? `disk staged in the shared store; job ${r.nextJobId} makes the clone on its host` : r.state === "running" ? "clone made and running" : "clone made"),
};

/** Where a clone's disk waits in the shared store between the source's host and the clone's. */
function stagedDiskOf(vmId: string): string {
  return path.join("transfers", `clone-${vmId}.qcow2`);
}

/**
 * A clone to another host, on the source's host: its disk (an overlay on the shared image) is
 * written into the shared store, then a job for the clone's host takes it over. That job is
 * written here, queued, with the clone's lock, in one transaction (the API's outbox relay puts it
 * on that host's queue); this job's result names it, and `--wait` follows it.
 */
async function stageForOtherHost(ctx: HandlerContext<"vm.clone">, vm: Vm) {
  const { sourceVmId, snapshot } = ctx.payload;
  const source = await ctx.db.vm.findUnique({ where: { id: sourceVmId } });
  if (!source) throw new IaasError("NOT_FOUND", `source VM ${sourceVmId} no longer exists`, { hint: "run `iaas vm list`" });
  const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
  if (image.state !== "ready" || !image.path) throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is ${image.state}`, { hint: "import the image again" });
  const staged = stagedDiskOf(vm.id);
  const target = path.join(ctx.imageStore, staged);
  await mkdir(path.dirname(target), { recursive: true });
  await rm(`${target}.part`, { force: true });
  await ctx.progress({ phase: "copy", percent: 20, message: `disk of '${source.name}'${snapshot ? ` at snapshot '${snapshot}'` : ""} into the shared store for host '${vm.hostId}'` });
  await ctx.qemuImg.cloneOverlay(ctx.runtime.files(source.id).disk, `${target}.part`, path.join(ctx.imageStore, image.path), "qcow2", {
    ...(snapshot !== undefined ? { snapshot, shared: true } : {}),
    signal: ctx.signal,
  });
  await rename(`${target}.part`, target);
  const nextJobId = randomUUID();
  await ctx.db.$transaction(async (tx) => {
    await createJobRow(tx, nextJobId, { type: "vm.clone", payload: { vmId: vm.id, sourceVmId, start: ctx.payload.start, stagedDisk: staged }, hostId: vm.hostId, vmId: vm.id, imageId: vm.imageId, targetName: vm.name, projectId: vm.projectId }, { actor: { name: ctx.job.actorName ?? "system", tokenId: ctx.job.actorTokenId, requestId: ctx.job.requestId } });
    await tx.vm.update({ where: { id: vm.id }, data: { lockJobId: nextJobId } });
  });
  await ctx.note(`disk staged; host '${vm.hostId}' takes it over in job ${nextJobId}`);
  return { vmId: vm.id, state: "creating" as const, sourceVmId, nextJobId };
}

/** On the clone's host: moves the staged disk into the VM's directory (a copy when the store is another filesystem). */
async function adoptStagedDisk(ctx: HandlerContext<"vm.clone">, vm: Vm, staged: string): Promise<void> {
  const files = ctx.runtime.files(vm.id);
  const from = path.join(ctx.imageStore, staged);
  if (!(await stat(from).then(() => true, () => false))) {
    if (await ctx.runtime.diskExists(vm.id)) return markCreated(ctx, vm);
    throw new IaasError("NOT_FOUND", `the staged disk of clone '${vm.name}' is missing from the shared store (${from})`, { hint: `delete the clone and clone again: \`iaas vm delete ${vm.name}\`` });
  }
  await mkdir(files.dir, { recursive: true });
  await ctx.progress({ phase: "copy", percent: 30, message: "taking the staged disk over from the shared store" });
  await rename(from, files.disk).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== "EXDEV") throw err;
    await copyFile(from, `${files.disk}.part`);
    await rename(`${files.disk}.part`, files.disk);
    await rm(from, { force: true });
  });
  await markCreated(ctx, vm);
}

async function markCreated(ctx: HandlerContext<"vm.clone">, vm: Vm): Promise<void> {
  await setVmState(ctx, "stopped", { from: ["creating"] });
  await ctx.note(`disk ${ctx.runtime.files(vm.id).disk} in place`);
}
