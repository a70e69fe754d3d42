import { describe, expect, it } from "vitest";
import { formatSize, parseSize } from "./size.js";

describe("parseSize", () => {
  it("reads binary units the way QEMU does", () => {
    expect(parseSize("512M")).toBe(512 * 1024 ** 2);
    expect(parseSize("2G")).toBe(2 * 1024 ** 3);
    expect(parseSize("2GiB")).toBe(2 * 1024 ** 3);
    expect(parseSize("1.5g")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("64k")).toBe(65536);
  });

  it("uses the default unit for a bare number", () => {
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize("512", "M")).toBe(512 * 1024 ** 2);
    expect(parseSize(2, "G")).toBe(2 * 1024 ** 3);
  });

  it("rejects garbage with a message that names the input", () => {
    expect(() => parseSize("lots")).toThrow(/invalid size 'lots'/);
    expect(() => parseSize("12X")).toThrow(/unknown unit 'X'/);
    expect(() => parseSize("-1G")).toThrow(/invalid size/);
  });
});

describe("formatSize", () => {
  it("prints whole binary units without decimals", () => {
    expect(formatSize(512 * 1024 ** 2)).toBe("512 MiB");
    expect(formatSize(1536 * 1024 ** 2)).toBe("1.5 GiB");
    expect(formatSize(100)).toBe("100 B");
  });
});
