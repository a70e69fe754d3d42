import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError, type ErrorCode } from "@iaas/contracts";
import { detectImageFormat, inspectImage } from "./imageFormat.js";

interface Qcow2Opts {
  version?: 2 | 3;
  size?: bigint;
  clusterBits?: number;
  backing?: string;
  backingFormat?: string;
  incompatible?: bigint;
  dataFileName?: string;
  crypt?: number;
  headerLength?: number;
}

/** A hand-built qcow2 header: fields, extensions, then the backing file name. */
function qcow2(o: Qcow2Opts = {}): Buffer {
  const version = o.version ?? 3;
  const headerLength = o.headerLength ?? (version === 3 ? 104 : 72);
  const exts: Buffer[] = [];
  const ext = (type: number, data: string): void => {
    const d = Buffer.from(data);
    const e = Buffer.alloc(8 + Math.ceil(d.length / 8) * 8);
    e.writeUInt32BE(type, 0);
    e.writeUInt32BE(d.length, 4);
    d.copy(e, 8);
    exts.push(e);
  };
  if (o.backingFormat !== undefined) ext(0xe2792aca, o.backingFormat);
  if (o.dataFileName !== undefined) ext(0x44415441, o.dataFileName);
  exts.push(Buffer.alloc(8)); // end of extensions
  const extBytes = Buffer.concat(exts);
  const backing = Buffer.from(o.backing ?? "");
  const backingOffset = headerLength + extBytes.length;
  const total = Math.max(4096, backingOffset + backing.length);
  const b = Buffer.alloc(total);
  b.write("QFI\xfb", 0, "latin1");
  b.writeUInt32BE(version, 4);
  if (backing.length > 0) {
    b.writeBigUInt64BE(BigInt(backingOffset), 8);
    b.writeUInt32BE(backing.length, 16);
  }
  b.writeUInt32BE(o.clusterBits ?? 16, 20);
  b.writeBigUInt64BE(o.size ?? 10n * 2n ** 30n, 24);
  b.writeUInt32BE(o.crypt ?? 0, 32);
  if (version === 3) {
    b.writeBigUInt64BE(o.incompatible ?? 0n, 72);
    b.writeUInt32BE(4, 96); // refcount_order
    b.writeUInt32BE(headerLength, 100);
  }
  extBytes.copy(b, headerLength);
  backing.copy(b, backingOffset);
  return b;
}

let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "imgfmt-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(content: Buffer | string): Promise<string> {
  const p = join(dir, `f${n++}`);
  await writeFile(p, content);
  return p;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: ErrorCode; message: string; hint: string | null; retryable: boolean }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof IaasError)) throw new Error(`expected an IaasError, got ${String(err)}`);
  return { code: err.code, message: err.message, hint: err.hint, retryable: err.retryable };
}

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

  it.each([
    ["vmdk (sparse)", Buffer.concat([Buffer.from("KDMV"), Buffer.alloc(508)]), "vmdk"],
    ["vmdk (descriptor)", Buffer.from("# Disk DescriptorFile\nversion=1\nRW 100 FLAT \"/etc/passwd\" 0\n"), "vmdk"],
    ["vhdx", Buffer.concat([Buffer.from("vhdxfile"), Buffer.alloc(504)]), "vhdx"],
    ["vpc (dynamic, header copy)", Buffer.concat([Buffer.from("conectix"), Buffer.alloc(1016)]), "vpc"],
    ["vpc (fixed, footer only)", Buffer.concat([Buffer.alloc(2048), Buffer.from("conectix"), Buffer.alloc(504)]), "vpc"],
    ["qed", Buffer.concat([Buffer.from("QED\0"), Buffer.alloc(508)]), "qed"],
    ["luks", Buffer.concat([Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 1]), Buffer.alloc(504)]), "luks"],
    ["gzip", Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(508)]), "gzip"],
    ["qcow v1", (() => {
      const b = Buffer.alloc(512);
      b.write("QFI\xfb", 0, "latin1");
      b.writeUInt32BE(1, 4);
      return b;
    })(), "qcow"],
  ] as const)("recognizes %s", async (_label, content, format) => {
    expect((await detectImageFormat(await file(content))).format).toBe(format);
  });

  it("recognizes a VDI by its signature at byte 64", async () => {
    const b = Buffer.alloc(512);
    b.write("<<< Oracle VM VirtualBox Disk Image >>>\n", 0);
    b.writeUInt32LE(0xbeda107f, 64);
    expect((await detectImageFormat(await file(b))).format).toBe("vdi");
  });
});

describe("inspectImage", () => {
  it("accepts a self-contained qcow2 and a raw disk", async () => {
    expect(await inspectImage(await file(qcow2({ size: 2n ** 30n })))).toEqual({ format: "qcow2", virtualSize: 2 ** 30, fileSize: 4096 });
    expect(await inspectImage(await file(Buffer.alloc(2048)))).toEqual({ format: "raw", virtualSize: 2048, fileSize: 2048 });
  });

  it("refuses a qcow2 with a backing file, naming it and saying how to flatten", async () => {
    const e = await codeOf(inspectImage(await file(qcow2({ backing: "/etc/passwd" }))));
    expect(e.code).toBe("IMAGE_HAS_BACKING_FILE");
    expect(e.message).toContain("/etc/passwd");
    expect(e.hint).toContain("qemu-img convert");
    expect(e.retryable).toBe(false);
  });

  it("refuses a qcow2 with an external data file", async () => {
    const e = await codeOf(inspectImage(await file(qcow2({ incompatible: 4n, dataFileName: "/dev/sda" }))));
    expect(e.code).toBe("IMAGE_HAS_DATA_FILE");
    expect(e.message).toContain("/dev/sda");
  });

  it("refuses VMDK and other formats as unsupported with a conversion hint", async () => {
    const e = await codeOf(inspectImage(await file(Buffer.from("# Disk DescriptorFile\n"))));
    expect(e.code).toBe("UNSUPPORTED_IMAGE_FORMAT");
    expect(e.message).toContain("VMDK");
    expect(e.hint).toContain("qemu-img convert -f vmdk -O qcow2");
    expect((await codeOf(inspectImage(await file(Buffer.concat([Buffer.from("vhdxfile"), Buffer.alloc(504)]))))).code).toBe(
      "UNSUPPORTED_IMAGE_FORMAT",
    );
  });

  it("refuses encrypted qcow2 and qcow2 with unknown incompatible features", async () => {
    expect((await codeOf(inspectImage(await file(qcow2({ crypt: 2 }))))).code).toBe("UNSUPPORTED_IMAGE_FORMAT");
    expect((await codeOf(inspectImage(await file(qcow2({ incompatible: 1n << 40n }))))).code).toBe("UNSUPPORTED_IMAGE_FORMAT");
  });

  it("accepts a dirty qcow2 but refuses one marked corrupt", async () => {
    expect((await inspectImage(await file(qcow2({ incompatible: 1n })))).format).toBe("qcow2");
    expect((await codeOf(inspectImage(await file(qcow2({ incompatible: 2n }))))).code).toBe("IMAGE_INVALID");
  });

  it("calls an empty file invalid", async () => {
    const e = await codeOf(inspectImage(await file("")));
    expect(e.code).toBe("IMAGE_INVALID");
    expect(e.message).toContain("empty");
  });

  it("calls a truncated qcow2 header invalid", async () => {
    const whole = qcow2();
    for (const len of [4, 8, 40, 71, 80, 103]) {
      const e = await codeOf(inspectImage(await file(whole.subarray(0, len))));
      expect(e.code, `length ${len}`).toBe("IMAGE_INVALID");
    }
  });

  it("calls a qcow2 whose backing name lies past the end of the file invalid", async () => {
    const b = qcow2({ backing: "/images/base.qcow2" });
    const e = await codeOf(inspectImage(await file(b.subarray(0, 120))));
    expect(e.code).toBe("IMAGE_INVALID");
  });

  it("calls impossible qcow2 fields invalid", async () => {
    expect((await codeOf(inspectImage(await file(qcow2({ clusterBits: 40 }))))).code).toBe("IMAGE_INVALID");
    expect((await codeOf(inspectImage(await file(qcow2({ headerLength: 50 }))))).code).toBe("IMAGE_INVALID");
    const badVersion = qcow2();
    badVersion.writeUInt32BE(7, 4);
    expect((await codeOf(inspectImage(await file(badVersion)))).code).toBe("IMAGE_INVALID");
  });

  it("calls a file that is neither an image nor sector-sized invalid, and a missing file too", async () => {
    expect((await codeOf(inspectImage(await file("<html>not a disk</html>")))).code).toBe("IMAGE_INVALID");
    expect((await codeOf(inspectImage(join(dir, "missing"))))).toMatchObject({ code: "IMAGE_INVALID" });
  });
});
