import { describe, expect, it } from "vitest";
import { canTransitionJob, canTransitionVm, isTerminalJobState, TRANSITIONAL_VM_STATES, VM_TRANSITIONS, VmState, vmStatesInto } from "./states.js";

describe("job states", () => {
  it("treats succeeded, failed and cancelled as final", () => {
    expect(isTerminalJobState("succeeded")).toBe(true);
    expect(isTerminalJobState("failed")).toBe(true);
    expect(isTerminalJobState("cancelled")).toBe(true);
    expect(isTerminalJobState("queued")).toBe(false);
    expect(isTerminalJobState("running")).toBe(false);
  });

  it("never lets a job leave a terminal state", () => {
    for (const to of ["queued", "running", "succeeded", "failed", "cancelled"] as const) {
      expect(canTransitionJob("succeeded", to)).toBe(false);
      expect(canTransitionJob("failed", to)).toBe(false);
      expect(canTransitionJob("cancelled", to)).toBe(false);
    }
  });

  it("lets only a queued job be cancelled", () => {
    expect(canTransitionJob("queued", "cancelled")).toBe(true);
    expect(canTransitionJob("running", "cancelled")).toBe(false);
  });

  it("does not let a queued job jump to succeeded", () => {
    expect(canTransitionJob("queued", "succeeded")).toBe(false);
    expect(canTransitionJob("queued", "running")).toBe(true);
  });
});

describe("VM transitions", () => {
  it("lists every state, and only known states", () => {
    expect(Object.keys(VM_TRANSITIONS).sort()).toEqual([...VmState.options].sort());
    for (const targets of Object.values(VM_TRANSITIONS)) for (const t of targets) expect(VmState.options).toContain(t);
  });

  it("lets every transitional state reach error and a resting state, so a failed job can always settle its VM", () => {
    for (const s of TRANSITIONAL_VM_STATES) {
      expect(canTransitionVm(s, "error")).toBe(true);
      expect(VM_TRANSITIONS[s].some((t) => t === "stopped" || t === "running")).toBe(true);
    }
  });

  it("refuses jumps a job never makes", () => {
    expect(canTransitionVm("creating", "running")).toBe(false);
    expect(canTransitionVm("creating", "starting")).toBe(false);
    expect(canTransitionVm("stopped", "stopping")).toBe(false);
    expect(canTransitionVm("deleting", "starting")).toBe(false);
    expect(canTransitionVm("starting", "deleting")).toBe(false);
  });

  it("lets a redelivered job re-enter the transitional state its first delivery set", () => {
    for (const s of TRANSITIONAL_VM_STATES) expect(canTransitionVm(s, s)).toBe(true);
    expect(canTransitionVm("stopping", "starting")).toBe(false);
  });

  it("answers which states may move into a state", () => {
    expect(vmStatesInto("starting").sort()).toEqual(["error", "starting", "stopped"]);
    expect(vmStatesInto("creating")).toEqual(["creating"]);
  });
});
