import { rm } from "node:fs/promises";
import { IaasError } from "@iaas/contracts";
import { transitionVm, type Vm } from "@iaas/db";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { prepareLaunch } from "./vmLaunch.js";
import { loadVm, setVmState, settleVm } from "./vmState.js";

function gone(id: string): IaasError {
  return new IaasError("NOT_FOUND", `VM ${id} no longer exists`, { hint: "run `iaas vm list`" });
}

/** Starts the VM's QEMU unless it already runs (a redelivery after QEMU came up). */
export async function startVm(ctx: HandlerContext<"vm.start" | "vm.create" | "vm.snapshot.restore" | "vm.clone" | "vm.backup.restore">, vm: Vm, base: number, opts: { loadvm?: string } = {}): Promise<number> {
  const running = await ctx.runtime.runningPid(vm);
  if (running !== null) {
    await ctx.note(`QEMU already runs as pid ${running}; adopting it`);
    await setVmState(ctx, "running", { pid: running, clearError: true });
    return running;
  }
  await setVmState(ctx, "starting");
  await ctx.progress({ phase: "launch", percent: base, message: `starting QEMU (${ctx.runtime.config.accelerator})` });
  // A new boot gets a new console: drop the old file first so the old output is not sent again.
  await rm(ctx.runtime.files(vm.id).console, { force: true });
  await ctx.consoles.reset(vm.id);
  await ctx.progress({ phase: "network", percent: base + 5, message: "host networking and cloud-init seed" });
  const spec = { ...(await prepareLaunch(ctx, vm, `start ${vm.name}`)), ...opts };
  const pid = await ctx.runtime.start(spec, ctx.signal, (text) => ctx.note(text, "warn"));
  try {
    await transitionVm(ctx.db, vm.id, { to: "running", lock: ctx.job.id, from: ["starting"], pid, accelerator: ctx.runtime.config.accelerator, error: null });
  } catch (err) {
    // Undo: a QEMU that Postgres does not record (the job lost its VM, the database went away)
    // must not run on; a retry or a redelivery starts it again.
    ctx.log.warn({ err, pid }, "QEMU started but the VM could not be marked running; stopping it again");
    await ctx.runtime.stop(vm, 0, AbortSignal.timeout(30_000), async () => undefined);
    throw err;
  }
  await ctx.note(`QEMU running as pid ${pid}; console: \`iaas vm console ${vm.name}\``);
  return pid;
}

export const vmStart: JobHandler<"vm.start"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw gone(ctx.payload.vmId);
    await startVm(ctx, vm, 10);
    await ctx.progress({ phase: "running", percent: 100 });
    return { vmId: vm.id, state: "running" };
  },
  settle: settleVm,
  describe: () => "VM is running",
};

export const vmStop: JobHandler<"vm.stop"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw gone(ctx.payload.vmId);
    const pid = await ctx.runtime.runningPid(vm);
    if (pid === null) {
      await setVmState(ctx, "stopped", { pid: null });
      return { vmId: vm.id, state: "stopped", forced: false };
    }
    await setVmState(ctx, "stopping");
    const graceMs = ctx.payload.force ? 0 : ctx.payload.timeoutSeconds * 1000;
    const { forced } = await ctx.runtime.stop(vm, graceMs, ctx.signal, async (phase) => {
      const messages: Record<string, string> = {
        "acpi-powerdown": `ACPI power button pressed; waiting up to ${ctx.payload.timeoutSeconds}s for the guest to power off`,
        quit: ctx.payload.force ? "quitting QEMU at once (--force)" : "the guest did not power off in time; quitting QEMU",
        kill: "QEMU did not quit; killing it",
      };
      await ctx.progress({ phase, percent: phase === "acpi-powerdown" ? 20 : 70, message: messages[phase] ?? phase });
    });
    await setVmState(ctx, "stopped", { pid: null, clearError: true });
    return { vmId: vm.id, state: "stopped", forced };
  },
  settle: settleVm,
  describe: (r) => (r.forced ? "VM stopped (QEMU quit)" : "VM stopped (guest powered off)"),
};

export const vmReboot: JobHandler<"vm.reboot"> = {
  async run(ctx) {
    const vm = await loadVm(ctx);
    if (!vm) throw gone(ctx.payload.vmId);
    if ((await ctx.runtime.runningPid(vm)) === null) {
      throw new IaasError("INVALID_STATE", `VM '${vm.name}' is not running`, { hint: `start it with \`iaas vm start ${vm.name}\`` });
    }
    await ctx.progress({ phase: "reset", percent: 50, message: "system_reset" });
    await ctx.runtime.qmp(vm.id, (q) => q.execute("system_reset"));
    return { vmId: vm.id, state: "running" };
  },
  settle: settleVm,
  describe: () => "VM reset",
};
