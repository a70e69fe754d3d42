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

export const ImageState = z.enum(["importing", "ready", "failed", "deleting"]);
export type ImageState = z.infer<typeof ImageState>;

export const HostState = z.enum(["online", "offline"]);
export type HostState = z.infer<typeof HostState>;

export const Accelerator = z.enum(["kvm", "tcg"]);
export type Accelerator = z.infer<typeof Accelerator>;

export const AccelSetting = z.enum(["auto", "kvm", "tcg"]);
export type AccelSetting = z.infer<typeof AccelSetting>;
