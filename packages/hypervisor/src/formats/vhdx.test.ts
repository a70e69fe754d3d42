import { describe, expect, it } from "vitest";
import { vhdxImage } from "./imageBuilders.fixture.js";
import { bufferImageReader } from "./imageReader.js";
import { guidBytes, readVhdx } from "./vhdx.js";

describe("guidBytes", () => {
  it("lays a GUID out as VHDX stores it (first three groups little-endian)", () => {
    expect(guidBytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")).toBe("3767a1ca36fa434db3b633f0aa44e76b");
  });
});

describe("readVhdx", () => {
  it("reads the virtual size from the metadata region", async () => {
    expect(await readVhdx(bufferImageReader(vhdxImage({ size: 5n * 2n ** 30n })))).toEqual({
      virtualSize: 5 * 2 ** 30,
      blockSize: 32 * 1024 * 1024,
      logicalSectorSize: 512,
      hasParent: false,
      hasParentLocator: false,
      unknownRequired: [],
    });
  });

  it("sees a differencing disk by its HasParent flag and by its parent locator", async () => {
    expect(await readVhdx(bufferImageReader(vhdxImage({ hasParent: true })))).toMatchObject({ hasParent: true });
    expect(await readVhdx(bufferImageReader(vhdxImage({ parentLocator: true })))).toMatchObject({ hasParentLocator: true });
  });

  it("lists required metadata it does not know", async () => {
    expect((await readVhdx(bufferImageReader(vhdxImage({ unknownRequiredItem: true })))).unknownRequired).toEqual(["67452301ab89efcd0123456789abcdef"]);
  });

  it("refuses a file cut before its region table or metadata, and metadata without a size", async () => {
    const img = vhdxImage();
    await expect(readVhdx(bufferImageReader(img.subarray(0, 100 * 1024)))).rejects.toThrow(/region table/);
    await expect(readVhdx(bufferImageReader(img.subarray(0, 330 * 1024)))).rejects.toThrow(/metadata region lies past the end/);
    await expect(readVhdx(bufferImageReader(vhdxImage({ noSize: true })))).rejects.toThrow(/no virtual disk size/);
  });

  it("refuses a region table without its signature", async () => {
    const img = vhdxImage();
    img.write("xxxx", 192 * 1024, "latin1");
    await expect(readVhdx(bufferImageReader(img))).rejects.toThrow(/signature/);
  });
});
