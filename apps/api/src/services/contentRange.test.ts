import { describe, expect, it } from "vitest";
import { parseContentRange } from "./contentRange.js";

describe("parseContentRange", () => {
  it("reads start, inclusive end and total", () => {
    expect(parseContentRange("bytes 100-199/1000")).toEqual({ start: 100, end: 199, total: 1000 });
  });

  it("refuses ranges that end past the total or run backwards, and other units", () => {
    expect(() => parseContentRange("bytes 0-1000/1000")).toThrow(/bad Content-Range/);
    expect(() => parseContentRange("bytes 10-5/100")).toThrow(/bad Content-Range/);
    expect(() => parseContentRange("items 0-1/2")).toThrow(/bad Content-Range/);
    expect(() => parseContentRange("bytes */100")).toThrow(/bad Content-Range/);
  });
});
