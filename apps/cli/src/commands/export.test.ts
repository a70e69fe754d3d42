import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { EXPORT_ID, IMAGE_ID, JOB_ID, VM_ID, makeExport, makeJob, progressEvent, stateEvent } from "../testing/fixtures.js";
import { serveJob, type JobScript } from "../testing/jobApi.js";
import { runIaas } from "../testing/runIaas.js";
import { sendJson, sendProblem, startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";
import { FakeFile, FILE_PATH, type FakeFileOptions } from "../testing/transferApi.js";

const MIB = 1024 * 1024;
const content = Buffer.alloc(2 * MIB + 123);
for (let i = 0; i < content.length; i++) content[i] = (i * 13 + (i >> 12)) % 253;
const sha256 = createHash("sha256").update(content).digest("hex");

const exportJob = makeJob({ type: "image.export", vmId: null, imageId: IMAGE_ID, targetName: "deb12", payload: { exportId: EXPORT_ID } });
const running = { ...exportJob, state: "running" as const, startedAt: "2025-01-01T00:00:01.000Z" };
const succeeded: Job = {
  ...running,
  state: "succeeded",
  finishedAt: "2025-01-01T00:00:09.000Z",
  result: { exportId: EXPORT_ID, format: "vmdk", sizeBytes: content.length, sha256, expiresAt: "2025-01-02T00:00:00.000Z" },
};
const events = [
  stateEvent(1, "running"),
  progressEvent(2, { phase: "convert", percent: 50, bytesDone: 512 * MIB, bytesTotal: 1024 * MIB, rate: 100 * MIB, etaSeconds: 5 }),
  progressEvent(3, { phase: "checksum", percent: 100 }),
  stateEvent(4, "succeeded"),
];

let dir = "";
let to = "";
let server: ScriptedServer | null = null;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "iaas-export-"));
  to = path.join(dir, "deb12.vmdk");
});
afterEach(async () => {
  await server?.close();
  server = null;
  await rm(dir, { recursive: true, force: true });
});

/** The export half of the API: POST …/export, the job, GET /v1/exports/:id and the file. */
async function serveExport(file: Partial<FakeFileOptions> = {}, script: Partial<JobScript> = {}): Promise<{ s: ScriptedServer; fake: FakeFile }> {
  const fake = new FakeFile({ content, checksum: sha256, ...file });
  const jobScript: JobScript = { running, events, final: succeeded, ...script };
  server = await startScriptedServer((req, res) => {
    if (fake.handle(req, res) || serveJob(jobScript, req, res)) return;
    if (req.method === "POST" && /^\/v1\/(images|vms)\/[^/]+\/export$/.test(req.path)) {
      return sendJson(res, 202, { job: exportJob, export: makeExport({ state: "pending", downloadUrl: null, sizeBytes: null }) });
    }
    if (req.method === "GET" && req.path === `/v1/exports/${EXPORT_ID}`) return sendJson(res, 200, fake.export({ format: "vmdk", sha256 }));
    if (req.method === "GET" && req.path === "/v1/exports") return sendJson(res, 200, { items: [fake.export({ format: "vmdk", sha256 })] });
    if (req.method === "DELETE" && req.path === `/v1/exports/${EXPORT_ID}`) return void res.writeHead(204).end();
    sendProblem(res, 404, "NOT_FOUND", `no route ${req.method} ${req.path}`, null);
  });
  return { s: server, fake };
}

const gets = (s: ScriptedServer) => s.requests.filter((r) => r.method === "GET" && r.path === FILE_PATH);

describe("image export / vm export", () => {
  it("follows the job, downloads the file, resumes a cut download with Range and verifies its sha256", async () => {
    const { s } = await serveExport({ cuts: { 1: MIB } });
    const run = await runIaas(["image", "export", "deb12", "--format", "vmdk", "--to", to], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests.find((r) => r.method === "POST")?.body.toString() ?? "")).toEqual({ format: "vmdk" });
    expect((await readFile(to)).equals(content)).toBe(true);
    expect(await readdir(dir)).toEqual(["deb12.vmdk"]);
    const [first, second] = gets(s);
    expect(first?.headers.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(second?.headers.range))?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(MIB);
    expect(second?.headers["if-range"]).toBe('"v1"');
    expect(run.stderr).toContain("[job 1a2b3c4d] running: convert 50% (512 MiB/1 GiB, 100 MiB/s, ETA 5s)\n");
    expect(run.stderr).toContain("downloading deb12.vmdk (2.0 MiB)\n");
    expect(run.stderr).toMatch(/downloading deb12\.vmdk broke off at [\d.]+ (KiB|MiB) of 2\.0 MiB: .*; resuming in 5ms \(retry 1\/5\)\n/);
    expect(run.stdout).toBe(
      [`path:   ${to}`, `size:   2.0 MiB (${content.length} bytes)`, "format: vmdk", `sha256: ${sha256} (verified)`, ""].join("\n"),
    );
  });

  it("deletes the .part and exits 1 when the sha256 does not match, leaving no file", async () => {
    const { s } = await serveExport({ checksum: "f".repeat(64) });
    const run = await runIaas(["image", "export", "deb12", "--format", "vmdk", "--to", to], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`error: the downloaded file's sha256 is ${sha256}, not ${"f".repeat(64)} as the server says; ${to}.part was deleted\n`);
    expect(run.stderr).toContain("hint: download it again");
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses an existing PATH without --force before asking for anything (exit 2), replaces it with --force", async () => {
    const { s } = await serveExport();
    await writeFile(to, "old");
    const refused = await runIaas(["image", "export", "deb12", "--format", "vmdk", "--to", to], s.url);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`error: ${to} exists\nhint: choose another --to, or add --force to replace it\n`);
    expect(s.requests).toHaveLength(0);
    const forced = await runIaas(["image", "export", "deb12", "--format", "vmdk", "--to", to, "--force"], s.url);
    expect(forced.code).toBe(0);
    expect((await readFile(to)).equals(content)).toBe(true);
  });

  it("vm export posts the format and --compress; --compress needs qcow2", async () => {
    const { s } = await serveExport();
    expect((await runIaas(["vm", "export", "web1", "--format", "raw", "--compress", "--to", to], s.url)).code).toBe(2);
    const run = await runIaas(["vm", "export", VM_ID, "--format", "qcow2", "--compress", "--to", to], s.url);
    expect(run.code).toBe(0);
    const post = s.requests.find((r) => r.method === "POST");
    expect(post?.path).toBe(`/v1/vms/${VM_ID}/export`);
    expect(JSON.parse(post?.body.toString() ?? "")).toEqual({ format: "qcow2", compress: true });
  });

  it("exits 4 at --timeout and says how to download the export later", async () => {
    const { s } = await serveExport({}, { final: null, events: events.slice(0, 2) });
    const run = await runIaas(["--timeout", "0.3", "image", "export", "deb12", "--format", "vmdk", "--to", to], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain(`once it is done, download the file with: iaas export download ${EXPORT_ID} --to ${to}\n`);
    expect(gets(s)).toHaveLength(0);
  });

  it("exits 1 with the job's error when the export fails, downloading nothing", async () => {
    const failed: Job = { ...running, state: "failed", error: { code: "QEMU_IMG_FAILED", message: "qemu-img convert failed: No space left on device", hint: null } };
    const { s } = await serveExport({}, { final: failed });
    const run = await runIaas(["image", "export", "deb12", "--format", "vmdk", "--to", to], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: qemu-img convert failed: No space left on device\n");
    expect(gets(s)).toHaveLength(0);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("export download / list / show / delete", () => {
  it("resumes a .part left by an interrupted run when its export id and ETag match", async () => {
    const { s } = await serveExport();
    await writeFile(`${to}.part`, content.subarray(0, MIB + 5));
    await writeFile(`${to}.part.json`, JSON.stringify({ exportId: EXPORT_ID, etag: '"v1"' }));
    const run = await runIaas(["export", "download", EXPORT_ID, "--to", to], s.url);
    expect(run.code).toBe(0);
    expect(gets(s).map((r) => r.headers.range)).toEqual([`bytes=${MIB + 5}-`]);
    expect((await readFile(to)).equals(content)).toBe(true);
    expect(await readdir(dir)).toEqual(["deb12.vmdk"]);
    expect(run.stderr).toContain("resuming the download of deb12.vmdk at 1.0 MiB\n");
  });

  it("starts over when the .part belongs to another export, or the file's ETag changed", async () => {
    const { s } = await serveExport({ etag: '"v2"' });
    await writeFile(`${to}.part`, Buffer.alloc(MIB, 1));
    await writeFile(`${to}.part.json`, JSON.stringify({ exportId: "another", etag: '"v2"' }));
    const other = await runIaas(["export", "download", EXPORT_ID, "--to", to], s.url);
    expect(other.code).toBe(0);
    expect(other.stderr).toContain(`discarding ${to}.part: it is not from export ${EXPORT_ID}\n`);
    expect(gets(s)[0]?.headers.range).toBeUndefined();
    await rm(to);
    await writeFile(`${to}.part`, Buffer.alloc(MIB, 1));
    await writeFile(`${to}.part.json`, JSON.stringify({ exportId: EXPORT_ID, etag: '"v1"' }));
    const changed = await runIaas(["export", "download", EXPORT_ID, "--to", to], s.url);
    expect(changed.code).toBe(0);
    expect(gets(s)[1]?.headers["if-range"]).toBe('"v1"');
    expect(changed.stderr).toContain("the file on the server changed (or it does not resume downloads); downloading from the start\n");
    expect((await readFile(to)).equals(content)).toBe(true);
  });

  it("lists, shows and deletes exports", async () => {
    const { s } = await serveExport();
    const list = await runIaas(["export", "list"], s.url);
    expect(list.stdout.split("\n")[1]).toMatch(/^7e8f9a0b\s+ready\s+image deb12\s+vmdk\s+2\.0 MiB\s+in 23h\s+1m ago$/);
    const show = await runIaas(["export", "show", "7e8f9a0b"], s.url);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`sha256:       ${sha256}\n`);
    const del = await runIaas(["export", "delete", EXPORT_ID], s.url);
    expect(del).toEqual({ code: 0, stdout: `export ${EXPORT_ID} deleted\n`, stderr: "" });
  });

  it("job wait on an export job shows the export and how to download it", async () => {
    const { s } = await serveExport();
    const run = await runIaas(["job", "wait", JOB_ID], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`id:           ${EXPORT_ID}\n`);
    expect(run.stdout).toContain(`download it with: iaas export download ${EXPORT_ID} --to PATH\n`);
  });

  it("says how to wait for an export that is not ready (exit 3)", async () => {
    server = await startScriptedServer((_req, res) => sendJson(res, 200, makeExport({ state: "pending", downloadUrl: null })));
    const run = await runIaas(["export", "download", EXPORT_ID, "--to", to], server.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe(`error: export ${EXPORT_ID} is not ready yet\nhint: wait for its job with \`iaas job wait ${JOB_ID}\`, then download again\n`);
  });
});
