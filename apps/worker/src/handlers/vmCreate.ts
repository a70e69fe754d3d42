import { mkdir, rm } from "node:fs/promises";
import { IaasError } from "@iaas/contracts";
import type { JobHandler } from "../jobs/HandlerContext.js";
import { usableImageFile } from "./imageForVm.js";
import { diskFromBackup } from "./vmBackup.js";
import { startVm } from "./vmPower.js";
import { loadVm, setVmState, settleVm } from "./vmState.js";

/**
 * Creates the VM's disk as a qcow2 overlay backed by its image (so a 100 GiB image costs the same
 * as a 10 MiB one), grown to the VM's disk size, then optionally starts it.
 */
export const vmCreate: JobHandler<"vm.create"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw new IaasError("NOT_FOUND", `VM ${ctx.payload.vmId} no longer exists`, { hint: "run `iaas vm list`" });
    const files = ctx.runtime.files(vm.id);
    if (vm.state === "creating") {
      const image = await ctx.db.image.findUniqueOrThrow({ where: { id: vm.imageId } });
      const imageFile = await usableImageFile(ctx, image);
      await ctx.progress({ phase: "create-disk", percent: 10, message: `qcow2 overlay on image '${image.name}'` });
      await mkdir(files.dir, { recursive: true });
      // A redelivered create may find a half-made overlay: nothing has used it yet, so make it anew.
      await rm(files.disk, { force: true });
      if (ctx.payload.fromBackupId) await diskFromBackup(ctx, vm, ctx.payload.fromBackupId, imageFile);
      else await ctx.qemuImg.createOverlay(files.disk, imageFile, "qcow2", Number(vm.diskBytes));
      await setVmState(ctx, "stopped", { from: ["creating"] });
      await ctx.note(`disk ${files.disk} created`);
    }
    if (!ctx.payload.start) {
      await ctx.progress({ phase: "created", percent: 100 });
      return { vmId: vm.id, state: "stopped" };
    }
    await startVm(ctx, vm, 50);
    await ctx.progress({ phase: "running", percent: 100 });
    return { vmId: vm.id, state: "running" };
  },
  async settle(ctx, error) {
    const vm = await loadVm(ctx);
    if (vm?.state === "creating") await ctx.runtime.removeFiles(vm.id);
    await settleVm(ctx, error);
  },
  describe: (r) => (r.state === "running" ? "VM created and running" : "VM created"),
};
