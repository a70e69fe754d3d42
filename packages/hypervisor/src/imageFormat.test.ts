import { describe, expect, it } from "vitest";
import { qcow2Image as qcow2, vdiImage, vhdxImage, vmdkSparseImage, vpcImage, tempFiles } from "./formats/imageBuilders.fixture.js";
import { detectCompression, detectImageFormat, sniffFormat } from "./imageFormat.js";

const file = tempFiles("imgfmt-");

describe("detectImageFormat", () => {
  it("reads a self-contained qcow2 v3 header", async () => {
    const d = await detectImageFormat(await file(qcow2({ size: 123n * 2n ** 20n })));
    expect(d).toMatchObject({ format: "qcow2", version: 3, virtualSize: 123 * 2 ** 20, backingFile: null, hasDataFile: false, clusterBits: 16 });
  });

  it("reads a qcow2 v2 header with a backing file and its format", async () => {
    const d = await detectImageFormat(await file(qcow2({ version: 2, backing: "/images/base.raw", backingFormat: "raw" })));
    expect(d).toMatchObject({ format: "qcow2", version: 2, backingFile: "/images/base.raw", backingFormat: "raw" });
  });

  it("sees an external data file from the feature bit and from the extension", async () => {
    expect(await detectImageFormat(await file(qcow2({ incompatible: 1n << 2n })))).toMatchObject({ hasDataFile: true, dataFile: null });
    expect(await detectImageFormat(await file(qcow2({ incompatible: 1n << 2n, dataFileName: "/etc/shadow" })))).toMatchObject({
      hasDataFile: true,
      dataFile: "/etc/shadow",
    });
    expect(await detectImageFormat(await file(qcow2({ dataFileName: "/x" })))).toMatchObject({ hasDataFile: true });
  });

  it("treats a file with no known magic as raw", async () => {
    const mbr = Buffer.alloc(1024 * 1024);
    mbr.writeUInt16LE(0xaa55, 510);
    expect(await detectImageFormat(await file(mbr))).toEqual({
      format: "raw",
      virtualSize: 1024 * 1024,
      fileSize: 1024 * 1024,
      backingFile: null,
      hasDataFile: false,
    });
  });

  it("reads each supported format's own header", async () => {
    expect(await detectImageFormat(await file(vmdkSparseImage({ capacitySectors: 2048n })))).toMatchObject({ format: "vmdk", kind: "sparse", virtualSize: 2 ** 20 });
    expect(await detectImageFormat(await file(vdiImage({ size: 2n ** 21n })))).toMatchObject({ format: "vdi", virtualSize: 2 ** 21 });
    expect(await detectImageFormat(await file(vhdxImage({ size: 2n ** 22n })))).toMatchObject({ format: "vhdx", virtualSize: 2 ** 22 });
    expect(await detectImageFormat(await file(vpcImage({ currentSize: 2n ** 23n })))).toMatchObject({ format: "vpc", virtualSize: 2 ** 23 });
  });

  it("calls a truncated header of any format invalid", async () => {
    for (const img of [vmdkSparseImage().subarray(0, 1024), vhdxImage().subarray(0, 4096), vpcImage().subarray(0, 700), vdiImage().subarray(0, 300)]) {
      await expect(detectImageFormat(await file(img))).rejects.toMatchObject({ code: "IMAGE_INVALID" });
    }
  });
});

describe("sniffFormat", () => {
  const pad = (b: Buffer | string, to = 512): Buffer => Buffer.concat([Buffer.from(b), Buffer.alloc(Math.max(0, to - Buffer.from(b).length))]);
  it.each([
    ["vmdk (sparse)", pad("KDMV"), "vmdk"],
    ["vmdk (COWD)", pad("COWD"), "vmdk"],
    ["vmdk (descriptor)", pad('# Disk DescriptorFile\nversion=1\nRW 100 FLAT "/etc/passwd" 0\n'), "vmdk"],
    ["vmdk (descriptor without the header line)", pad('version=1\ncreateType="monolithicFlat"\n'), "vmdk"],
    ["vhdx", pad("vhdxfile"), "vhdx"],
    ["vpc (dynamic, header copy)", pad("conectix", 1024), "vpc"],
    ["qed", pad("QED\0"), "qed"],
    ["luks", pad(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 1])), "luks"],
    ["gzip", pad(Buffer.from([0x1f, 0x8b, 8, 0])), "gzip"],
    ["xz", pad(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz"],
    ["qcow v1", pad(Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 1])), "qcow"],
    ["parallels", pad("WithoutFreeSpace"), "parallels"],
  ] as const)("recognizes %s", (_label, head, format) => {
    expect(sniffFormat(head, Buffer.alloc(512))).toBe(format);
  });

  it("finds a fixed VHD by the footer in its last 512 bytes", () => {
    expect(sniffFormat(Buffer.alloc(512), Buffer.concat([Buffer.from("conectix"), Buffer.alloc(504)]))).toBe("vpc");
  });

  it("recognizes a VDI by its signature at byte 64", () => {
    expect(sniffFormat(vdiImage(), Buffer.alloc(512))).toBe("vdi");
  });

  it("says null (raw) for a disk with no magic", () => {
    expect(sniffFormat(Buffer.alloc(512), Buffer.alloc(512))).toBeNull();
  });
});

describe("detectCompression", () => {
  it("tells gzip and xz apart by their magic and says null for anything else", async () => {
    expect(await detectCompression(await file(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0])))).toBe("gzip");
    expect(await detectCompression(await file(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4])))).toBe("xz");
    expect(await detectCompression(await file(qcow2()))).toBeNull();
    expect(await detectCompression(await file(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))).toBeNull();
    expect(await detectCompression(await file(""))).toBeNull();
  });
});
