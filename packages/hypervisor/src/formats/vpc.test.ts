import { describe, expect, it } from "vitest";
import { vpcFooter, vpcImage } from "./imageBuilders.fixture.js";
import { bufferImageReader } from "./imageReader.js";
import { dynamicHeaderNamesParent, parseVpcFooter, readVpc } from "./vpc.js";

describe("parseVpcFooter", () => {
  it("takes the footer's current size from creators that write it exactly", () => {
    expect(parseVpcFooter(vpcFooter({ creator: "win ", currentSize: 3n * 2n ** 30n, chs: [6241, 16, 63] }))).toMatchObject({
      diskType: 3,
      creatorApp: "win ",
      virtualSize: 3 * 2 ** 30,
    });
  });

  it("takes the CHS geometry from Virtual PC and old QEMU, like QEMU does", () => {
    const f = parseVpcFooter(vpcFooter({ creator: "vpc ", currentSize: 10n * 2n ** 20n, chs: [302, 4, 17] }));
    expect(f.virtualSize).toBe(302 * 4 * 17 * 512);
    expect(f.currentSize).toBe(10 * 2 ** 20);
  });

  it("falls back to the current size when the geometry is the maximum", () => {
    expect(parseVpcFooter(vpcFooter({ creator: "vpc ", currentSize: 3n * 2n ** 40n })).virtualSize).toBe(3 * 2 ** 40);
  });
});

describe("readVpc", () => {
  it("reads a dynamic disk from the footer copy at its start", async () => {
    expect(await readVpc(bufferImageReader(vpcImage({ currentSize: 2n ** 30n })))).toMatchObject({
      diskType: 3,
      footerAt: "start",
      virtualSize: 2 ** 30,
      dynamicHeaderNamesParent: false,
    });
  });

  it("reads a fixed disk from the footer at its end", async () => {
    expect(await readVpc(bufferImageReader(vpcImage({ type: 2, currentSize: 1024n * 1024n })))).toMatchObject({ diskType: 2, footerAt: "end", virtualSize: 1024 * 1024 });
  });

  it("sees a parent named in a dynamic disk header", async () => {
    expect((await readVpc(bufferImageReader(vpcImage({ parentName: "base.vhd" })))).dynamicHeaderNamesParent).toBe(true);
    const dyn = vpcImage({ parentName: "x" }).subarray(512, 1536);
    expect(dynamicHeaderNamesParent(dyn)).toBe(true);
  });

  it("refuses a dynamic disk whose header is missing or cut off", async () => {
    const img = vpcImage();
    await expect(readVpc(bufferImageReader(img.subarray(0, 1000)))).rejects.toThrow(/truncated|past the end/);
    img.write("xxxxxxxx", 512, "latin1");
    await expect(readVpc(bufferImageReader(img))).rejects.toThrow(/cxsparse/);
  });
});
