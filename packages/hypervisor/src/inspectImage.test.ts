import { describe, expect, it } from "vitest";
import { IaasError, type ErrorCode } from "@iaas/contracts";
import { qcow2Image as qcow2, vdiImage, vhdxImage, vmdkDescriptor, vmdkSparseImage, vpcImage, tempFiles } from "./formats/imageBuilders.fixture.js";
import { inspectImage, type InspectOptions } from "./inspectImage.js";

const file = tempFiles("inspect-");

interface Refusal {
  code: ErrorCode;
  message: string;
  hint: string | null;
  retryable: boolean;
}

async function refusal(content: Buffer | string, opts?: InspectOptions): Promise<Refusal> {
  const err = await inspectImage(await file(content), opts).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof IaasError)) throw new Error(`expected an IaasError, got ${String(err)}`);
  expect(err.retryable).toBe(false);
  expect(err.hint).not.toBeNull();
  return { code: err.code, message: err.message, hint: err.hint, retryable: err.retryable };
}

const vmdkWith = (extents: string[], createType = "monolithicSparse"): Buffer => vmdkSparseImage({ descriptor: vmdkDescriptor({ createType, extents }) });

describe("inspectImage accepts", () => {
  it("a self-contained qcow2 and a raw disk", async () => {
    expect(await inspectImage(await file(qcow2({ size: 2n ** 30n })))).toEqual({ format: "qcow2", virtualSize: 2 ** 30, fileSize: 4096 });
    expect(await inspectImage(await file(Buffer.alloc(2048)))).toEqual({ format: "raw", virtualSize: 2048, fileSize: 2048 });
  });

  it("a monolithicSparse and a streamOptimized VMDK whose one SPARSE extent is the file itself", async () => {
    expect(await inspectImage(await file(vmdkSparseImage({ capacitySectors: 4096n })))).toMatchObject({ format: "vmdk", virtualSize: 2 * 2 ** 20 });
    const so = vmdkSparseImage({ version: 3, compressAlgorithm: 1, descriptor: vmdkDescriptor({ createType: "streamOptimized" }) });
    expect(await inspectImage(await file(so))).toMatchObject({ format: "vmdk", virtualSize: 10 * 2 ** 20 });
  });

  it("a VDI, a VHDX and a fixed or dynamic VHD, with the virtual size from their headers", async () => {
    expect(await inspectImage(await file(vdiImage({ size: 3n * 2n ** 30n })))).toMatchObject({ format: "vdi", virtualSize: 3 * 2 ** 30 });
    expect(await inspectImage(await file(vhdxImage({ size: 4n * 2n ** 30n })))).toMatchObject({ format: "vhdx", virtualSize: 4 * 2 ** 30 });
    expect(await inspectImage(await file(vpcImage({ currentSize: 5n * 2n ** 30n })))).toMatchObject({ format: "vpc", virtualSize: 5 * 2 ** 30 });
    expect(await inspectImage(await file(vpcImage({ type: 2, currentSize: 2n ** 20n })))).toMatchObject({ format: "vpc", virtualSize: 2 ** 20 });
  });

  it("an image whose header agrees with the declared format and fits the size limit", async () => {
    const p = await file(vhdxImage({ size: 2n ** 30n }));
    expect(await inspectImage(p, { declaredFormat: "vhdx", maxVirtualSize: 2 ** 30 })).toMatchObject({ format: "vhdx" });
  });
});

describe("inspectImage refuses VMDKs that reference other files", () => {
  it("a descriptor file, naming the files it points at", async () => {
    const e = await refusal(vmdkDescriptor({ createType: "monolithicFlat", extents: ['RW 8 FLAT "/etc/passwd" 0'] }));
    expect(e.code).toBe("IMAGE_HAS_EXTENTS");
    expect(e.message).toContain("/etc/passwd");
    expect(e.hint).toContain("qemu-img convert");
  });

  it("a sparse header with capacity 0, which QEMU reads as a descriptor file", async () => {
    const e = await refusal(vmdkSparseImage({ capacitySectors: 0n, descriptor: vmdkDescriptor({ createType: "monolithicFlat", extents: ['RW 4 FLAT "/etc/passwd" 0'] }) }));
    expect(e.code).toBe("IMAGE_HAS_EXTENTS");
    expect(e.message).toContain("capacity 0");
  });

  it.each([
    ["a FLAT extent", ['RW 20480 FLAT "/dev/sda" 0']],
    ["a ZERO extent", ["RW 20480 ZERO"]],
    ["a VMFS extent", ['RW 20480 VMFS "disk-flat.vmdk"']],
    ["two extents", ['RW 10240 SPARSE "disk.vmdk"', 'RW 10240 SPARSE "disk-s002.vmdk"']],
    ["no extent", []],
    ["a SPARSE extent in another directory", ['RW 20480 SPARSE "/var/lib/other.vmdk"']],
    ["a SPARSE extent named ..", ['RW 20480 SPARSE ".."']],
    ["an unparsable extent line", ['RW many SPARSE "disk.vmdk"']],
  ])("a sparse file whose embedded descriptor has %s", async (_label, extents) => {
    expect((await refusal(vmdkWith(extents))).code).toBe("IMAGE_HAS_EXTENTS");
  });

  it("a sparse file whose createType is not a single-file one", async () => {
    const e = await refusal(vmdkWith(['RW 20480 SPARSE "disk.vmdk"'], "twoGbMaxExtentSparse"));
    expect(e.code).toBe("IMAGE_HAS_EXTENTS");
    expect(e.message).toContain("twoGbMaxExtentSparse");
  });
});

describe("inspectImage refuses images with a parent or external data", () => {
  it("a qcow2 with a backing file, naming it and saying how to flatten", async () => {
    const e = await refusal(qcow2({ backing: "/etc/passwd" }));
    expect(e.code).toBe("IMAGE_HAS_BACKING_FILE");
    expect(e.message).toContain("/etc/passwd");
    expect(e.hint).toContain("qemu-img convert");
  });

  it("a qcow2 with an external data file", async () => {
    const e = await refusal(qcow2({ incompatible: 4n, dataFileName: "/dev/sda" }));
    expect(e.code).toBe("IMAGE_HAS_DATA_FILE");
    expect(e.message).toContain("/dev/sda");
  });

  it("a VMDK delta disk that names its parent", async () => {
    const e = await refusal(vmdkSparseImage({ descriptor: vmdkDescriptor({ parentHint: "/images/base.vmdk" }) }));
    expect(e.code).toBe("IMAGE_HAS_BACKING_FILE");
    expect(e.message).toContain("/images/base.vmdk");
  });

  it.each([
    ["a differencing VHD", vpcImage({ type: 4 })],
    ["a dynamic VHD whose header names a parent", vpcImage({ parentName: "base.vhd" })],
    ["a VHDX with HasParent set", vhdxImage({ hasParent: true })],
    ["a VHDX with a parent locator", vhdxImage({ parentLocator: true })],
    ["a differencing VDI", vdiImage({ type: 4 })],
    ["a VDI with a parent UUID", vdiImage({ parentUuid: true })],
  ])("%s", async (_label, img) => {
    expect((await refusal(img)).code).toBe("IMAGE_HAS_BACKING_FILE");
  });
});

describe("inspectImage refuses a header that disagrees with the declared format", () => {
  it("names both formats", async () => {
    const e = await refusal(qcow2(), { declaredFormat: "vmdk" });
    expect(e.code).toBe("FORMAT_MISMATCH");
    expect(e.message).toContain("declared vmdk");
    expect(e.message).toContain("qcow2");
  });

  it("calls a file declared as an image format but without its magic a mismatch, not raw", async () => {
    const e = await refusal(Buffer.alloc(4096), { declaredFormat: "qcow2" });
    expect(e.code).toBe("FORMAT_MISMATCH");
    expect(e.message).toContain("raw");
  });

  it("does not let a qcow2 pass as raw", async () => {
    expect((await refusal(qcow2(), { declaredFormat: "raw" })).code).toBe("FORMAT_MISMATCH");
  });
});

describe("inspectImage refuses oversized, broken and unsupported files", () => {
  it("a virtual size over the limit, naming both sizes", async () => {
    const e = await refusal(qcow2({ size: 2n ** 50n }), { maxVirtualSize: 2 ** 40 });
    expect(e.code).toBe("IMAGE_TOO_LARGE");
    expect(e.message).toContain(String(2 ** 50));
    expect(e.message).toContain(String(2 ** 40));
    expect((await refusal(vpcImage({ currentSize: 2n ** 41n }), { maxVirtualSize: 2 ** 40 })).code).toBe("IMAGE_TOO_LARGE");
  });

  it("an empty file", async () => {
    const e = await refusal("");
    expect(e.code).toBe("IMAGE_INVALID");
    expect(e.message).toContain("empty");
  });

  it("a truncated qcow2 header", async () => {
    const whole = qcow2();
    for (const len of [4, 8, 40, 71, 80, 103]) expect((await refusal(whole.subarray(0, len))).code, `length ${len}`).toBe("IMAGE_INVALID");
    expect((await refusal(qcow2({ backing: "/images/base.qcow2" }).subarray(0, 120))).code).toBe("IMAGE_INVALID");
  });

  it("impossible qcow2 fields", async () => {
    expect((await refusal(qcow2({ clusterBits: 40 }))).code).toBe("IMAGE_INVALID");
    expect((await refusal(qcow2({ headerLength: 50 }))).code).toBe("IMAGE_INVALID");
    const badVersion = qcow2();
    badVersion.writeUInt32BE(7, 4);
    expect((await refusal(badVersion)).code).toBe("IMAGE_INVALID");
  });

  it("a file that is neither an image nor sector-sized, and a missing file", async () => {
    expect((await refusal("<html>not a disk</html>")).code).toBe("IMAGE_INVALID");
    await expect(inspectImage(`${await file("x")}.missing`)).rejects.toMatchObject({ code: "IMAGE_INVALID" });
  });

  it("a sparse VMDK without an embedded descriptor, and a VDI with the wrong sector size", async () => {
    expect((await refusal(vmdkSparseImage({ descSectors: [0n, 0n], descriptor: "" }))).code).toBe("IMAGE_INVALID");
    expect((await refusal(vdiImage({ sectorSize: 4096 }))).code).toBe("IMAGE_INVALID");
  });

  it.each([
    ["qed", Buffer.concat([Buffer.from("QED\0"), Buffer.alloc(508)])],
    ["luks", Buffer.concat([Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 1]), Buffer.alloc(504)])],
    ["qcow", Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 1]), Buffer.alloc(504)])],
    ["parallels", Buffer.concat([Buffer.from("WithoutFreeSpace"), Buffer.alloc(496)])],
  ])("a %s image as an unsupported format, whatever format was declared", async (_label, img) => {
    expect((await refusal(img)).code).toBe("UNSUPPORTED_IMAGE_FORMAT");
    expect((await refusal(img, { declaredFormat: "raw" })).code).toBe("UNSUPPORTED_IMAGE_FORMAT");
  });

  it.each([
    ["an ESX COWD extent", Buffer.concat([Buffer.from("COWD"), Buffer.alloc(508)])],
    ["a VDI of version 1.0", vdiImage({ version: 0x00010000 })],
    ["a VDI undo image", vdiImage({ type: 3 })],
    ["a VHDX with required metadata this host does not know", vhdxImage({ unknownRequiredItem: true })],
    ["a VMDK of version 4", vmdkSparseImage({ version: 4 })],
    ["a VHD of disk type 5", vpcImage({ type: 5 })],
  ])("%s as unsupported", async (_label, img) => {
    expect((await refusal(img)).code).toBe("UNSUPPORTED_IMAGE_FORMAT");
  });

  it("compressed files, saying to decompress them first", async () => {
    const e = await refusal(Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(508)]));
    expect(e.code).toBe("UNSUPPORTED_IMAGE_FORMAT");
    expect(e.message).toContain("gzip");
    expect(e.hint).toContain("decompress");
    expect((await refusal(Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]), Buffer.alloc(506)]))).hint).toContain("unxz");
  });
});
