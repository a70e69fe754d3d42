import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { IaasError } from "@iaas/contracts";
import type { JobHandler } from "../jobs/HandlerContext.js";
import { startVm } from "./vmPower.js";
import { loadVm, settleVm } from "./vmState.js";

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
    if (vm.state === "creating") {
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
      await ctx.db.vm.update({ where: { id: vm.id }, data: { state: "stopped" } });
      await ctx.note(`disk ${files.disk} made from '${source.name}'`);
    }
    if (!ctx.payload.start) return { vmId: vm.id, state: "stopped", sourceVmId };
    await startVm(ctx, vm, 60);
    return { vmId: vm.id, state: "running", sourceVmId };
  },
  async settle(ctx, error) {
    const vm = await loadVm(ctx);
    if (vm?.state === "creating") await ctx.runtime.removeFiles(vm.id);
    await settleVm(ctx, error);
  },
  describe: (r) => (r.state === "running" ? "clone made and running" : "clone made"),
};
