import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hostQueueName } from "@iaas/contracts";
import { finishJob, type PrismaClient } from "@iaas/db";
import { startTestApi, type TestApi } from "./testing/testApi.js";
import { sweepExpiredJobs } from "./maintenance/jobSweeper.js";
import { relayQueuedJobs } from "./maintenance/outboxRelay.js";
import { pino } from "pino";

// The API in-process against the real Postgres and Redis, with host rows but no worker: jobs stay
// queued, which is what these tests look at.
describe("REST API", () => {
  let api: TestApi;
  let db: PrismaClient;
  let redis: Redis;
  let base: string;
  let store: string;
  let prefix: string;
  let post: TestApi["post"];
  const log = pino({ level: "silent" });

  beforeAll(async () => {
    api = await startTestApi();
    ({ db, redis, base, store, prefix, post } = api);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  beforeEach(async () => {
    await api.reset();
  });

  async function createVm(name = "web", extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    const res = await post("/v1/vms", { name, image: "deb", memory: "256M", ...extra }, headers);
    return { res, body: (await res.json()) as { job: { id: string; state: string }; vm: { id: string; state: string; lockJobId: string } } };
  }

  it("answers 202 with Location, writes the job and VM rows, and puts the job on the host's queue", async () => {
    const { res, body } = await createVm();
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toBe(`/v1/jobs/${body.job.id}`);
    expect(body.vm.state).toBe("creating");
    expect(body.vm.lockJobId).toBe(body.job.id);
    const queued = await new Queue(hostQueueName("h1"), { connection: redis, prefix }).getJob(body.job.id);
    expect(queued?.data).toEqual({ jobId: body.job.id });
  });

  it("rejects a bad request body with a problem that names each field", async () => {
    const res = await post("/v1/vms", { name: "Bad_Name", image: "deb", cpus: 0 });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const problem = (await res.json()) as { code: string; errors: { path: string }[]; hint: string };
    expect(problem.code).toBe("VALIDATION_FAILED");
    expect(problem.errors.map((e) => e.path).sort()).toEqual(["cpus", "name"]);
    expect(problem.hint).toBeTruthy();
  });

  it("answers 404 with a hint for an unknown VM, by name or by id", async () => {
    for (const ref of ["nope", "7d8f6c1e-9a1b-4c2d-8e3f-1a2b3c4d5e6f"]) {
      const res = await fetch(`${base}/v1/vms/${ref}`);
      expect(res.status).toBe(404);
      const problem = (await res.json()) as { code: string; hint: string };
      expect(problem.code).toBe("NOT_FOUND");
      expect(problem.hint).toMatch(/iaas vm list/);
    }
  });

  it("returns the first job for a repeated Idempotency-Key and refuses the key for another request", async () => {
    const first = await createVm("idem", {}, { "Idempotency-Key": "k-1" });
    const again = await createVm("idem", {}, { "Idempotency-Key": "k-1" });
    expect(again.res.status).toBe(202);
    expect(again.res.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.job.id).toBe(first.body.job.id);
    expect(await db.vm.count()).toBe(1);
    const other = await createVm("other", {}, { "Idempotency-Key": "k-1" });
    expect(other.res.status).toBe(409);
    expect((other.body as unknown as { code: string }).code).toBe("IDEMPOTENCY_KEY_REUSED");
  });

  it("starts a stopped VM in one statement: job, first event and lock together; a repeated Idempotency-Key replays it", async () => {
    const { body } = await createVm();
    await db.vm.update({ where: { id: body.vm.id }, data: { state: "stopped", lockJobId: null } });
    const first = await post("/v1/vms/web/start", undefined, { "Idempotency-Key": "start-1" });
    expect(first.status).toBe(202);
    const started = (await first.json()) as { job: { id: string; type: string; state: string } };
    expect(started.job).toMatchObject({ type: "vm.start", state: "queued" });
    expect((await db.vm.findUniqueOrThrow({ where: { id: body.vm.id } })).lockJobId).toBe(started.job.id);
    expect(await db.jobEvent.findMany({ where: { jobId: started.job.id }, select: { seq: true, state: true } })).toEqual([{ seq: 1, state: "queued" }]);
    expect(await new Queue(hostQueueName("h1"), { connection: redis, prefix }).getJob(started.job.id)).toBeDefined();
    const again = await post("/v1/vms/web/start", undefined, { "Idempotency-Key": "start-1" });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { job: { id: string } }).job.id).toBe(started.job.id);
    const reused = await post("/v1/vms/web/stop", undefined, { "Idempotency-Key": "start-1" });
    expect(reused.status).toBe(409);
    expect(((await reused.json()) as { code: string }).code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await db.job.count({ where: { vmId: body.vm.id, type: "vm_start" } })).toBe(1);
  });

  it("answers a request for a VM held by another job with 409 naming that job", async () => {
    const { body } = await createVm();
    const res = await post("/v1/vms/web/start");
    expect(res.status).toBe(409);
    const problem = (await res.json()) as { code: string; jobId: string; detail: string; hint: string };
    expect(problem.code).toBe("VM_BUSY");
    expect(problem.jobId).toBe(body.job.id);
    expect(problem.hint).toContain(`iaas job wait ${body.job.id}`);
  });

  it("refuses a duplicate VM name and an action the VM's state does not allow", async () => {
    const { body } = await createVm();
    expect((await createVm()).res.status).toBe(409);
    await db.vm.update({ where: { id: body.vm.id }, data: { state: "stopped", lockJobId: null } });
    const stop = await post("/v1/vms/web/stop");
    expect(stop.status).toBe(409);
    expect(((await stop.json()) as { code: string }).code).toBe("INVALID_STATE");
  });

  it("cancels a job that has not started: the VM it would create is gone and the queue forgets it", async () => {
    const { body } = await createVm();
    const res = await post(`/v1/jobs/${body.job.id}/cancel`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { state: string }).state).toBe("cancelled");
    expect(await db.vm.count()).toBe(0);
    expect(await new Queue(hostQueueName("h1"), { connection: redis, prefix }).getJob(body.job.id)).toBeUndefined();
    const again = await post(`/v1/jobs/${body.job.id}/cancel`);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe("JOB_NOT_CANCELLABLE");
  });

  it("refuses to act on a VM whose host is offline", async () => {
    const { body } = await createVm();
    await db.vm.update({ where: { id: body.vm.id }, data: { state: "stopped", lockJobId: null } });
    await db.host.update({ where: { id: "h1" }, data: { lastHeartbeatAt: new Date(Date.now() - 120_000) } });
    const res = await post("/v1/vms/web/start");
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string; hint: string }).code).toBe("HOST_OFFLINE");
    expect(await db.vm.findUniqueOrThrow({ where: { id: body.vm.id } })).toMatchObject({ lockJobId: null, state: "stopped" });
  });

  it("re-enqueues a queued job that Redis lost (outbox relay)", async () => {
    const { body } = await createVm();
    const queue = new Queue(hostQueueName("h1"), { connection: redis, prefix });
    await (await queue.getJob(body.job.id))?.remove();
    expect(await queue.getJob(body.job.id)).toBeUndefined();
    expect((await relayQueuedJobs(db, api.queues, log, 0)).queued).toBe(1);
    expect((await queue.getJob(body.job.id))?.id).toBe(body.job.id);
    expect((await relayQueuedJobs(db, api.queues, log, 0)).queued).toBe(0);
  });

  it("fails a job whose worker died past its timeout and takes the VM out of its transitional state", async () => {
    const { body } = await createVm();
    await db.job.update({ where: { id: body.job.id }, data: { state: "running", startedAt: new Date(Date.now() - 3_600_000) } });
    expect(await sweepExpiredJobs(db, log, store)).toEqual([body.job.id]);
    const job = await db.job.findUniqueOrThrow({ where: { id: body.job.id } });
    expect(job).toMatchObject({ state: "failed", errorCode: "JOB_TIMEOUT" });
    expect(await db.vm.findUniqueOrThrow({ where: { id: body.vm.id } })).toMatchObject({ state: "error", lockJobId: null });
  });

  it("streams job events over SSE, resumes after Last-Event-ID, and ends once the job is final", async () => {
    const { body } = await createVm();
    await finishJob(db, body.job.id, { state: "failed", error: { code: "QEMU_FAILED", message: "boom", hint: "retry" } });
    const all = await (await fetch(`${base}/v1/jobs/${body.job.id}/events`)).text();
    expect(all).toMatch(/^id: 1\nevent: state\n/);
    expect(all).toContain("id: 2\nevent: state");
    // The end event carries the final job, as GET /v1/jobs/:id answers it.
    const end = /event: end\ndata: (.*)\n\n$/.exec(all);
    expect(JSON.parse(end?.[1] ?? "null")).toEqual(await (await fetch(`${base}/v1/jobs/${body.job.id}`)).json());
    expect(JSON.parse(end?.[1] ?? "null")).toMatchObject({ id: body.job.id, state: "failed" });
    const resumed = await (await fetch(`${base}/v1/jobs/${body.job.id}/events`, { headers: { "Last-Event-ID": "1" } })).text();
    expect(resumed).not.toContain("id: 1\n");
    expect(resumed).toContain("id: 2\n");
    const waited = (await (await fetch(`${base}/v1/jobs/${body.job.id}/wait?timeout=5`)).json()) as { state: string; error: { hint: string } };
    expect(waited).toMatchObject({ state: "failed", error: { code: "QEMU_FAILED", message: "boom", hint: "retry" } });
  });

  it("streams an upload into the store and queues the import job", async () => {
    const created = await post("/v1/images", { name: "up" });
    expect(created.status).toBe(201);
    const image = (await created.json()) as { uploadUrl: string; id: string };
    const content = randomBytes(256 * 1024);
    const res = await fetch(`${base}${image.uploadUrl}`, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: content });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { job: { type: string; payload: { source: { stagingFile: string; sizeBytes: number } } } };
    expect(body.job.type).toBe("image.import");
    expect(body.job.payload.source.sizeBytes).toBe(content.length);
    expect((await readFile(path.join(store, body.job.payload.source.stagingFile))).equals(content)).toBe(true);
    const second = await fetch(`${base}${image.uploadUrl}`, { method: "PUT", body: content });
    expect(second.status).toBe(409);
  });

  it("resumes a cut upload from the offset the server reports, and refuses a wrong offset", async () => {
    const content = randomBytes(300_000);
    const created = (await (await post("/v1/images", { name: "resumable", source: { type: "upload", size: content.length } })).json()) as { uploadUrl: string };
    const put = (from: number, to: number) =>
      fetch(`${base}${created.uploadUrl}`, { method: "PUT", headers: { "content-range": `bytes ${from}-${to - 1}/${content.length}` }, body: content.subarray(from, to) });
    const first = await put(0, 100_000);
    expect(first.status).toBe(200);
    expect(first.headers.get("upload-offset")).toBe("100000");
    const head = await fetch(`${base}${created.uploadUrl}`, { method: "HEAD" });
    expect(head.headers.get("upload-offset")).toBe("100000");
    expect(head.headers.get("upload-length")).toBe(String(content.length));
    const wrong = await put(50_000, 100_000);
    expect(wrong.status).toBe(409);
    expect(wrong.headers.get("upload-offset")).toBe("100000");
    expect(((await wrong.json()) as { code: string }).code).toBe("UPLOAD_OFFSET_MISMATCH");
    const rest = await put(100_000, content.length);
    expect(rest.status).toBe(202);
    const body = (await rest.json()) as { job: { payload: { source: { stagingFile: string } } } };
    expect((await readFile(path.join(store, body.job.payload.source.stagingFile))).equals(content)).toBe(true);
  });

  it("refuses URL schemes other than http and https before making anything", async () => {
    for (const url of ["file:///etc/passwd", "ftp://example.org/x.img", "gopher://x"]) {
      const res = await post("/v1/images", { name: "viaurl", source: { type: "url", url } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe("URL_NOT_ALLOWED");
    }
    expect(await db.image.count({ where: { name: "viaurl" } })).toBe(0);
  });

  it("answers a dedupe request for stored content with the stored image", async () => {
    const res = await post("/v1/images", { name: "again", sha256: "0".repeat(64), dedupe: true });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ deduplicated: true, image: { name: "deb" } });
    expect(await db.image.count({ where: { name: "again" } })).toBe(0);
  });

  it("queues an export of an image and refuses --compress for formats other than qcow2", async () => {
    const res = await post("/v1/images/deb/export", { format: "vmdk" });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { job: { type: string }; export: { state: string; format: string; downloadUrl: string | null } };
    expect(body.job.type).toBe("image.export");
    expect(body.export).toMatchObject({ state: "pending", format: "vmdk", downloadUrl: null });
    const bad = await post("/v1/images/deb/export", { format: "raw", compress: true });
    expect(bad.status).toBe(400);
    const busy = await fetch(`${base}/v1/images/deb`, { method: "DELETE" });
    expect(((await busy.json()) as { code: string }).code).toBe("IMAGE_IN_USE");
  });

  it("asks the worker to stop a running import and refuses to cancel a running VM job", async () => {
    const sub = redis.duplicate();
    const heard = new Promise<string>((resolve) => sub.on("message", (_c: string, m: string) => resolve(m)));
    await sub.subscribe(`${prefix}:cancel`);
    const created = (await (await post("/v1/images", { name: "slow", source: { type: "url", url: "https://images.example.org/x.qcow2" } })).json()) as { job: { id: string } };
    await db.job.update({ where: { id: created.job.id }, data: { state: "running", startedAt: new Date() } });
    const res = await post(`/v1/jobs/${created.job.id}/cancel`);
    expect(res.status).toBe(202);
    expect(await heard).toBe(created.job.id);
    expect((await db.job.findUniqueOrThrow({ where: { id: created.job.id } })).cancelRequestedAt).not.toBeNull();
    sub.disconnect();
    const vm = await createVm();
    await db.job.update({ where: { id: vm.body.job.id }, data: { state: "running", startedAt: new Date() } });
    expect((await post(`/v1/jobs/${vm.body.job.id}/cancel`)).status).toBe(409);
  });

  it("refuses to delete an image that VMs use, naming them", async () => {
    await createVm("user1");
    const res = await fetch(`${base}/v1/images/deb`, { method: "DELETE" });
    expect(res.status).toBe(409);
    const problem = (await res.json()) as { code: string; detail: string };
    expect(problem.code).toBe("IMAGE_IN_USE");
    expect(problem.detail).toContain("user1");
  });

  it("reports readiness of Postgres and Redis", async () => {
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", postgres: "ok", redis: "ok" });
  });
});
