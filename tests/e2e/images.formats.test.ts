import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Export, Image, ImageFormat, Vm } from "@iaas/contracts";
import { guestImages, Stack } from "./harness.js";
import { apiGet, exists, MiB, qemuCompare, qemuImg, sha256File, showExport, showImage, storedImageFile, writePatternRaw } from "./imageFixtures.js";

interface Downloaded {
  path: string;
  sizeBytes: number;
  format: ImageFormat;
  compressed: boolean;
  sha256: string;
  verified: boolean;
  export: Export;
}

const FORMATS: ImageFormat[] = ["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"];

// Every format out and back in: export through the CLI (job + resumable, verified download),
// import the file again, and compare the stored qcow2 with the original bytes using qemu-img.
describe("image formats: export and re-import round trips", () => {
  let stack: Stack;
  let tmp: string;
  let orig: string;
  let boot: string;

  beforeAll(async () => {
    tmp = await mkdtemp("/tmp/ie-fmt-");
    orig = path.join(tmp, "orig.raw");
    await writePatternRaw(orig, 4 * MiB);
    boot = (await guestImages(["bootsector"])).bootsector;
    stack = await Stack.start(["host-a"]);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  const exportTo = async (args: string[]): Promise<Downloaded> => stack.cliJson<Downloaded>(args);

  it("imports the raw pattern and stores it as qcow2 with identical content", async () => {
    const r = await stack.cli(["image", "import", "src", "--file", orig, "--wait"]);
    expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
    const image = await showImage(stack, "src");
    expect(image).toMatchObject({ state: "ready", sourceFormat: "raw", virtualSize: 4 * MiB, sha256: await sha256File(orig) });
    expect((await qemuCompare(orig, "raw", storedImageFile(stack, image), "qcow2")).code).toBe(0);
  });

  it.each(FORMATS)(
    "round-trips through %s: export, download with verified sha256, re-import, identical content",
    async (format) => {
      const file = path.join(tmp, `out.${format}`);
      const out = await exportTo(["image", "export", "src", "--format", format, "--to", file]);
      expect(out.verified).toBe(true);
      expect(await exists(`${file}.part`)).toBe(false);
      const shown = await stack.cliJson<Export>(["export", "show", out.export.id]);
      expect(shown).toMatchObject({ state: "ready", format, compressed: false, source: { type: "image", name: "src" } });
      const actual = await sha256File(file);
      expect(shown.sha256).toBe(actual);
      expect(out.sha256).toBe(actual);
      expect(shown.sizeBytes).toBe((await stat(file)).size);
      // What qemu-img reads in the file is what we asked for.
      const info = JSON.parse(await qemuImg("info", "--output=json", "-f", format, file)) as { format: string; "virtual-size": number };
      expect(info.format).toBe(format);
      expect(info["virtual-size"]).toBe(4 * MiB);
      expect((await qemuCompare(orig, "raw", file, format)).code).toBe(0);

      const name = `src-${format}`;
      const r = await stack.cli(["image", "import", name, "--file", file, "--format", format, "--wait"]);
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
      const image = await showImage(stack, name);
      expect(image).toMatchObject({ state: "ready", sourceFormat: format, virtualSize: 4 * MiB, sha256: actual });
      const cmp = await qemuCompare(orig, "raw", storedImageFile(stack, image), "qcow2");
      expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
    },
    90_000,
  );

  it("imports subformats other tools make, detecting the format from the header", async () => {
    // Fixed VHD (Azure, Hyper-V), VHD without force_size, fixed VHDX, static VDI, the default
    // monolithicSparse VMDK, streamOptimized VMDK and qcow2 v2.
    const variants: [ImageFormat, string][] = [
      ["vpc", "subformat=fixed"],
      ["vpc", "subformat=dynamic"],
      ["vhdx", "subformat=fixed"],
      ["vdi", "static=on"],
      ["vmdk", "subformat=monolithicSparse"],
      ["vmdk", "subformat=streamOptimized"],
      ["qcow2", "compat=0.10"],
    ];
    const results = await Promise.all(
      variants.map(async ([format, options], i) => {
        const file = path.join(tmp, `foreign-${i}.${format}`);
        await qemuImg("convert", "-f", "raw", "-O", format, "-o", options, orig, file);
        const name = `foreign-${i}`;
        const r = await stack.cli(["image", "import", name, "--file", file, "--wait"]);
        const image = r.code === 0 ? await showImage(stack, name) : null;
        const same = image ? (await qemuCompare(orig, "raw", storedImageFile(stack, image), "qcow2")).code : null;
        return { variant: `${format} ${options}`, code: r.code, sourceFormat: image?.sourceFormat, same, error: r.code === 0 ? "" : r.stderr };
      }),
    );
    expect(results).toEqual(variants.map(([format, options]) => ({ variant: `${format} ${options}`, code: 0, sourceFormat: format, same: 0, error: "" })));
    for (let i = 0; i < variants.length; i++) expect((await stack.cli(["image", "delete", `foreign-${i}`, "--wait"])).code).toBe(0);
  }, 120_000);

  it("exports a compressed qcow2 that is smaller, has compressed clusters and the same content", async () => {
    const plain = path.join(tmp, "out.qcow2");
    const file = path.join(tmp, "out-compressed.qcow2");
    const out = await exportTo(["image", "export", "src", "--format", "qcow2", "--compress", "--to", file]);
    expect(out.compressed).toBe(true);
    const shown = await showExport(stack, out.export.id);
    expect(shown).toMatchObject({ state: "ready", format: "qcow2", compressed: true });
    expect(shown.sha256).toBe(await sha256File(file));
    expect((await stat(file)).size).toBeLessThan((await stat(plain)).size);
    const check = JSON.parse(await qemuImg("check", "--output=json", "-f", "qcow2", file)) as { "compressed-clusters"?: number };
    expect(check["compressed-clusters"]).toBeGreaterThan(0);
    expect((await qemuCompare(orig, "raw", file, "qcow2")).code).toBe(0);
    // --compress is qcow2-only: refused before any job.
    const bad = await stack.cli(["image", "export", "src", "--format", "raw", "--compress", "--to", path.join(tmp, "x.raw")]);
    expect(bad.code).toBe(2);
    expect(await exists(path.join(tmp, "x.raw"))).toBe(false);
  }, 90_000);

  it("refuses to overwrite an existing file without --force, and replaces it with --force", async () => {
    const file = path.join(tmp, "out.raw");
    const before = await sha256File(file);
    const refused = await stack.cli(["image", "export", "src", "--format", "raw", "--to", file]);
    expect(refused.code).toBe(2);
    expect(await sha256File(file)).toBe(before);
    const forced = await exportTo(["image", "export", "src", "--format", "raw", "--to", file, "--force"]);
    expect(forced.verified).toBe(true);
    expect((await qemuCompare(orig, "raw", file, "raw")).code).toBe(0);
  }, 60_000);

  it("lists, downloads again and deletes an export", async () => {
    const list = await stack.cliJson<{ items: Export[] }>(["export", "list"]);
    const raw = list.items.find((e) => e.format === "raw" && e.state === "ready");
    expect(raw).toBeDefined();
    const again = path.join(tmp, "again.raw");
    const dl = await stack.cli(["export", "download", raw?.id ?? "", "--to", again]);
    expect(dl.code, dl.stderr).toBe(0);
    expect(await sha256File(again)).toBe(raw?.sha256);
    // The file over REST: Range (206) and the checksum headers.
    const head = await fetch(`${stack.url}${raw?.downloadUrl ?? ""}`, { headers: { range: "bytes=100-199" } });
    expect(head.status).toBe(206);
    expect(head.headers.get("x-checksum-sha256")).toBe(raw?.sha256);
    expect(Buffer.from(await head.arrayBuffer())).toEqual((await readFile(again)).subarray(100, 200));
    const del = await stack.cli(["export", "delete", raw?.id ?? ""]);
    expect(del.code, del.stderr).toBe(0);
    expect((await stack.cli(["export", "show", raw?.id ?? ""])).code).toBe(3);
    const files = await readdir(path.join(stack.dir, "store", "exports"));
    expect(files.filter((f) => f.startsWith(raw?.id ?? "-"))).toEqual([]);
  }, 60_000);

  it("exports a stopped VM's disk flattened, equal to its image, and refuses while the VM runs (exit 3)", async () => {
    const imp = await stack.cli(["image", "import", "boot", "--file", boot, "--wait"]);
    expect(imp.code, imp.stderr).toBe(0);
    const create = await stack.cli(["vm", "create", "vmx", "--image", "boot", "--memory", "128M", "--wait"]);
    expect(create.code, `${create.stderr}\n${stack.logTail()}`).toBe(0);
    expect((await apiGet<Vm>(stack, "/v1/vms/vmx")).state).toBe("stopped");

    const file = path.join(tmp, "vmx.raw");
    const out = await exportTo(["vm", "export", "vmx", "--format", "raw", "--to", file]);
    expect(out.export.source).toMatchObject({ type: "vm", name: "vmx" });
    expect((await qemuCompare(boot, "raw", file, "raw")).code).toBe(0);
    expect(out.sha256).toBe(await sha256File(file));

    const start = await stack.cli(["vm", "start", "vmx", "--wait"]);
    expect(start.code, start.stderr).toBe(0);
    const busyFile = path.join(tmp, "vmx-running.raw");
    const refused = await stack.cli(["vm", "export", "vmx", "--format", "raw", "--to", busyFile]);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/running/);
    expect(refused.stderr).toMatch(/iaas vm stop vmx/);
    expect(await exists(busyFile)).toBe(false);
    expect(await exists(`${busyFile}.part`)).toBe(false);
    const exports = await apiGet<{ items: Export[] }>(stack, "/v1/exports");
    expect(exports.items.filter((e) => e.source.name === "vmx")).toHaveLength(1);
    // The refused request left the VM unlocked and running.
    expect(await apiGet<Vm>(stack, "/v1/vms/vmx")).toMatchObject({ state: "running", lockJobId: null });
    const stop = await stack.cli(["vm", "delete", "vmx", "--wait"]);
    expect(stop.code, stop.stderr).toBe(0);
  }, 120_000);

  it("keeps the image record of each re-import apart from its source", async () => {
    const images = await stack.cliJson<{ items: Image[] }>(["image", "list"]);
    const names = images.items.map((i) => i.name).sort();
    expect(names).toEqual(["boot", "src", ...FORMATS.map((f) => `src-${f}`)].sort());
    expect(new Set(images.items.map((i) => i.id)).size).toBe(images.items.length);
  });
});
