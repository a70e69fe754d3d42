import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError, type ErrorCode } from "@iaas/contracts";
import { guidBytes, VHDX_META } from "./formats/vhdx.js";
import { inspectImage, type InspectOptions } from "./inspectImage.js";
import { QemuImg } from "./qemuImg.js";
import { ProcessError, run } from "./run.js";

// Hostile images built with real qemu-img (or patched from what it wrote) are refused by our
// header parser. Where it shows what is at stake, qemu-img itself is run on the image.

const img = new QemuImg();
let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hostile-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const path = (name: string): string => join(dir, `${n++}-${name}`);

async function create(format: string, size: string, extra: string[] = []): Promise<string> {
  const p = path(`x.${format}`);
  await run(["qemu-img", "create", "-q", "-f", format, ...extra, p, size]);
  return p;
}

async function refusedWith(p: string, code: ErrorCode, opts?: InspectOptions): Promise<IaasError> {
  const err = await inspectImage(p, opts).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof IaasError)) throw new Error(`expected ${code}, got ${String(err)}`);
  expect(err.code).toBe(code);
  expect(err.retryable).toBe(false);
  expect(err.hint).not.toBeNull();
  return err;
}

/** What qemu-img reads through the image as raw bytes (to show what an unchecked import would leak). */
async function qemuReads(p: string, format: string): Promise<string> {
  const out = path("leak.raw");
  await run(["qemu-img", "convert", "-f", format, "-O", "raw", p, out]);
  return readFile(out, "latin1");
}

/** Recomputes a VHD footer checksum in place. */
function vhdChecksum(b: Buffer, at: number): void {
  b.writeUInt32BE(0, at + 64);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += b[i] ?? 0;
  b.writeUInt32BE(~sum >>> 0, at + 64);
}

describe("VMDK extents (CVE-2022-47951)", () => {
  it("refuses a descriptor file whose extent is /etc/passwd, which qemu-img would read", async () => {
    const p = path("desc.vmdk");
    await writeFile(p, '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 4 FLAT "/etc/passwd" 0\n');
    expect(await qemuReads(p, "vmdk")).toContain("root:");
    const err = await refusedWith(p, "IMAGE_HAS_EXTENTS");
    expect(err.message).toContain("/etc/passwd");
  });

  it("refuses a sparse VMDK with capacity 0, whose embedded descriptor qemu-img follows", async () => {
    const p = await create("vmdk", "10M");
    const b = await readFile(p);
    b.writeBigUInt64LE(0n, 12);
    const desc = '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 4 FLAT "/etc/passwd" 0\n';
    b.fill(0, 512, 512 + 20 * 512);
    b.write(desc, 512, "latin1");
    await writeFile(p, b);
    expect(await qemuReads(p, "vmdk")).toContain("root:");
    await refusedWith(p, "IMAGE_HAS_EXTENTS");
  });

  it("refuses a sparse VMDK whose embedded descriptor has a FLAT extent", async () => {
    const p = await create("vmdk", "10M");
    const b = await readFile(p);
    const text = b.toString("latin1", 512, 512 + 20 * 512);
    const patched = text.replace(/RW 20480 SPARSE "[^"]*"/, 'RW 20480 FLAT "/etc/passwd" 0');
    expect(patched).not.toBe(text);
    b.write(patched, 512, "latin1");
    await writeFile(p, b);
    const err = await refusedWith(p, "IMAGE_HAS_EXTENTS");
    expect(err.message).toContain("FLAT");
  });

  it("refuses a split VMDK made by qemu-img", async () => {
    await refusedWith(await create("vmdk", "1M", ["-o", "subformat=twoGbMaxExtentSparse"]), "IMAGE_HAS_EXTENTS");
  });
});

describe("differencing disks", () => {
  it("refuses a VMDK delta disk on a parent", async () => {
    const base = await create("vmdk", "10M");
    const delta = await create("vmdk", "10M", ["-b", base, "-F", "vmdk"]);
    const err = await refusedWith(delta, "IMAGE_HAS_BACKING_FILE");
    expect(err.message).toContain(base);
  });

  it("refuses a differencing VHD (qemu-img cannot make one, so the footers are patched)", async () => {
    const base = await create("vpc", "10M");
    const made = await run(["qemu-img", "create", "-q", "-f", "vpc", "-b", base, "-F", "vpc", path("d.vhd"), "10M"]).catch((e: unknown) => e);
    expect(made).toBeInstanceOf(ProcessError);
    const b = await readFile(base);
    for (const at of [0, b.length - 512]) {
      b.writeUInt32BE(4, at + 60);
      vhdChecksum(b, at);
    }
    const diff = path("diff.vhd");
    await writeFile(diff, b);
    await refusedWith(diff, "IMAGE_HAS_BACKING_FILE");
  });

  it("refuses a VHDX with HasParent set in its file parameters", async () => {
    const p = await create("vhdx", "10M");
    const b = await readFile(p);
    const rt = 192 * 1024;
    let meta = -1;
    for (let i = 0; i < b.readUInt32LE(rt + 8); i++) {
      if (b.toString("hex", rt + 16 + i * 32, rt + 32 + i * 32) === guidBytes("8B7CA206-4790-4B9A-B8FE-575F050F886E")) meta = Number(b.readBigUInt64LE(rt + 32 + i * 32));
    }
    expect(meta).toBeGreaterThan(0);
    for (let i = 0; i < b.readUInt16LE(meta + 10); i++) {
      const at = meta + 32 + i * 32;
      if (b.toString("hex", at, at + 16) === VHDX_META.fileParameters) {
        const params = meta + b.readUInt32LE(at + 16);
        b.writeUInt32LE(b.readUInt32LE(params + 4) | 2, params + 4);
      }
    }
    await writeFile(p, b);
    await refusedWith(p, "IMAGE_HAS_BACKING_FILE");
  });
});

describe("format confusion, size and damage", () => {
  it("refuses a qcow2 declared as vmdk or raw, and a raw file declared as qcow2, naming both formats", async () => {
    const q = await create("qcow2", "1M");
    const err = await refusedWith(q, "FORMAT_MISMATCH", { declaredFormat: "vmdk" });
    expect(err.message).toMatch(/vmdk.*qcow2/);
    await refusedWith(q, "FORMAT_MISMATCH", { declaredFormat: "raw" });
    await refusedWith(await create("raw", "1M"), "FORMAT_MISMATCH", { declaredFormat: "qcow2" });
  });

  it("refuses a qcow2 claiming 1 PiB when the limit is 1 TiB, reading only its header", async () => {
    const p = await create("qcow2", "1P");
    const started = performance.now();
    const err = await refusedWith(p, "IMAGE_TOO_LARGE", { maxVirtualSize: 2 ** 40 });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.message).toContain(String(2 ** 50));
    expect(err.message).toContain(String(2 ** 40));
    expect(await inspectImage(p)).toMatchObject({ format: "qcow2", virtualSize: 2 ** 50 });
  });

  it("refuses truncated qcow2 and vhdx files and an empty file as invalid", async () => {
    for (const [format, keep] of [["qcow2", 50], ["vhdx", 100 * 1024], ["vdi", 300]] as const) {
      const p = await create(format, "1M");
      await writeFile(p, (await readFile(p)).subarray(0, keep));
      await refusedWith(p, "IMAGE_INVALID");
    }
    const empty = path("empty");
    await writeFile(empty, "");
    const err = await refusedWith(empty, "IMAGE_INVALID");
    expect(err.message).toContain("empty");
  });

  it("agrees with qemu-img about which VHD creators' footer sizes to trust over the geometry", async () => {
    const base = await readFile(await create("vpc", "10M"));
    for (const creator of ["vpc ", "qemu", "win ", "d2v ", "qem2"]) {
      const b = Buffer.from(base);
      for (const at of [0, b.length - 512]) {
        b.write(creator, at + 28, "latin1");
        b.writeBigUInt64BE(8n * 2n ** 20n, at + 48);
        vhdChecksum(b, at);
      }
      const p = path("creator.vhd");
      await writeFile(p, b);
      expect((await inspectImage(p)).virtualSize, creator).toBe((await img.info(p, "vpc")).virtualSize);
    }
  });
});
