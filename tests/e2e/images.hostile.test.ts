import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ErrorCode, Export, Image, Job } from "@iaas/contracts";
import { eventually, Stack } from "./harness.js";
import { apiStatus, jobsOf, MiB, qemuImg, showExport, serveFile, showImage, storeLeftovers, TestServer, writePatternRaw } from "./imageFixtures.js";

// Hostile or broken inputs, each refused by the import job with its own error code before
// anything reaches the store. URL imports: the worker's allow-list admits only 127.0.0.5, so the
// same stack shows the default deny-list for 127.0.0.1 and friends.
describe("image import refuses hostile inputs", () => {
  let stack: Stack;
  let tmp: string;
  let importDir: string;
  /** Where a denied URL would land if the policy failed: must never see a connection. */
  let denied: TestServer;
  /** The allow-listed server. */
  let allowed: TestServer;
  let sample: string;

  beforeAll(async () => {
    tmp = await mkdtemp("/tmp/ie-bad-");
    importDir = path.join(tmp, "import");
    await mkdir(importDir);
    sample = path.join(tmp, "sample.raw");
    await writePatternRaw(sample, 4 * MiB);
    denied = await TestServer.start("127.0.0.1");
    denied.route("/disk.raw", serveFile(sample));
    allowed = await TestServer.start("127.0.0.5");
    allowed.route("/disk.raw", serveFile(sample));
    allowed.route("/to-loopback", (_req, res) => res.writeHead(302, { location: denied.url("/disk.raw") }).end());
    allowed.route("/to-metadata", (_req, res) => res.writeHead(307, { location: "http://169.254.169.254/latest/meta-data/" }).end());
    allowed.route("/loop", (_req, res) => res.writeHead(302, { location: "/loop" }).end());
    allowed.route("/huge", (_req, res) => res.writeHead(200, { "content-length": 1024 * MiB }).end());
    // No Content-Length: 40 MiB of zeros, more than the 32 MiB IAAS_MAX_DOWNLOAD_BYTES.
    allowed.route("/endless", (_req, res) => {
      res.writeHead(200);
      let sent = 0;
      const more = (): void => {
        while (sent < 40 * MiB) {
          sent += MiB;
          if (!res.write(Buffer.alloc(MiB))) {
            res.once("drain", more);
            return;
          }
        }
        res.end();
      };
      res.on("close", () => (sent = 40 * MiB));
      more();
    });
    stack = await Stack.start(["host-a"], {
      apiEnv: { IAAS_EXPORT_TTL_SECONDS: "3" },
      workerEnv: { IAAS_URL_ALLOW_LIST: "127.0.0.5/32", IAAS_IMPORT_DIR: importDir, IAAS_MAX_IMAGE_VIRTUAL_SIZE: "256M", IAAS_MAX_DOWNLOAD_BYTES: "32M" },
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await denied?.close();
    await allowed?.close();
    await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  /** Runs an import expected to fail in its job: exit 1, the image failed with `code`, nothing stored. */
  async function refused(name: string, args: string[], code: ErrorCode): Promise<Image> {
    const r = await stack.cli(["image", "import", name, ...args, "--wait"]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(/error: /);
    const image = await showImage(stack, name);
    expect(image.state).toBe("failed");
    expect(image.lastError?.code, JSON.stringify(image.lastError)).toBe(code);
    expect(image.lastError?.hint).toBeTruthy();
    expect(await storeLeftovers(stack, image.id)).toEqual([]);
    // Refused input is final: the job is not retried.
    const [job] = await jobsOf(stack, image.id, "image.import");
    expect(job).toMatchObject({ state: "failed", attempts: 1, error: { code } });
    return image;
  }

  const file = (name: string) => path.join(tmp, name);

  // The refusals are independent of each other: run them side by side.
  describe.concurrent("each refused with its own code, nothing stored", { timeout: 120_000 }, () => {
    it("refuses a qcow2 whose backing file is a host file (IMAGE_HAS_BACKING_FILE)", async () => {
      await qemuImg("create", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", file("backing.qcow2"), "1M");
      const image = await refused("backing", ["--file", file("backing.qcow2")], "IMAGE_HAS_BACKING_FILE");
      expect(image.lastError?.message).toContain("/etc/hostname");
      // The same record as the CLI shows it.
      expect((await stack.cliJson<Image>(["image", "show", "backing"])).lastError).toEqual(image.lastError);
    });

    it("refuses a VMDK delta disk on a parent (IMAGE_HAS_BACKING_FILE)", async () => {
      await qemuImg("create", "-f", "vmdk", file("parent.vmdk"), "1M");
      await qemuImg("create", "-f", "vmdk", "-b", file("parent.vmdk"), "-F", "vmdk", file("delta.vmdk"));
      await refused("vmdk-delta", ["--file", file("delta.vmdk")], "IMAGE_HAS_BACKING_FILE");
    });

    it("refuses a qcow2 overlay hidden in a .gz (inspected after decompression)", async () => {
      await qemuImg("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", file("hidden.qcow2"), "1M");
      await writeFile(file("hidden.qcow2.gz"), gzipSync(await readFile(file("hidden.qcow2"))));
      await refused("hidden-overlay", ["--file", file("hidden.qcow2.gz")], "IMAGE_HAS_BACKING_FILE");
    });

    it("refuses a qcow2 with an external data file (IMAGE_HAS_DATA_FILE)", async () => {
      await qemuImg("create", "-f", "qcow2", "-o", `data_file=${file("external.raw")}`, file("datafile.qcow2"), "1M");
      await refused("datafile", ["--file", file("datafile.qcow2")], "IMAGE_HAS_DATA_FILE");
    });

    it("refuses a VMDK descriptor whose extent points at /etc/passwd (IMAGE_HAS_EXTENTS), declared or not", async () => {
      const descriptor = [
        "# Disk DescriptorFile",
        "version=1",
        "CID=fffffffe",
        "parentCID=ffffffff",
        'createType="monolithicFlat"',
        "",
        "# Extent description",
        'RW 2048 FLAT "/etc/passwd" 0',
        "",
        "# The Disk Data Base",
        'ddb.adapterType = "ide"',
        "",
      ].join("\n");
      await writeFile(file("extent.vmdk"), descriptor);
      const image = await refused("extent", ["--file", file("extent.vmdk")], "IMAGE_HAS_EXTENTS");
      expect(image.lastError?.message).toContain("/etc/passwd");
      await refused("extent-declared", ["--file", file("extent.vmdk"), "--format", "vmdk"], "IMAGE_HAS_EXTENTS");
    });

    it("refuses a truncated qcow2 (IMAGE_INVALID)", async () => {
      await qemuImg("create", "-f", "qcow2", file("whole.qcow2"), "16M");
      await writeFile(file("truncated.qcow2"), (await readFile(file("whole.qcow2"))).subarray(0, 100));
      await refused("truncated", ["--file", file("truncated.qcow2")], "IMAGE_INVALID");
    });

    it("refuses a raw file declared qcow2 from a host path and a URL (FORMAT_MISMATCH)", async () => {
      const inside = path.join(importDir, "declared.qcow2");
      await writePatternRaw(inside);
      await refused("mismatch-path", ["--source-path", inside, "--format", "qcow2"], "FORMAT_MISMATCH");
      await refused("mismatch-url", ["--url", allowed.url("/disk.raw"), "--format", "vmdk"], "FORMAT_MISMATCH");
    });

    // The API drops `format` of an upload request (no column, not in the upload's job payload).
    it("refuses a raw file uploaded with --file and declared qcow2 (FORMAT_MISMATCH)", async () => {
      await refused("mismatch", ["--file", sample, "--format", "qcow2"], "FORMAT_MISMATCH");
    });

    it("refuses a qcow2 larger than the worker's IAAS_MAX_IMAGE_VIRTUAL_SIZE (IMAGE_TOO_LARGE)", async () => {
      await qemuImg("create", "-f", "qcow2", file("big.qcow2"), "2G");
      await refused("big", ["--file", file("big.qcow2")], "IMAGE_TOO_LARGE");
    });

    it("refuses a gzip bomb that decompresses past IAAS_MAX_IMAGE_VIRTUAL_SIZE (IMAGE_TOO_LARGE)", async () => {
      // 5 gzip members of 64 MiB of zeros each: 320 KiB that inflate to 320 MiB, over the 256 MiB allowed.
      const member = gzipSync(Buffer.alloc(64 * MiB));
      await writeFile(file("bomb.raw.gz"), Buffer.concat(Array.from({ length: 5 }, () => member)));
      const image = await refused("bomb", ["--file", file("bomb.raw.gz")], "IMAGE_TOO_LARGE");
      expect(image.lastError?.message).toMatch(/decompresses to more than/);
    });

    it("refuses an empty file: the CLI before creating anything, the API on upload, the worker from a host path", async () => {
      await writeFile(file("empty.raw"), "");
      const cli = await stack.cli(["image", "import", "empty", "--file", file("empty.raw"), "--wait"]);
      expect(cli.code).toBe(2);
      expect(cli.stderr).toMatch(/empty/);
      expect(await apiStatus(stack, "/v1/images/empty")).toBe(404);

      const created = await fetch(`${stack.url}/v1/images`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "empty-rest", source: { type: "upload" } }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as Image;
      const put = await fetch(`${stack.url}/v1/images/${id}/file`, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(0) });
      expect(put.status).toBe(400);
      expect(((await put.json()) as { code: string }).code).toBe("IMAGE_INVALID");
      expect(await storeLeftovers(stack, id)).toEqual([]);

      await writeFile(path.join(importDir, "empty.raw"), "");
      await refused("empty-path", ["--source-path", path.join(importDir, "empty.raw")], "IMAGE_INVALID");
    });

    it.each([
      ["loopback", () => denied.url("/disk.raw")],
      ["localhost by name", () => `http://localhost:${denied.port}/disk.raw`],
      ["link-local metadata", () => "http://169.254.169.254/latest/meta-data/"],
      ["IPv4-mapped IPv6 loopback", () => `http://[::ffff:127.0.0.1]:${denied.port}/disk.raw`],
      ["decimal loopback", () => `http://2130706433:${denied.port}/disk.raw`],
      ["redirect from the allowed host to loopback", () => allowed.url("/to-loopback")],
      ["redirect from the allowed host to link-local", () => allowed.url("/to-metadata")],
    ])("refuses a URL to %s (URL_NOT_ALLOWED) without connecting to it", async (what, url) => {
      const name = `url-${what.replace(/[^a-z0-9]+/gi, "-")}`;
      const image = await refused(name, ["--url", url()], "URL_NOT_ALLOWED");
      expect(image.lastError?.hint).toMatch(/IAAS_URL_ALLOW_LIST/);
      if (what.startsWith("redirect")) expect(image.lastError?.message).toMatch(/redirect/);
      expect(denied.connections).toBe(0);
      expect(denied.requests).toEqual([]);
    });

    it("fails a URL the server answers 404 (DOWNLOAD_FAILED) and one that redirects in a loop", async () => {
      await refused("url-404", ["--url", allowed.url("/missing.raw")], "DOWNLOAD_FAILED");
      const loop = await refused("url-loop", ["--url", allowed.url("/loop")], "DOWNLOAD_FAILED");
      expect(loop.lastError?.message).toMatch(/redirects/);
    });

    it("refuses a download over IAAS_MAX_DOWNLOAD_BYTES, announced or not (IMAGE_TOO_LARGE)", async () => {
      await refused("url-huge", ["--url", allowed.url("/huge")], "IMAGE_TOO_LARGE");
      await refused("url-endless", ["--url", allowed.url("/endless")], "IMAGE_TOO_LARGE");
    });

    it("does follow the allow-listed server itself, proving the refusals are the policy's", async () => {
      const r = await stack.cli(["image", "import", "url-allowed", "--url", allowed.url("/disk.raw"), "--wait"]);
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
      expect((await showImage(stack, "url-allowed")).state).toBe("ready");
      expect(denied.connections).toBe(0);
    });

    it("refuses file:// in the API (exit 2) and creates no image", async () => {
      const r = await stack.cli(["image", "import", "passwd", "--url", "file:///etc/passwd", "--wait"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/scheme|http/);
      expect(await apiStatus(stack, "/v1/images/passwd")).toBe(404);
    });

    it("refuses --source-path leaving IAAS_IMPORT_DIR by '..' or by a symlink (SOURCE_PATH_NOT_ALLOWED)", async () => {
      await writePatternRaw(file("outside.raw"));
      await symlink(file("outside.raw"), path.join(importDir, "link.raw"));
      await symlink("/etc/passwd", path.join(importDir, "passwd.raw"));
      await refused("dotdot", ["--source-path", `${importDir}/../outside.raw`], "SOURCE_PATH_NOT_ALLOWED");
      await refused("symlink", ["--source-path", path.join(importDir, "link.raw")], "SOURCE_PATH_NOT_ALLOWED");
      await refused("symlink-passwd", ["--source-path", path.join(importDir, "passwd.raw")], "SOURCE_PATH_NOT_ALLOWED");
      await refused("missing", ["--source-path", path.join(importDir, "nope.raw")], "SOURCE_PATH_NOT_ALLOWED");
      // The operator's file is never deleted by a refused import.
      expect(await readFile(file("outside.raw"))).toHaveLength(4 * MiB);
    });

    it("imports a file inside IAAS_IMPORT_DIR and leaves the operator's file in place", async () => {
      const inside = path.join(importDir, "ok.raw");
      await writePatternRaw(inside);
      const r = await stack.cli(["image", "import", "inside", "--source-path", inside, "--wait"]);
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
      expect(await showImage(stack, "inside")).toMatchObject({ state: "ready", origin: { type: "path", location: inside } });
      expect(await readFile(inside)).toHaveLength(4 * MiB);
    });
  });

  it("refuses to export an image that failed its import (exit 3)", async () => {
    const to = file("failed-export.raw");
    const r = await stack.cli(["image", "export", "backing", "--format", "raw", "--to", to]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/failed, not ready/);
    expect(await readdir(tmp)).not.toContain("failed-export.raw");
  });

  it("expires an export after IAAS_EXPORT_TTL_SECONDS: file deleted, download refused (exit 3)", async () => {
    const res = await fetch(`${stack.url}/v1/images/inside/export`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ format: "raw" }) });
    expect(res.status).toBe(202);
    const { job, export: exp } = (await res.json()) as { job: Job; export: Export };
    const done = await fetch(`${stack.url}/v1/jobs/${job.id}/wait?timeout=60`).then(async (r) => (await r.json()) as Job);
    expect(done.state).toBe("succeeded");
    expect(await storeLeftovers(stack, exp.id)).toEqual([`exports/${exp.id}.raw`]);
    await eventually("the export to expire", async () => (await showExport(stack, exp.id)).state === "expired", 20_000, 500);
    expect(await storeLeftovers(stack, exp.id)).toEqual([]);
    const file410 = await fetch(`${stack.url}/v1/exports/${exp.id}/file`);
    expect(file410.status).toBe(410);
    expect(((await file410.json()) as { code: string }).code).toBe("EXPORT_EXPIRED");
    const dl = await stack.cli(["export", "download", exp.id, "--to", file("expired.raw")]);
    expect(dl.code).toBe(3);
    expect(dl.stderr).toMatch(/expired/);
    expect(await readdir(tmp)).not.toContain("expired.raw");
  }, 60_000);

  it("left nothing in the store's staging area", async () => {
    expect(await readdir(path.join(stack.dir, "store", "staging")).catch(() => [])).toEqual([]);
  });
});
