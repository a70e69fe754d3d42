import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { IMAGE_ID, JOB_ID, makeImage, stateEvent } from "../testing/fixtures.js";
import { serveJob } from "../testing/jobApi.js";
import { runIaas } from "../testing/runIaas.js";
import { sendJson, sendProblem, startScriptedServer, type ScriptedHandler, type ScriptedServer } from "../testing/scriptedServer.js";
import { FakeUpload, importJob, UPLOAD_PATH, type FakeUploadOptions } from "../testing/transferApi.js";

const MIB = 1024 * 1024;
const content = Buffer.alloc(3 * MIB + 7);
for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 10)) % 251;

let dir = "";
let file = "";
let server: ScriptedServer | null = null;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "iaas-import-"));
  file = path.join(dir, "disk.qcow2");
  await writeFile(file, content);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serveUpload(options: Omit<FakeUploadOptions, "content"> = {}): Promise<{ fake: FakeUpload; s: ScriptedServer }> {
  const fake = new FakeUpload({ content, ...options });
  server = await startScriptedServer((req, res) => {
    if (!fake.handle(req, res)) sendProblem(res, 404, "NOT_FOUND", `no route ${req.method} ${req.path}`, null);
  }, fake.raw);
  return { fake, s: server };
}

async function serve(handler: ScriptedHandler): Promise<ScriptedServer> {
  server = await startScriptedServer(handler);
  return server;
}

const puts = (s: ScriptedServer) => s.requests.filter((r) => r.method === "PUT");

describe("image import --file (resumable upload)", () => {
  it("declares the size, asks for the offset, then streams the file with a Content-Range", async () => {
    const { fake, s } = await serveUpload();
    const run = await runIaas(["image", "import", "deb12", "--file", file, "--description", "Debian 12", "--label", "os=debian", "--format", "qcow2"], s.url);
    expect(run.code).toBe(0);
    expect(fake.posts).toEqual([{ name: "deb12", description: "Debian 12", labels: { os: "debian" }, format: "qcow2", source: { type: "upload", size: content.length } }]);
    expect(s.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /v1/images", `HEAD ${UPLOAD_PATH}`, `PUT ${UPLOAD_PATH}`]);
    const [put] = puts(s);
    expect(put?.headers["content-range"]).toBe(`bytes 0-${content.length - 1}/${content.length}`);
    expect(put?.headers["content-length"]).toBe(String(content.length));
    expect(put?.headers["content-type"]).toBe("application/octet-stream");
    expect(fake.received.equals(content)).toBe(true);
    expect(run.stderr).toMatch(/^uploading disk\.qcow2 \(3\.0 MiB\)\nuploaded disk\.qcow2: 3\.0 MiB in \d+(ms|\.\ds) \([\d.]+ [KMG]iB\/s\)\n$/);
    expect(run.stdout).toBe(`job ${JOB_ID} queued: import image (image deb12)\nfollow it with: iaas job wait ${JOB_ID}\n`);
  });

  it("resumes from the server's offset after the connection breaks halfway, ending with the exact bytes", async () => {
    const { fake, s } = await serveUpload({ cuts: { 1: 1.5 * MIB } });
    const run = await runIaas(["image", "import", "deb12", "--file", file], s.url);
    expect(run.code).toBe(0);
    expect(fake.received.equals(content)).toBe(true);
    const ranges = puts(s).map((r) => r.headers["content-range"]);
    expect(ranges).toEqual([`bytes 0-${content.length - 1}/${content.length}`, `bytes ${1.5 * MIB}-${content.length - 1}/${content.length}`]);
    expect(puts(s)[1]?.headers["content-length"]).toBe(String(content.length - 1.5 * MIB));
    expect(s.requests.filter((r) => r.method === "HEAD").length).toBeGreaterThanOrEqual(2);
    expect(run.stderr).toMatch(/\nuploading disk\.qcow2 broke off at 1\.5 MiB of 3\.0 MiB: \w+/);
    expect(run.stderr).toContain("resuming in 5ms (retry 1/5)");
    expect(run.stderr).toMatch(/uploaded disk\.qcow2: 3\.0 MiB in /);
  });

  it("a re-run of the same command after a broken upload resumes into the image it left", async () => {
    const { fake, s } = await serveUpload({ cuts: { 1: MIB } });
    const first = await runIaas(["image", "import", "deb12", "--file", file], s.url, { transferBackoffMs: [] });
    expect(first.code).toBe(5);
    expect(first.stderr).toContain(`error: uploading ${file} failed: `);
    expect(first.stderr).toContain("hint: ");
    expect(first.stderr).toContain("run the same command again to resume (or give up with `iaas image delete deb12`)");
    expect(fake.received.length).toBe(MIB);

    const again = await runIaas(["image", "import", "deb12", "--file", file], s.url, { transferBackoffMs: [] });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`resuming upload of deb12 at 1 MiB of 3.0 MiB\n`);
    expect(again.stderr).toContain("uploading disk.qcow2 (3.0 MiB, from 1 MiB)\n");
    expect(fake.received.equals(content)).toBe(true);
    expect(puts(s).at(-1)?.headers["content-range"]).toBe(`bytes ${MIB}-${content.length - 1}/${content.length}`);
  });

  it("a re-run shows the original NAME_TAKEN error when the image left behind is not this upload", async () => {
    const { s } = await serveUpload({ exists: true, existingLength: content.length + 1 });
    const run = await runIaas(["image", "import", "deb12", "--file", file], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe("error: an image named 'deb12' already exists\nhint: choose another name, or delete the old image with `iaas image delete`\n");
    expect(puts(s)).toHaveLength(0);
  });

  it("recovers from 409 UPLOAD_OFFSET_MISMATCH by asking for the offset again", async () => {
    const { fake, s } = await serveUpload({ mismatches: { 1: { advanceBy: 1000 }, 2: { advanceBy: 0 } } });
    const run = await runIaas(["image", "import", "deb12", "--file", file], s.url);
    expect(run.code).toBe(0);
    expect(fake.received.equals(content)).toBe(true);
    expect(puts(s).map((r) => r.headers["content-range"]?.split("-")[0])).toEqual(["bytes 0", "bytes 1000", "bytes 1000"]);
    expect(run.stderr).toContain("the server is still receiving an earlier request at 1000 B");
  });

  it("gives up after the last retry with a hint to run it again", async () => {
    const { fake, s } = await serveUpload({ cuts: { 1: MIB, 2: 0, 3: 0, 4: 0 } });
    const run = await runIaas(["image", "import", "deb12", "--file", file], s.url, { transferBackoffMs: [5, 5] });
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/\(gave up after 3 tries\)\n/);
    expect(fake.received.length).toBe(MIB);
  });

  it("with --dedupe and no --sha256 sends the file's sha256 and reports stored content without uploading", async () => {
    const stored = makeImage({ name: "debian-12-genericcloud" });
    const s = await serve((_req, res) => sendJson(res, 200, { image: stored, deduplicated: true }));
    const run = await runIaas(["image", "import", "deb12", "--file", file, "--dedupe"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests[0]?.body.toString() ?? "")).toEqual({
      name: "deb12",
      sha256: createHash("sha256").update(content).digest("hex"),
      dedupe: true,
      source: { type: "upload", size: content.length },
    });
    expect(s.requests).toHaveLength(1);
    expect(run.stdout).toBe(`the content is already stored as image debian-12-genericcloud (${IMAGE_ID}); nothing was imported\n`);
  });
});

describe("image import --url / --source-path", () => {
  const accepted = (_req: unknown, res: Parameters<ScriptedHandler>[1]) => sendJson(res, 202, { job: importJob, image: makeImage({ state: "importing" }) });

  it("--url sends the URL source with format, sha256, dedupe and labels", async () => {
    const s = await serve(accepted);
    const sha = "AB".repeat(32);
    const run = await runIaas(
      ["image", "import", "deb12", "--url", "https://example.org/deb12.qcow2.xz", "--format", "qcow2", "--sha256", sha, "--dedupe", "--label", "os=debian", "--label", "tier=base"],
      s.url,
    );
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests[0]?.body.toString() ?? "")).toEqual({
      name: "deb12",
      labels: { os: "debian", tier: "base" },
      format: "qcow2",
      sha256: sha.toLowerCase(),
      dedupe: true,
      source: { type: "url", url: "https://example.org/deb12.qcow2.xz" },
    });
    expect(run.stdout).toBe(`job ${JOB_ID} queued: import image (image deb12)\nfollow it with: iaas job wait ${JOB_ID}\n`);
  });

  it("--source-path sends the path source and nothing is uploaded", async () => {
    const s = await serve(accepted);
    const run = await runIaas(["image", "import", "win", "--source-path", "/srv/iaas/import/win.vhdx", "--format", "vhdx"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests[0]?.body.toString() ?? "")).toEqual({ name: "win", format: "vhdx", source: { type: "path", path: "/srv/iaas/import/win.vhdx" } });
    expect(s.requests).toHaveLength(1);
  });

  it("--host names the worker that reads a --source-path, and is refused with --file", async () => {
    const s = await serve(accepted);
    const run = await runIaas(["image", "import", "win", "--source-path", "/srv/iaas/import/win.vhdx", "--host", "hv2"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests[0]?.body.toString() ?? "")).toMatchObject({ host: "hv2", source: { type: "path" } });
    const upload = await runIaas(["image", "import", "win", "--file", "/etc/hostname", "--host", "hv2"], s.url);
    expect(upload.code).toBe(2);
    expect(upload.stderr).toMatch(/--host applies to --url and --source-path/);
  });

  it("--wait reports an import job that found the content stored already", async () => {
    const reused = { id: "99999999-0000-4000-8000-000000000009", name: "debian-12" };
    const running = { ...importJob, state: "running" as const };
    const done = { ...running, state: "succeeded" as const, finishedAt: "2025-01-01T00:00:05.000Z", result: { imageId: IMAGE_ID, sourceFormat: "qcow2", virtualSize: 1, storedSize: 1, sha256: "a".repeat(64), deduplicatedTo: reused } };
    const s = await serve((req, res) => {
      if (serveJob({ running, events: [stateEvent(1, "running"), stateEvent(2, "succeeded")], final: done }, req, res)) return;
      if (req.method === "POST") return accepted(req, res);
      if (req.path === `/v1/images/${reused.id}`) return sendJson(res, 200, makeImage({ id: reused.id, name: reused.name }));
      sendProblem(res, 404, "NOT_FOUND", "no route", null);
    });
    const run = await runIaas(["image", "import", "deb12", "--url", "https://example.org/d.qcow2", "--dedupe", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^the content is already stored as image debian-12 \(99999999-.*\); no new image was stored\nname:\s+debian-12\n/);
  });

  it("prints a deduplicated answer as JSON with -o json", async () => {
    const s = await serve((_req, res) => sendJson(res, 200, { image: makeImage(), deduplicated: true }));
    const run = await runIaas(["image", "import", "deb12", "--url", "https://example.org/x.img", "--sha256", "a".repeat(64), "--dedupe", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ deduplicated: true, image: { id: IMAGE_ID } });
  });

  it("refuses no source, two sources, a bad label or sha256 (exit 2) before calling the API", async () => {
    const s = await serve((_req, res) => sendJson(res, 500, {}));
    const none = await runIaas(["image", "import", "deb12"], s.url);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("use exactly one of --file PATH (upload), --url URL");
    expect((await runIaas(["image", "import", "deb12", "--url", "http://x/y", "--source-path", "/a"], s.url)).code).toBe(2);
    expect((await runIaas(["image", "import", "deb12", "--url", "http://x/y", "--label", "novalue"], s.url)).code).toBe(2);
    expect((await runIaas(["image", "import", "deb12", "--url", "http://x/y", "--sha256", "abc"], s.url)).code).toBe(2);
    expect((await runIaas(["image", "import", "deb12", "--url", "http://x/y", "--format", "iso"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });
});
