import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { parseImageInfo, QemuImg } from "./qemuImg.js";
import { prlimitAvailable } from "./run.js";

const OVERLAY_INFO = `{
    "backing-filename-format": "raw",
    "virtual-size": 4194304,
    "filename": "ov.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 200704,
    "format-specific": { "type": "qcow2", "data": { "compat": "1.1", "compression-type": "zlib",
        "lazy-refcounts": false, "refcount-bits": 16, "corrupt": false, "extended-l2": false } },
    "full-backing-filename": "/tmp/qt/base.raw",
    "backing-filename": "/tmp/qt/base.raw",
    "dirty-flag": false
}`;

const DATA_FILE_INFO = `{ "virtual-size": 1048576, "filename": "dfi.qcow2", "cluster-size": 65536, "format": "qcow2",
    "actual-size": 200704, "format-specific": { "type": "qcow2", "data": { "compat": "1.1",
    "data-file": "/tmp/qt/df.raw", "data-file-raw": false, "corrupt": false } }, "dirty-flag": false }`;

describe("parseImageInfo", () => {
  it("reads an overlay's sizes and backing file", () => {
    expect(parseImageInfo(OVERLAY_INFO)).toEqual({
      filename: "ov.qcow2",
      format: "qcow2",
      virtualSize: 4194304,
      actualSize: 200704,
      clusterSize: 65536,
      dirty: false,
      encrypted: false,
      backingFilename: "/tmp/qt/base.raw",
      fullBackingFilename: "/tmp/qt/base.raw",
      backingFormat: "raw",
      dataFile: null,
      compat: "1.1",
      corrupt: false,
      snapshots: [],
      bitmaps: [],
    });
  });

  it("reads persistent dirty bitmaps with their flags (in-use on a closed image: not saved cleanly)", () => {
    const info = JSON.parse(OVERLAY_INFO) as { "format-specific": { data: Record<string, unknown> } };
    info["format-specific"].data["bitmaps"] = [
      { flags: ["auto"], name: "iaas-backup", granularity: 65536 },
      { flags: ["in-use", "auto"], name: "old", granularity: 65536 },
    ];
    expect(parseImageInfo(JSON.stringify(info)).bitmaps).toEqual([
      { name: "iaas-backup", flags: ["auto"] },
      { name: "old", flags: ["in-use", "auto"] },
    ]);
  });

  it("reads internal snapshots with the size of their saved VM state", () => {
    const info = JSON.parse(OVERLAY_INFO) as Record<string, unknown>;
    info["snapshots"] = [
      { id: "1", name: "cold", "vm-state-size": 0, "date-sec": 1700000000, "date-nsec": 0, "vm-clock-sec": 0, "vm-clock-nsec": 0, icount: 0 },
      { id: "2", name: "warm", "vm-state-size": 52428800, "date-sec": 1700000100, "date-nsec": 0, "vm-clock-sec": 12, "vm-clock-nsec": 0, icount: 0 },
    ];
    expect(parseImageInfo(JSON.stringify(info)).snapshots).toEqual([
      { id: "1", name: "cold", vmStateSize: 0, dateSec: 1700000000 },
      { id: "2", name: "warm", vmStateSize: 52428800, dateSec: 1700000100 },
    ]);
  });

  it("reads the external data file from format-specific data", () => {
    expect(parseImageInfo(DATA_FILE_INFO).dataFile).toBe("/tmp/qt/df.raw");
  });

  it("reads a raw image, which has no cluster size or backing file", () => {
    const info = parseImageInfo('{"virtual-size": 2097152, "filename": "b.raw", "format": "raw", "actual-size": 4096, "dirty-flag": false}');
    expect(info).toMatchObject({ format: "raw", virtualSize: 2097152, clusterSize: null, backingFilename: null, dataFile: null, compat: null });
  });

  it("refuses output that is not JSON or lacks the essentials", () => {
    expect(() => parseImageInfo("qemu-img: oops")).toThrow(IaasError);
    expect(() => parseImageInfo('{"format": "raw"}')).toThrow(/virtual-size/);
  });
});

describe("QemuImg argv (with a recording stand-in for the binary)", () => {
  let dir: string;
  let log: string;
  let img: QemuImg;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "qimgu-"));
    log = join(dir, "argv.log");
    const fake = join(dir, "fake-qemu-img");
    // Records its argv and the limits it runs under, prints what each subcommand prints, and exits like qemu-img.
    await writeFile(
      fake,
      `#!${process.execPath}
const fs = require("fs");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + "\\n");
const as = (fs.readFileSync("/proc/self/limits", "utf8").match(/^Max address space +(\\S+)/m) || [])[1];
fs.writeFileSync(${JSON.stringify(log)} + ".limits", JSON.stringify({ as, arenas: process.env.MALLOC_ARENA_MAX || null }));
if (args[0] === "info") process.stdout.write('{"virtual-size": 1048576, "format": "qcow2", "filename": "x"}');
if (args[0] === "convert") process.stdout.write("    (0.00/100%)\\r    (50.00/100%)\\r    (100.00/100%)\\r\\n");
if (args[0] === "check" && args.includes("raw")) { process.stderr.write("qemu-img: This image format does not support checks\\n"); process.exit(63); }
if (args[0] === "check") process.stdout.write('{"check-errors": 0, "leaks": 2}'), process.exit(3);
if (args.includes("/fail")) { process.stderr.write("qemu-img: Could not open '/fail': No such file\\n"); process.exit(1); }
`,
    );
    await chmod(fake, 0o755);
    img = new QemuImg({ binary: fake, probeLimits: null, convertLimits: null });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function lastArgv(): Promise<string[]> {
    const lines = (await readFile(log, "utf8")).trim().split("\n");
    return JSON.parse(lines.at(-1) ?? "[]") as string[];
  }

  it("always passes -f and --output=json to info, and -U when asked", async () => {
    await img.info("/images/a.qcow2", "qcow2");
    expect(await lastArgv()).toEqual(["info", "-f", "qcow2", "--output=json", "/images/a.qcow2"]);
    await img.info("/images/a.qcow2", "qcow2", { allowShared: true });
    expect(await lastArgv()).toEqual(["info", "-f", "qcow2", "--output=json", "-U", "/images/a.qcow2"]);
  });

  it("creates overlays with -b and -F, and an optional size", async () => {
    await img.createOverlay("/vms/d.qcow2", "/images/base.qcow2", "qcow2");
    expect(await lastArgv()).toEqual(["create", "-f", "qcow2", "-b", "/images/base.qcow2", "-F", "qcow2", "/vms/d.qcow2"]);
    await img.createOverlay("/vms/d.qcow2", "/images/base.raw", "raw", 10 * 2 ** 30);
    expect(await lastArgv()).toEqual(["create", "-f", "qcow2", "-b", "/images/base.raw", "-F", "raw", "/vms/d.qcow2", "10737418240"]);
  });

  it("resizes with -f, shrinking only when asked", async () => {
    await img.resize("/vms/d.qcow2", "qcow2", 2 ** 30);
    expect(await lastArgv()).toEqual(["resize", "-f", "qcow2", "/vms/d.qcow2", "1073741824"]);
    await img.resize("/vms/d.qcow2", "qcow2", 2 ** 20, { shrink: true });
    expect(await lastArgv()).toEqual(["resize", "-f", "qcow2", "--shrink", "/vms/d.qcow2", "1048576"]);
  });

  it("converts with -p, -f and -O and reports progress", async () => {
    const seen: number[] = [];
    await img.convert("/in.raw", "raw", join(dir, "out.qcow2"), "qcow2", { onProgress: (p) => seen.push(p) });
    expect(await lastArgv()).toEqual(["convert", "-p", "-f", "raw", "-O", "qcow2", "/in.raw", join(dir, "out.qcow2")]);
    expect(seen).toEqual([0, 50, 100]);
  });

  it("adds -c and an escaped -o for convert when asked", async () => {
    await img.convert("/in.raw", "raw", join(dir, "out.qcow2"), "qcow2", { compress: true, options: { compat: "1.1", cluster_size: "65536" } });
    expect(await lastArgv()).toEqual(["convert", "-p", "-f", "raw", "-O", "qcow2", "-c", "-o", "compat=1.1,cluster_size=65536", "/in.raw", join(dir, "out.qcow2")]);
    await img.convert("/in.raw", "raw", join(dir, "out.vmdk"), "vmdk", { options: { subformat: "streamOptimized" } });
    expect(await lastArgv()).toEqual(["convert", "-p", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "/in.raw", join(dir, "out.vmdk")]);
  });

  it.runIf(prlimitAvailable() !== null)("runs convert under its address-space limit by default, with glibc arenas capped", async () => {
    const limited = new QemuImg({ binary: join(dir, "fake-qemu-img"), probeLimits: null });
    await limited.convert("/in.raw", "raw", join(dir, "out.qcow2"), "qcow2");
    expect(JSON.parse(await readFile(`${log}.limits`, "utf8"))).toEqual({ as: String(2 * 2 ** 30), arenas: "2" });
    await img.convert("/in.raw", "raw", join(dir, "out.qcow2"), "qcow2");
    expect(JSON.parse(await readFile(`${log}.limits`, "utf8"))).toEqual({ as: "unlimited", arenas: null });
  });

  it("refuses compression for anything but qcow2 output, and file-referencing options, before running anything", async () => {
    const before = await readFile(log, "utf8");
    await expect(img.convert("/in.raw", "raw", "/out.vmdk", "vmdk", { compress: true })).rejects.toThrow(/only supported for qcow2/);
    await expect(img.convert("/in.raw", "raw", "/out.qcow2", "qcow2", { options: { data_file: "/dev/sda" } })).rejects.toThrow(/not allowed/);
    expect(await readFile(log, "utf8")).toBe(before);
  });

  it("checks every format qemu-img can check with -f", async () => {
    for (const format of ["qcow2", "vdi", "vhdx", "vmdk", "qed"] as const) {
      await img.check(`/in.${format}`, format);
      expect(await lastArgv()).toEqual(["check", "-f", format, "--output=json", `/in.${format}`]);
    }
  });

  it("maps check exit codes: 63 unsupported, 3 leaks only (still ok)", async () => {
    expect(await img.check("/in.raw", "raw")).toEqual({ ok: false, supported: false, corruptions: 0, leaks: 0, exitCode: 63 });
    expect(await img.check("/in.qcow2", "qcow2")).toEqual({ ok: true, supported: true, corruptions: 0, leaks: 2, exitCode: 3 });
  });

  it("turns a failure into QEMU_IMG_FAILED with qemu-img's message", async () => {
    const err = await img.info("/fail", "qcow2").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).code).toBe("QEMU_IMG_FAILED");
    expect((err as IaasError).message).toContain("Could not open '/fail'");
  });

  it("refuses relative paths, unknown formats and bad sizes before running anything", async () => {
    await expect(img.info("a.qcow2", "qcow2")).rejects.toThrow(/absolute path/);
    await expect(img.createOverlay("/vms/d.qcow2", "base.qcow2", "qcow2")).rejects.toThrow(/backing must be an absolute path/);
    await expect(img.info("/a", "bochs" as "raw")).rejects.toThrow(/not a known image format/);
    await expect(img.resize("/a", "qcow2", -1)).rejects.toThrow(/positive whole number/);
  });

  it("reports a missing binary with an install hint", async () => {
    const err = await new QemuImg({ binary: "/nonexistent/qemu-img" }).info("/a", "raw").catch((e: unknown) => e);
    expect((err as IaasError).code).toBe("QEMU_IMG_FAILED");
    expect((err as IaasError).hint).toContain("qemu-utils");
  });
});
