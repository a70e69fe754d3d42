import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImageFormat } from "@iaas/contracts";
import { inspectImage } from "./inspectImage.js";
import { QemuImg } from "./qemuImg.js";
import { exportOptions } from "./qemuImgOptions.js";
import { run } from "./run.js";

// Real qemu-img: every importable format goes raw → FORMAT (with the export options) → our
// header parser → qcow2, and must come back byte for byte.

const img = new QemuImg();
const SIZE = 6 * 1024 * 1024;
let dir: string;
let src: string;

/** A known pattern with holes: 1 MiB of counter bytes, 1 MiB of zeros, repeated. */
async function writePattern(path: string): Promise<void> {
  const fh = await open(path, "w");
  try {
    for (let mib = 0; mib < SIZE / 2 ** 20; mib++) {
      const b = Buffer.alloc(2 ** 20);
      if (mib % 2 === 0) for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((mib << 20) + i, i);
      await fh.write(b);
    }
  } finally {
    await fh.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "roundtrip-"));
  src = join(dir, "pattern.raw");
  await writePattern(src);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FORMATS: ImageFormat[] = ["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"];

describe("image round trips through real qemu-img", () => {
  it.each(FORMATS)("a %s export is identified by its header and imports back to an identical qcow2", async (format) => {
    const exported = join(dir, `export.${format}`);
    await img.convert(src, "raw", exported, format, { options: exportOptions(format) });

    const inspected = await inspectImage(exported, { declaredFormat: format, maxVirtualSize: SIZE });
    expect(inspected).toEqual({ format, virtualSize: SIZE, fileSize: (await stat(exported)).size });

    const imported = join(dir, `import-from-${format}.qcow2`);
    const seen: number[] = [];
    await img.convert(exported, inspected.format, imported, "qcow2", { onProgress: (p) => seen.push(p) });
    expect(seen.at(-1)).toBe(100);
    const cmp = await run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, imported]);
    expect(cmp.stdout).toContain("Images are identical");
  });

  it("a compressed qcow2 export is smaller and still identical", async () => {
    const plain = join(dir, "plain.qcow2");
    const packed = join(dir, "packed.qcow2");
    await img.convert(src, "raw", plain, "qcow2", { options: exportOptions("qcow2") });
    await img.convert(src, "raw", packed, "qcow2", { compress: true, options: exportOptions("qcow2") });
    expect((await stat(packed)).size).toBeLessThan((await stat(plain)).size);
    expect(await inspectImage(packed)).toMatchObject({ format: "qcow2", virtualSize: SIZE });
    await run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, packed]);
  });

  it("the export options produce the subformats other hypervisors expect", async () => {
    const info = async (format: ImageFormat): Promise<string> => (await run(["qemu-img", "info", "-f", format, join(dir, `export.${format}`)])).stdout;
    expect(await info("vmdk")).toContain("create type: streamOptimized");
    expect(await info("qcow2")).toContain("compat: 1.1");
    // force_size=on writes the exact size with the "qem2" creator, so no CHS rounding happened.
    expect((await run(["qemu-img", "info", "-f", "vpc", "--output=json", join(dir, "export.vpc")])).stdout).toContain(`"virtual-size": ${SIZE}`);
  });
});
