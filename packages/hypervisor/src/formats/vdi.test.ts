import { describe, expect, it } from "vitest";
import { vdiImage } from "./imageBuilders.fixture.js";
import { parseVdiHeader } from "./vdi.js";

describe("parseVdiHeader", () => {
  it("reads version, type and disk size", () => {
    expect(parseVdiHeader(vdiImage({ size: 3n * 2n ** 30n, type: 2 }))).toEqual({
      version: 0x00010001,
      imageType: 2,
      sectorSize: 512,
      virtualSize: 3 * 2 ** 30,
      hasParent: false,
    });
  });

  it("rounds an odd disk size up to whole sectors, as QEMU does", () => {
    expect(parseVdiHeader(vdiImage({ size: 1000n })).virtualSize).toBe(1024);
  });

  it("sees a parent UUID", () => {
    expect(parseVdiHeader(vdiImage({ parentUuid: true })).hasParent).toBe(true);
  });

  it("refuses a truncated header and a bad signature", () => {
    expect(() => parseVdiHeader(vdiImage().subarray(0, 400))).toThrow(/truncated/);
    const bad = vdiImage();
    bad.writeUInt32LE(0, 64);
    expect(() => parseVdiHeader(bad)).toThrow(/signature/);
  });
});
