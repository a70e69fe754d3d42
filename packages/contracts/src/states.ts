import { z } from "zod";

/** Lifecycle of a job: `queued → running → succeeded | failed | cancelled`. */
export const JobState = z.enum(["queued", "running", "succeeded", "failed", "cancelled"]);
export type JobState = z.infer<typeof JobState>;

export const TERMINAL_JOB_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled"];

/** A terminal state is final: nothing moves a job out of it. */
export function isTerminalJobState(state: JobState): boolean {
  return TERMINAL_JOB_STATES.includes(state);
}

const JOB_TRANSITIONS: Record<JobState, readonly JobState[]> = {
  queued: ["running", "cancelled", "failed"],
  running: ["succeeded", "failed", "running"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** Whether a job may move from `from` to `to` (`running → running` is a redelivery). */
export function canTransitionJob(from: JobState, to: JobState): boolean {
  return JOB_TRANSITIONS[from].includes(to);
}

export const VmState = z.enum(["creating", "stopped", "starting", "running", "stopping", "deleting", "error"]);
export type VmState = z.infer<typeof VmState>;

/** States a VM passes through while a job works on it; never a resting state. */
export const TRANSITIONAL_VM_STATES: readonly VmState[] = ["creating", "starting", "stopping", "deleting"];

/**
 * Every VM state change there may be, `from → to`. Writers (the API, the worker's handlers, the
 * monitor, the sweeper) change a VM's state only through `transitionVm` in `@iaas/db`, which
 * refuses anything not listed here. A state may move to itself where a writer records new facts
 * (a new pid, an error) without a change of state, and a transitional state may move to itself
 * when a redelivered job (its worker died or handed it back) enters the state its first delivery
 * had already set; the lock that `transitionVm` checks makes sure it is the same job.
 */
export const VM_TRANSITIONS: Readonly<Record<VmState, readonly VmState[]>> = {
  // The disk is made (stopped); a create that failed for good (error).
  creating: ["creating", "stopped", "error"],
  // Start; re-adopting a QEMU found running; delete; the disk found missing.
  stopped: ["stopped", "starting", "running", "deleting", "error"],
  starting: ["starting", "running", "stopped", "error"],
  // Stop; QEMU exited on its own; re-adopted with another pid; delete; a failure.
  running: ["running", "stopping", "stopped", "deleting", "error"],
  // A stop that failed leaves QEMU running.
  stopping: ["stopping", "stopped", "running", "error"],
  // A delete that failed leaves what is really there.
  deleting: ["deleting", "stopped", "running", "error"],
  error: ["error", "stopped", "starting", "running", "deleting"],
};

/** Whether a VM may move from `from` to `to`. */
export function canTransitionVm(from: VmState, to: VmState): boolean {
  return VM_TRANSITIONS[from].includes(to);
}

/** The states a VM may be in to move to `to`. */
export function vmStatesInto(to: VmState): VmState[] {
  return VmState.options.filter((from) => canTransitionVm(from, to));
}

/**
 * `error`: a ready image whose stored file went missing or changed (found by a worker's store
 * check, `image verify` or a VM create); `image verify` makes it ready again, or it is deleted.
 */
export const ImageState = z.enum(["importing", "ready", "failed", "deleting", "error"]);
export type ImageState = z.infer<typeof ImageState>;

/**
 * `offline`: no heartbeat for IAAS_HOST_OFFLINE_SECONDS (database clock); `lost`: offline for
 * longer than IAAS_HOST_LOST_SECONDS — its VMs show as `unknown`, and may be force-deleted or
 * evacuated from their backups.
 */
export const HostState = z.enum(["online", "offline", "lost"]);
export type HostState = z.infer<typeof HostState>;

/** The state a VM is shown in: its stored state, or `unknown` while its host is lost. */
export const VmShownState = z.enum([...VmState.options, "unknown"]);
export type VmShownState = z.infer<typeof VmShownState>;

export const Accelerator = z.enum(["kvm", "tcg"]);
export type Accelerator = z.infer<typeof Accelerator>;

export const AccelSetting = z.enum(["auto", "kvm", "tcg"]);
export type AccelSetting = z.infer<typeof AccelSetting>;
