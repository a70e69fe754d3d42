import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration, retentionPlan } from "./backups.js";

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute));
const b = (id: string, minute: number, parentId: string | null = null) => ({ id, parentId, createdAt: at(minute) });
const ids = (list: { id: string }[]) => list.map((x) => x.id);

describe("retentionPlan", () => {
  it("keeps the newest N fulls and prunes the older ones, newest first", () => {
    const plan = retentionPlan([b("f1", 1), b("f2", 2), b("f3", 3), b("f4", 4)], 2);
    expect([ids(plan.keep), ids(plan.flatten), ids(plan.prune)]).toEqual([["f4", "f3"], [], ["f2", "f1"]]);
  });

  it("makes a kept incremental whose parent goes self-contained before the parent is pruned", () => {
    const chain = [b("f1", 1), b("i1", 2, "f1"), b("i2", 3, "i1"), b("i3", 4, "i2")];
    const plan = retentionPlan(chain, 2);
    expect([ids(plan.keep), ids(plan.flatten), ids(plan.prune)]).toEqual([["i3", "i2"], ["i2"], ["i1", "f1"]]);
  });

  it("flattens nothing when every kept incremental's parent is kept", () => {
    const plan = retentionPlan([b("f1", 1), b("i1", 2, "f1"), b("f2", 3), b("i2", 4, "f2")], 2);
    expect([ids(plan.keep), ids(plan.flatten), ids(plan.prune)]).toEqual([["i2", "f2"], [], ["i1", "f1"]]);
  });

  it("keeps everything when there are no more than N", () => {
    const plan = retentionPlan([b("f1", 1), b("i1", 2, "f1")], 5);
    expect([plan.flatten, plan.prune]).toEqual([[], []]);
  });
});

describe("parseDuration", () => {
  it("reads units and sums compound intervals", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("24h")).toBe(86_400_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("2w")).toBe(14 * 86_400_000);
  });

  it("refuses what is not a duration, naming it", () => {
    for (const bad of ["", "24", "24x", "h", "1h x", "-1h"]) expect(() => parseDuration(bad)).toThrow(/not a duration/);
  });

  it("formats back in the largest whole unit", () => {
    expect([formatDuration(86_400_000), formatDuration(5_400_000), formatDuration(10_000)]).toEqual(["1d", "90m", "10s"]);
  });
});
