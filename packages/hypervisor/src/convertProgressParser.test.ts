import { describe, expect, it } from "vitest";
import { ConvertProgressParser, parseProgressLine } from "./convertProgressParser.js";

describe("ConvertProgressParser", () => {
  it("reads qemu-img's carriage-return separated updates through to 100%", () => {
    const p = new ConvertProgressParser();
    expect(p.push("    (0.00/100%)\r    (1.01/100%)\r    (50.50/100%)\r    (100.00/100%)\r\n")).toEqual([0, 1.01, 50.5, 100]);
    expect(p.percent).toBe(100);
  });

  it("handles updates split anywhere across chunks", () => {
    const text = "    (0.00/100%)\r    (12.34/100%)\r    (99.99/100%)\r    (100.00/100%)\r\n";
    for (let cut = 1; cut < text.length; cut++) {
      const p = new ConvertProgressParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(got).toEqual([0, 12.34, 99.99, 100]);
    }
  });

  it("waits for the terminator before reporting an update", () => {
    const p = new ConvertProgressParser();
    expect(p.push("    (42.00/100%)")).toEqual([]);
    expect(p.percent).toBeNull();
    expect(p.push("\r")).toEqual([42]);
  });

  it("reports only increasing values and ignores other text", () => {
    const p = new ConvertProgressParser();
    expect(p.push("(10.00/100%)\rwarning: something\n(10.00/100%)\r(5.00/100%)\r(11.00/100%)\r")).toEqual([10, 11]);
  });

  it("does not grow without bound on output with no separators", () => {
    const p = new ConvertProgressParser();
    p.push("x".repeat(10_000));
    expect(p.push("(3.00/100%)\r")).toEqual([]);
    expect(p.push("(4.00/100%)\r")).toEqual([4]);
  });
});

describe("parseProgressLine", () => {
  it("accepts the progress format and rejects the rest", () => {
    expect(parseProgressLine("    (12.34/100%)")).toBe(12.34);
    expect(parseProgressLine("(100/100%)")).toBe(100);
    expect(parseProgressLine("(101.00/100%)")).toBeNull();
    expect(parseProgressLine("12.34")).toBeNull();
    expect(parseProgressLine("")).toBeNull();
  });
});
