import { describe, expect, it } from "vitest";
import { Batcher } from "./Batcher.js";

describe("Batcher", () => {
  it("sends a lone call at once and groups calls made while a batch is out", async () => {
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new Batcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        if (batches.length === 1) await gate;
        return inputs.map((n) => n * 10);
      },
      { maxInFlight: 1 },
    );
    const first = batcher.call(1);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1]]);
    const rest = [2, 3, 4].map((n) => batcher.call(n));
    await new Promise((r) => setImmediate(r));
    expect(batches).toHaveLength(1);
    release();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it("groups calls made in the same tick into one batch", async () => {
    const batches: string[][] = [];
    const batcher = new Batcher<string, string>(async (inputs) => {
      batches.push(inputs);
      return inputs.map((s) => s.toUpperCase());
    });
    expect(await Promise.all(["a", "b", "c"].map((s) => batcher.call(s)))).toEqual(["A", "B", "C"]);
    expect(batches).toEqual([["a", "b", "c"]]);
  });

  it("gives each caller its own error when one input spoils the batch", async () => {
    const batcher = new Batcher<number, number>(async (inputs) => {
      if (inputs.includes(13)) throw new Error(`unlucky batch of ${inputs.length}`);
      return inputs.map((n) => (n < 0 ? new Error(`negative ${n}`) : n));
    });
    const results = await Promise.allSettled([1, 13, -2, 4].map((n) => batcher.call(n)));
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([1, "unlucky batch of 1", "negative -2", 4]);
  });

  it("fails every caller of a batch at once for an error they share", async () => {
    let runs = 0;
    const batcher = new Batcher<number, number>(
      async () => {
        runs++;
        throw new Error("database unreachable");
      },
      { isShared: (err) => (err as Error).message === "database unreachable" },
    );
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.call(n)));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(runs).toBe(1);
  });
});
