import { describe, expect, it } from "vitest";
import { vmdkDescriptor, vmdkSparseImage } from "./imageBuilders.fixture.js";
import { bufferImageReader, ImageHeaderError } from "./imageReader.js";
import { looksLikeVmdkDescriptor, parseVmdkDescriptor, readVmdk } from "./vmdk.js";

describe("parseVmdkDescriptor", () => {
  it("reads createType, the extent lines and a parent hint", () => {
    const d = parseVmdkDescriptor(vmdkDescriptor({ parentHint: "/images/base.vmdk", extents: ['RW 100 SPARSE "a.vmdk"', 'RDONLY 8 FLAT "/dev/sda" 0', "RW 4 ZERO"] }));
    expect(d.createType).toBe("monolithicSparse");
    expect(d.parentFileNameHint).toBe("/images/base.vmdk");
    expect(d.extents).toEqual([
      { access: "RW", sectors: 100, type: "SPARSE", fileName: "a.vmdk", line: 'RW 100 SPARSE "a.vmdk"' },
      { access: "RDONLY", sectors: 8, type: "FLAT", fileName: "/dev/sda", line: 'RDONLY 8 FLAT "/dev/sda" 0' },
      { access: "RW", sectors: 4, type: "ZERO", fileName: null, line: "RW 4 ZERO" },
    ]);
  });

  it("counts a line that starts like an extent but does not parse, so it cannot slip through", () => {
    const d = parseVmdkDescriptor('createType="monolithicSparse"\r\nRW lots SPARSE "x"\r\n');
    expect(d.extents).toHaveLength(1);
    expect(d.extents[0]).toMatchObject({ type: "?", line: 'RW lots SPARSE "x"' });
  });

  it("ignores comments and ddb entries", () => {
    expect(parseVmdkDescriptor('# createType="x"\nddb.createType = "y"\n')).toEqual({ createType: null, extents: [], parentFileNameHint: null });
  });
});

describe("looksLikeVmdkDescriptor", () => {
  it("recognizes the usual header line and QEMU's version= probe", () => {
    expect(looksLikeVmdkDescriptor(Buffer.from("# Disk DescriptorFile\n"))).toBe(true);
    expect(looksLikeVmdkDescriptor(Buffer.from("# a comment\n\n  \nversion=1\nRW 1 FLAT \"/x\" 0\n"))).toBe(true);
    expect(looksLikeVmdkDescriptor(Buffer.from("version=3\r\n"))).toBe(true);
    expect(looksLikeVmdkDescriptor(Buffer.from("hello\nversion=1\n"))).toBe(false);
    expect(looksLikeVmdkDescriptor(Buffer.alloc(512))).toBe(false);
  });
});

describe("readVmdk", () => {
  it("reads a monolithicSparse file's capacity and embedded descriptor", async () => {
    const v = await readVmdk(bufferImageReader(vmdkSparseImage({ capacitySectors: 20480n })));
    expect(v).toMatchObject({ kind: "sparse", version: 1, capacitySectors: 20480, virtualSize: 10 * 2 ** 20, compressed: false, hasParent: false });
    if (v.kind !== "sparse") throw new Error("expected sparse");
    expect(v.descriptor?.extents.map((e) => e.type)).toEqual(["SPARSE"]);
  });

  it("takes the header from the footer of a streamOptimized file with its grain directory at the end", async () => {
    const img = vmdkSparseImage({ version: 3, compressAlgorithm: 1, capacitySectors: 8n, footerCapacitySectors: 4096n, descriptor: vmdkDescriptor({ createType: "streamOptimized" }) });
    expect(await readVmdk(bufferImageReader(img))).toMatchObject({ kind: "sparse", capacitySectors: 4096, virtualSize: 2 * 2 ** 20, compressed: true });
  });

  it("refuses a grain directory at the end without a valid footer", async () => {
    const img = vmdkSparseImage({ footerCapacitySectors: 4096n });
    img.writeUInt32LE(0, img.length - 1024); // break the footer header's magic
    await expect(readVmdk(bufferImageReader(img))).rejects.toThrow(/no valid footer/);
  });

  it("reads a sparse header with capacity 0 as the descriptor file QEMU would take it for", async () => {
    const desc = vmdkDescriptor({ createType: "monolithicFlat", extents: ['RW 4 FLAT "/etc/passwd" 0'] });
    const v = await readVmdk(bufferImageReader(vmdkSparseImage({ capacitySectors: 0n, descriptor: desc })));
    expect(v).toMatchObject({ kind: "descriptor", embedded: true, descriptor: { createType: "monolithicFlat" } });
  });

  it("finds a parent hint in the descriptor area QEMU reads, even where the header points elsewhere", async () => {
    const img = vmdkSparseImage({ descSectors: [0n, 0n], descriptor: vmdkDescriptor({ parentHint: "/var/lib/base.vmdk" }) });
    expect(await readVmdk(bufferImageReader(img))).toMatchObject({ kind: "sparse", descriptor: null, hasParent: true, parentFileNameHint: "/var/lib/base.vmdk" });
  });

  it("reads a text descriptor file without opening what it names", async () => {
    const v = await readVmdk(bufferImageReader(Buffer.from(vmdkDescriptor({ createType: "monolithicFlat", extents: ['RW 8 FLAT "/etc/shadow" 0'] }))));
    expect(v).toMatchObject({ kind: "descriptor", embedded: false });
    if (v.kind !== "descriptor") throw new Error("expected descriptor");
    expect(v.descriptor.extents[0]?.fileName).toBe("/etc/shadow");
  });

  it("recognizes an ESX COWD extent", async () => {
    expect(await readVmdk(bufferImageReader(Buffer.concat([Buffer.from("COWD"), Buffer.alloc(2044)])))).toEqual({ kind: "vmfsSparse" });
  });

  it("calls a header or descriptor cut short truncated", async () => {
    const img = vmdkSparseImage();
    await expect(readVmdk(bufferImageReader(img.subarray(0, 100)))).rejects.toThrow(ImageHeaderError);
    await expect(readVmdk(bufferImageReader(img.subarray(0, 2048)))).rejects.toThrow(/past the end|truncated/);
  });
});
