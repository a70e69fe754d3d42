import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Export, Image, Job } from "@iaas/contracts";
import { eventually, Stack } from "./harness.js";
import {
  apiGet,
  apiStatus,
  countingProxy,
  exists,
  jobLogs,
  jobsOf,
  MiB,
  processesMentioning,
  qemuCompare,
  qemuImg,
  run,
  serveFile,
  sha256File,
  showExport,
  showImage,
  showJob,
  storedImageFile,
  storeLeftovers,
  TestServer,
  writePatternRaw,
  writeRandom,
} from "./imageFixtures.js";

// Transfers against real HTTP on loopback: URL imports from an allow-listed server on 127.0.0.5
// (compressed, checksummed, deduplicated), uploads and downloads cut halfway that resume, and
// cancelling a running conversion or download.
describe("image transfers: URL imports, resumable upload and download, cancel", () => {
  let stack: Stack;
  let tmp: string;
  let importDir: string;
  let server: TestServer;
  const f = (name: string) => path.join(tmp, name);
  const sha: Record<string, string> = {};
  /** Connections to /slow.raw that the worker closed. */
  let slowClosed = 0;

  beforeAll(async () => {
    tmp = await mkdtemp("/tmp/ie-xfer-");
    importDir = path.join(tmp, "import");
    await mkdir(importDir);
    await writePatternRaw(f("disk.raw"), 4 * MiB);
    await qemuImg("convert", "-f", "raw", "-O", "qcow2", f("disk.raw"), f("disk.qcow2"));
    await writeFile(f("disk.raw.gz"), gzipSync(await readFile(f("disk.raw"))));
    const xz = await run("xz", ["-k", "-T1", f("disk.raw")]);
    expect(xz.code, xz.stderr).toBe(0);
    await writePatternRaw(f("cut.raw"), 8 * MiB);
    for (const name of ["disk.raw", "disk.raw.gz", "disk.raw.xz", "cut.raw"]) sha[name] = await sha256File(f(name));

    server = await TestServer.start("127.0.0.5");
    for (const name of ["disk.raw", "disk.qcow2", "disk.raw.gz", "disk.raw.xz"]) server.route(`/${name}`, serveFile(f(name)));
    // The first request for /cut.raw announces the whole file but the connection dies after half.
    const cutFile = serveFile(f("cut.raw"));
    let cutServed = false;
    server.route("/cut.raw", (req, res) => {
      if (cutServed) return cutFile(req, res);
      cutServed = true;
      void readFile(f("cut.raw")).then((bytes) => {
        res.writeHead(200, { "content-length": bytes.length, "accept-ranges": "bytes" });
        res.write(bytes.subarray(0, bytes.length / 2), () => setTimeout(() => res.socket?.destroy(), 50));
      });
    });
    // 64 MiB announced, 16 KiB every 100 ms: it would take over six minutes.
    server.route("/slow.raw", (_req, res: ServerResponse) => {
      res.writeHead(200, { "content-length": 64 * MiB });
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 0x5a)), 100);
      res.on("close", () => {
        clearInterval(timer);
        slowClosed++;
      });
    });

    stack = await Stack.start(["host-a"], { workerEnv: { IAAS_URL_ALLOW_LIST: "127.0.0.5/32", IAAS_IMPORT_DIR: importDir } });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  }, 60_000);

  const importOk = async (name: string, args: string[]): Promise<Image> => {
    const r = await stack.cli(["image", "import", name, ...args, "--wait"]);
    expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
    return showImage(stack, name);
  };
  const sameContent = async (image: Image, raw = f("disk.raw")) => (await qemuCompare(raw, "raw", storedImageFile(stack, image), "qcow2")).code;

  it("imports qcow2, .gz and .xz (decompressed on the fly, --sha256 checked) from the allow-listed server", async () => {
    const [qcow2, raw, gz, xz] = await Promise.all([
      importOk("url-qcow2", ["--url", server.url("/disk.qcow2"), "--label", "os=test", "--label", "tier=gold", "--description", "from a URL"]),
      importOk("url-raw", ["--url", server.url("/disk.raw"), "--sha256", sha["disk.raw"] ?? ""]),
      importOk("url-gz", ["--url", server.url("/disk.raw.gz")]),
      importOk("url-xz", ["--url", server.url("/disk.raw.xz"), "--sha256", sha["disk.raw.xz"] ?? ""]),
    ]);
    expect(qcow2).toMatchObject({
      state: "ready",
      sourceFormat: "qcow2",
      compression: null,
      origin: { type: "url", location: server.url("/disk.qcow2") },
      labels: { os: "test", tier: "gold" },
      description: "from a URL",
    });
    expect(await sameContent(qcow2)).toBe(0);
    expect(raw).toMatchObject({ state: "ready", sourceFormat: "raw", compression: null, sha256: sha["disk.raw"] });
    expect(await sameContent(raw)).toBe(0);
    expect(gz).toMatchObject({ state: "ready", sourceFormat: "raw", compression: "gzip", virtualSize: 4 * MiB, sha256: sha["disk.raw.gz"] });
    expect(await sameContent(gz)).toBe(0);
    expect(await jobLogs(stack, (await jobsOf(stack, "url-gz"))[0]?.id ?? "")).toMatch(/decompress/);

    expect(xz).toMatchObject({ state: "ready", sourceFormat: "raw", compression: "xz", sha256: sha["disk.raw.xz"] });
    expect(await sameContent(xz)).toBe(0);
    expect(await storeLeftovers(stack, xz.id)).toEqual([`images/${xz.id}.qcow2`]);
  }, 90_000);

  it("refuses a URL import whose content has another sha256 (CHECKSUM_MISMATCH) and stores nothing", async () => {
    const wrong = "0".repeat(64);
    const r = await stack.cli(["image", "import", "bad-sum", "--url", server.url("/disk.raw.gz"), "--sha256", wrong, "--wait"]);
    expect(r.code).toBe(1);
    const image = await showImage(stack, "bad-sum");
    expect(image).toMatchObject({ state: "failed", lastError: { code: "CHECKSUM_MISMATCH" } });
    expect(image.lastError?.message).toContain(sha["disk.raw.gz"]);
    expect(await storeLeftovers(stack, image.id)).toEqual([]);
  }, 60_000);

  // README: the job verifies the sha256, then decompresses, identifies and converts. Content that
  // fails its checksum must not reach gunzip/xz or qemu-img.
  it("checks --sha256 before the unverified content is decompressed, inspected or converted", async () => {
    const [job] = await jobsOf(stack, "bad-sum", "image.import");
    const events = await (await fetch(`${stack.url}/v1/jobs/${job?.id ?? ""}/events`)).text();
    const phases = [...events.matchAll(/"phase":"([a-z]+)"/g)].map((m) => m[1]);
    expect(phases).not.toContain("decompress");
    expect(phases).not.toContain("inspect");
    expect(phases).not.toContain("convert");
  });

  it("with --dedupe reuses the stored image instead of storing the same content again", async () => {
    // Found by the worker after the download (no --sha256 given): the new image is dropped.
    const r = await stack.cli(["image", "import", "gz-dedupe", "--url", server.url("/disk.raw.gz"), "--dedupe", "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/already stored as image url-gz/);
    expect((await stack.cli(["image", "show", "gz-dedupe"])).code).toBe(3);
    const all = await apiGet<{ items: Job[] }>(stack, "/v1/jobs?type=image.import");
    const dedupeJob = all.items.find((j) => j.targetName === "gz-dedupe");
    expect(dedupeJob?.result).toMatchObject({ deduplicatedTo: { name: "url-gz" } });
    expect(await jobLogs(stack, dedupeJob?.id ?? "")).toMatch(/already stored as image 'url-gz'; reusing it/);
    expect(await storeLeftovers(stack, dedupeJob?.imageId ?? "-")).toEqual([]);

    // Found by the API from --sha256 (given, or computed by the CLI for --file): no job, no upload.
    const before = all.items.length;
    const byUrl = await stack.cli(["image", "import", "gz-dedupe2", "--url", server.url("/disk.raw.gz"), "--sha256", sha["disk.raw.gz"] ?? "", "--dedupe", "--wait"]);
    expect(byUrl.code, byUrl.stderr).toBe(0);
    expect(byUrl.stdout).toMatch(/already stored as image url-gz/);
    const proxy = await countingProxy(stack.url);
    try {
      const byFile = await stack.cli(["image", "import", "raw-dedupe", "--file", f("disk.raw"), "--dedupe", "--wait"], { env: { IAAS_URL: proxy.url } });
      expect(byFile.code, byFile.stderr).toBe(0);
      expect(byFile.stdout).toMatch(/already stored as image url-raw/);
      expect(proxy.puts).toEqual([]);
    } finally {
      await proxy.close();
    }
    for (const name of ["gz-dedupe2", "raw-dedupe"]) expect(await apiStatus(stack, `/v1/images/${name}`)).toBe(404);
    expect((await apiGet<{ items: Job[] }>(stack, "/v1/jobs?type=image.import")).items).toHaveLength(before);
  }, 90_000);

  it("imports the same content again without --dedupe and says so in the job log", async () => {
    const again = await importOk("url-gz-again", ["--url", server.url("/disk.raw.gz")]);
    expect(again.sha256).toBe(sha["disk.raw.gz"]);
    const [job] = await jobsOf(stack, "url-gz-again");
    expect(await jobLogs(stack, job?.id ?? "")).toMatch(/same content is already stored as image 'url-gz'.*--dedupe/);
  }, 60_000);

  it("resumes an upload cut halfway from the server's offset, not from byte 0", async () => {
    const file = f("disk.raw");
    const size = (await stat(file)).size;
    const half = size / 2;
    const created = await fetch(`${stack.url}/v1/images`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "resumed", source: { type: "upload", size } }),
    });
    expect(created.status).toBe(201);
    const image = (await created.json()) as Image;
    const uploadUrl = new URL(image.uploadUrl ?? `/v1/images/${image.id}/file`, stack.url).href;
    const first = await fetch(uploadUrl, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream", "content-range": `bytes 0-${half - 1}/${size}` },
      body: (await readFile(file)).subarray(0, half),
    });
    expect(first.status).toBe(200);
    expect(((await first.json()) as { offset: number }).offset).toBe(half);
    expect((await fetch(uploadUrl, { method: "HEAD" })).headers.get("upload-offset")).toBe(String(half));
    // A range that does not start at the server's offset is refused, naming the right one.
    const wrong = await fetch(uploadUrl, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream", "content-range": `bytes 0-${half - 1}/${size}` },
      body: (await readFile(file)).subarray(0, half),
    });
    expect(wrong.status).toBe(409);
    expect(wrong.headers.get("upload-offset")).toBe(String(half));
    expect(((await wrong.json()) as { code: string }).code).toBe("UPLOAD_OFFSET_MISMATCH");
    expect((await showImage(stack, "resumed")).upload).toEqual({ offset: half, length: size });

    const proxy = await countingProxy(stack.url);
    try {
      const r = await stack.cli(["image", "import", "resumed", "--file", file, "--wait"], { env: { IAAS_URL: proxy.url } });
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
      expect(r.stderr).toMatch(/resuming upload of resumed at 2 MiB/);
      expect(proxy.puts.length).toBeGreaterThan(0);
      for (const put of proxy.puts) expect(put.range).toMatch(new RegExp(`^bytes ${half}-${size - 1}/${size}$`));
      expect(proxy.puts.reduce((n, p) => n + p.bytes, 0)).toBe(size - half);
    } finally {
      await proxy.close();
    }
    const done = await showImage(stack, "resumed");
    expect(done).toMatchObject({ state: "ready", sha256: sha["disk.raw"] });
    expect(await sameContent(done)).toBe(0);
    expect(await storeLeftovers(stack, done.id)).toEqual([`images/${done.id}.qcow2`]);
  }, 60_000);

  it("resumes by itself an upload whose connection is cut halfway", async () => {
    const file = f("cut.raw");
    const size = (await stat(file)).size;
    const proxy = await countingProxy(stack.url, { cutFirstPutAfter: size / 2 });
    try {
      const r = await stack.cli(["image", "import", "upload-cut", "--file", file, "--wait"], { env: { IAAS_URL: proxy.url } });
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
      expect(proxy.puts.length).toBeGreaterThanOrEqual(2);
      expect(proxy.puts[0]?.range).toBe(`bytes 0-${size - 1}/${size}`);
      const resumedAt = Number(/^bytes (\d+)-/.exec(proxy.puts.at(-1)?.range ?? "")?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      // Only what the server did not have was sent again.
      expect(proxy.puts.at(-1)?.bytes).toBe(size - resumedAt);
    } finally {
      await proxy.close();
    }
    const image = await showImage(stack, "upload-cut");
    expect(image).toMatchObject({ state: "ready", sha256: sha["cut.raw"] });
    expect(await sameContent(image, f("cut.raw"))).toBe(0);
  }, 60_000);

  it("resumes a download cut halfway with a Range request and stores the right content", async () => {
    const image = await importOk("cut", ["--url", server.url("/cut.raw"), "--sha256", sha["cut.raw"] ?? ""]);
    expect(image).toMatchObject({ state: "ready", sha256: sha["cut.raw"] });
    expect(await sameContent(image, f("cut.raw"))).toBe(0);
    const requests = server.requestsFor("/cut.raw");
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(requests[0]?.headers.range).toBeUndefined();
    const ranged = requests.slice(1).map((r) => r.headers.range);
    expect(ranged.some((r) => /^bytes=[1-9]\d*-$/.test(r ?? "")), JSON.stringify(ranged)).toBe(true);
    const [job] = await jobsOf(stack, "cut");
    expect(await jobLogs(stack, job?.id ?? "")).toMatch(/resuming the download/);
  }, 90_000);

  it("cancels an export during convert: job cancelled, no file in the store or at --to, export failed", async () => {
    await writeRandom(path.join(importDir, "big.raw"), 512 * MiB);
    const big = await importOk("big", ["--source-path", path.join(importDir, "big.raw")]);
    expect(big.virtualSize).toBe(512 * MiB);
    await rm(path.join(importDir, "big.raw"));

    const to = f("big-export.qcow2");
    const bg = stack.cliBackground(["image", "export", "big", "--format", "qcow2", "--compress", "--to", to]);
    try {
      const job = await eventually(
        "the export job to be converting",
        async () => (await jobsOf(stack, "big", "image.export")).find((j) => j.state === "running" && j.progress?.phase === "convert"),
        60_000,
      );
      const exportId = (await apiGet<{ items: Export[] }>(stack, "/v1/exports")).items.find((e) => e.jobId === job.id)?.id ?? "";
      expect(exportId).not.toBe("");
      expect(await storeLeftovers(stack, exportId)).not.toEqual([]);
      // The image cannot be deleted while it is being exported.
      const busy = await fetch(`${stack.url}/v1/images/big`, { method: "DELETE" });
      expect(busy.status).toBe(409);
      const problem = (await busy.json()) as { code: string; detail: string };
      expect(problem.code).toBe("IMAGE_IN_USE");
      expect(problem.detail).toContain(job.id);
      const cancel = await stack.cli(["job", "cancel", job.id]);
      expect(cancel.code, cancel.stderr).toBe(0);
      const waited = await stack.cli(["job", "wait", job.id]);
      expect(waited.code).toBe(1);
      const final = await showJob(stack, job.id);
      expect(final).toMatchObject({ state: "cancelled", error: { code: "JOB_CANCELLED" } });
      const cli = await bg.done;
      expect(cli.code, cli.stderr).toBe(1);
      expect(cli.stderr).toMatch(/cancelled/);
      expect(await exists(to)).toBe(false);
      expect(await exists(`${to}.part`)).toBe(false);
      expect(await storeLeftovers(stack, exportId)).toEqual([]);
      expect(await showExport(stack, exportId)).toMatchObject({ state: "failed", downloadUrl: null });
      expect(await processesMentioning(exportId)).toEqual([]);
    } finally {
      if (bg.child.exitCode === null && bg.child.signalCode === null) bg.child.kill();
    }
    // Nothing holds the image any more.
    const del = await stack.cli(["image", "delete", "big", "--wait"]);
    expect(del.code, del.stderr).toBe(0);
    expect(await storeLeftovers(stack, big.id)).toEqual([]);
  }, 150_000);

  it("cancels a slow URL download: job cancelled, connection closed, no staging files", async () => {
    const accepted = await stack.cliJson<{ job: Job; image: Image }>(["image", "import", "slow", "--url", server.url("/slow.raw")]);
    await eventually(
      "the download to be under way",
      async () => {
        const j = await showJob(stack, accepted.job.id);
        return j.state === "running" && j.progress?.phase === "download" && (j.progress.bytesDone ?? 0) > 0;
      },
      30_000,
    );
    expect(await storeLeftovers(stack, accepted.image.id)).toEqual([`staging/${accepted.image.id}.download`]);
    const cancel = await stack.cli(["job", "cancel", accepted.job.id, "--wait"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(/cancelled/);
    expect(await showJob(stack, accepted.job.id)).toMatchObject({ state: "cancelled", error: { code: "JOB_CANCELLED" } });
    expect(await showImage(stack, "slow")).toMatchObject({ state: "failed", lastError: { code: "JOB_CANCELLED" } });
    expect(await storeLeftovers(stack, accepted.image.id)).toEqual([]);
    await eventually("the worker to close the connection", async () => slowClosed >= 1, 10_000);
    expect(server.requestsFor("/slow.raw")).toHaveLength(1);
    // The failed record keeps its error until deleted; the name is free again afterwards.
    expect((await stack.cli(["image", "delete", "slow", "--wait"])).code).toBe(0);
    expect(await apiStatus(stack, "/v1/images/slow")).toBe(404);
  }, 60_000);

  // Last in the file: the API drops `sha256` of an upload request, so today this stores the image.
  it("refuses an uploaded file (--file) whose content has another sha256 (CHECKSUM_MISMATCH) and stores nothing", async () => {
    const r = await stack.cli(["image", "import", "bad-sum-file", "--file", f("disk.raw"), "--sha256", "0".repeat(64), "--wait"]);
    expect(r.code, r.stderr).toBe(1);
    const image = await showImage(stack, "bad-sum-file");
    expect(image).toMatchObject({ state: "failed", lastError: { code: "CHECKSUM_MISMATCH" } });
    expect(await storeLeftovers(stack, image.id)).toEqual([]);
  }, 60_000);

  it("left nothing in the store's staging area", async () => {
    expect(await readdir(path.join(stack.dir, "store", "staging")).catch(() => [])).toEqual([]);
  });
});
