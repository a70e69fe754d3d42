import type { JobHandler } from "../jobs/HandlerContext.js";
import { loadVm, setVmState, settleVm } from "./vmState.js";

/** Deletes a VM: QEMU quits at once (its disk is about to go), then its files and its row. */
export const vmDelete: JobHandler<"vm.delete"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) return { vmId: ctx.payload.vmId, deleted: true };
    await setVmState(ctx, "deleting");
    if ((await ctx.runtime.runningPid(vm)) !== null) {
      await ctx.progress({ phase: "stop", percent: 20, message: "quitting QEMU" });
      await ctx.runtime.stop(vm, 0, ctx.signal, async () => undefined);
    }
    await ctx.progress({ phase: "remove-files", percent: 60, message: ctx.runtime.files(vm.id).dir });
    await ctx.runtime.removeFiles(vm.id);
    await ctx.consoles.forget(vm.id);
    await ctx.db.vm.delete({ where: { id: vm.id } });
    await ctx.progress({ phase: "network", percent: 90, message: "removing what the host no longer needs" });
    // The VM is gone either way; what its NICs leave behind is removed by the next sync if not now.
    await ctx.network.sync(`delete ${vm.name}`).catch((err: unknown) => ctx.note(`host networking not cleaned up yet: ${(err as Error).message}`, "warn"));
    return { vmId: vm.id, deleted: true };
  },
  settle: settleVm,
  describe: () => "VM deleted",
};
