import { describe, expect, it } from "vitest";
import { canTransitionJob, isTerminalJobState } from "./states.js";

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
