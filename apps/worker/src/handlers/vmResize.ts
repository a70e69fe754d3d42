import { formatSize, IaasError } from "@iaas/contracts";
import type { JobHandler } from "../jobs/HandlerContext.js";
import { loadVm, settleVm } from "./vmState.js";

/**
 * Grows the VM's overlay: QMP `block_resize` on its disk node while it runs (the guest sees the new
 * size at once), `qemu-img resize` when it is stopped. Only the overlay changes, never the image.
 */
export const vmResize: JobHandler<"vm.resize"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw new IaasError("NOT_FOUND", `VM ${ctx.payload.vmId} no longer exists`, { hint: "run `iaas vm list`" });
    const size = ctx.payload.diskBytes;
    const disk = ctx.runtime.files(vm.id).disk;
    const live = (await ctx.runtime.runningPid(vm)) !== null;
    const current = (await ctx.qemuImg.info(disk, "qcow2", { allowShared: true })).virtualSize;
    if (current < size) {
      await ctx.progress({ phase: "resize", percent: 50, message: `${formatSize(current)} -> ${formatSize(size)}${live ? " (live)" : ""}` });
      if (live) await ctx.runtime.qmp(vm.id, (q) => q.execute("block_resize", { "node-name": "fmt-disk0", size }));
      else await ctx.qemuImg.resize(disk, "qcow2", size);
    }
    await ctx.db.vm.update({ where: { id: vm.id }, data: { diskBytes: BigInt(size) } });
    return { vmId: vm.id, diskBytes: size, live };
  },
  settle: settleVm,
  describe: (r) => `disk grown to ${formatSize(r.diskBytes)}${r.live ? " while running" : ""}`,
};
