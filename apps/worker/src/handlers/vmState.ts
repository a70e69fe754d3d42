import type { JobError, VmState } from "@iaas/contracts";
import { transitionVm, type Vm } from "@iaas/db";
import type { HandlerContext } from "../jobs/HandlerContext.js";

type VmJob =
  | "vm.create"
  | "vm.start"
  | "vm.stop"
  | "vm.reboot"
  | "vm.delete"
  | "vm.nic.add"
  | "vm.nic.remove"
  | "vm.port.add"
  | "vm.port.remove"
  | "vm.resize"
  | "vm.clone"
  | "vm.snapshot.create"
  | "vm.snapshot.restore"
  | "vm.snapshot.delete"
  | "vm.backup"
  | "vm.backup.restore";

/** Loads the job's VM, or null when it no longer exists (a redelivered delete that finished). */
export async function loadVm(ctx: HandlerContext<VmJob>): Promise<Vm | null> {
  return ctx.db.vm.findUnique({ where: { id: ctx.payload.vmId } });
}

/**
 * Moves the job's VM to `state` through the transition table, fenced by the job's lock: a job
 * that lost its VM (the sweeper took it after a timeout) gets VM_BUSY and stops.
 */
export async function setVmState(ctx: HandlerContext<VmJob>, state: VmState, extra: { pid?: number | null; clearError?: boolean; from?: VmState[] } = {}): Promise<void> {
  await transitionVm(ctx.db, ctx.payload.vmId, {
    to: state,
    lock: ctx.job.id,
    ...(extra.from ? { from: extra.from } : {}),
    ...(extra.pid !== undefined ? { pid: extra.pid } : {}),
    ...(extra.clearError ? { error: null } : {}),
  });
}

/**
 * After a VM job failed for good: record the error on the VM and set its state from what really
 * runs on this host (QEMU alive → running; disk present → stopped; otherwise error), so no VM is
 * left `starting` or `stopping`.
 */
export async function settleVm(ctx: HandlerContext<VmJob>, error: JobError): Promise<void> {
  const vm = await loadVm(ctx);
  if (!vm) return;
  const pid = await ctx.runtime.runningPid(vm);
  const state: VmState = pid !== null ? "running" : (await ctx.runtime.diskExists(vm.id)) && vm.state !== "creating" ? "stopped" : "error";
  await transitionVm(ctx.db, vm.id, { to: state, lock: ctx.job.id, pid, error });
}
