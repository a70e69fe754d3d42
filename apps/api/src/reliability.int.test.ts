import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import os from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hostQueueName, IaasError } from "@iaas/contracts";
import { createJobRow, createPrismaClient, transitionVm, type PrismaClient } from "@iaas/db";
import { createTestDatabase, type TestDatabase } from "@iaas/db/testing";
import { createApp } from "./app.js";
import { expireExports, settleOrphans, sweepExpiredJobs } from "./maintenance/jobSweeper.js";
import { Maintenance } from "./maintenance/Maintenance.js";
import { relayQueuedJobs } from "./maintenance/outboxRelay.js";
import { JobQueues } from "./services/JobQueues.js";
import { PrivateRedis } from "./testing/privateRedis.js";
import { TEST_HOST_NETWORK } from "./testing/hostNetwork.js";

const log = pino({ level: "silent" });

/** The API in-process against a Redis of its own, which the tests stop and restart. */
describe("faults of the services", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let privateRedis: PrivateRedis;
  let redis: Redis;
  let queues: JobQueues;
  let server: Server;
  let base: string;
  let store: string;
  const prefix = `rel-${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    privateRedis = await PrivateRedis.start();
    // As apps/api/src/main.ts connects: no offline queue, bounded times.
    redis = new Redis(privateRedis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 1000, commandTimeout: 2000, retryStrategy: () => 200 });
    redis.on("error", () => undefined);
    await new Promise<void>((resolve) => (redis.status === "ready" ? resolve() : redis.once("ready", () => resolve())));
    queues = new JobQueues(redis, prefix);
    store = await mkdtemp(path.join(os.tmpdir(), "iaas-rel-"));
    const { app } = createApp({ db, redis, queues, log, config: { imageStore: store, queuePrefix: prefix, offlineAfterSeconds: 30, maxUploadBytes: 1024 ** 3, exportTtlSeconds: 3600, auth: "none" } });
    server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }, 60_000);

  afterAll(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    await queues?.close().catch(() => undefined);
    redis?.disconnect();
    await privateRedis?.stop();
    await db?.$disconnect();
    await database?.drop();
    if (store) await rm(store, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await db.$executeRawUnsafe(`TRUNCATE "Job", "JobEvent", "Nic", "Vm", "Export", "Backup", "Image", "Network", "Host" CASCADE`);
    await db.host.create({ data: { id: "h1", name: "h1", cpus: 8, memoryBytes: 8n * 1024n ** 3n, diskBytes: 100n * 1024n ** 3n, accelerator: "tcg", network: TEST_HOST_NETWORK } });
    await db.image.create({ data: { name: "deb", state: "ready", sourceFormat: "qcow2", virtualSize: 1024n ** 3n, storedSize: 1000n, sha256: "0".repeat(64), path: "images/x.qcow2" } });
    await db.network.create({ data: { name: "default", subnet: "10.200.0.0/24", gateway: "10.200.0.1", mtu: 1450, dnsDomain: "iaas.internal" } });
  });

  const post = (p: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${p}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

  async function redisBack(): Promise<void> {
    await privateRedis.start();
    for (let i = 0; i < 100 && redis.status !== "ready"; i++) await new Promise((r) => setTimeout(r, 100));
    expect(redis.status).toBe("ready");
  }

  it("answers 503 QUEUE_UNAVAILABLE at once while Redis is down, writes nothing, and says so in /readyz; an upload that completes meanwhile is relayed when Redis is back, empty", async () => {
    const upload = (await (await post("/v1/images", { name: "up" })).json()) as { id: string; uploadUrl: string };
    await privateRedis.stop();
    for (let i = 0; i < 50 && redis.status === "ready"; i++) await new Promise((r) => setTimeout(r, 50));

    const started = Date.now();
    const refused = await post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    const elapsed = Date.now() - started;
    const problem = (await refused.json()) as { code: string; hint: string };
    expect(refused.status).toBe(503);
    expect(problem.code).toBe("QUEUE_UNAVAILABLE");
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(elapsed).toBeLessThan(2000);
    expect(await db.vm.count()).toBe(0);
    expect(await db.job.count()).toBe(0);

    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { postgres: string; redis: string })).toMatchObject({ postgres: "ok", redis: expect.stringMatching(/^failed/) });

    // The bytes are stored, so the import is committed (and relayed later), not refused.
    const put = await fetch(`${base}${upload.uploadUrl}`, { method: "PUT", body: randomBytes(4096) });
    expect(put.status).toBe(202);
    const job = ((await put.json()) as { job: { id: string } }).job;
    expect(await db.job.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ state: "queued", type: "image_import" });

    // Redis comes back without its data: the relay decides from Postgres.
    await redisBack();
    const queue = new Queue(hostQueueName("h1"), { connection: redis, prefix });
    expect(await queue.getJob(job.id)).toBeUndefined();
    expect((await relayQueuedJobs(db, queues, log, 0)).queued).toBe(1);
    expect((await queue.getJob(job.id))?.id).toBe(job.id);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await queue.close();
  }, 30_000);

  it("re-adds a queued job whose BullMQ entry failed (attempts spent while Postgres was down) and a running job whose lease ran out and that Redis lost", async () => {
    const created = await post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    const createdBody = (await created.json()) as { job: { id: string } };
    expect(createdBody).toMatchObject({ job: {} });
    const { job } = createdBody;
    const queue = new Queue(hostQueueName("h1"), { connection: redis, prefix });
    const entry = await queue.getJob(job.id);
    expect(entry).toBeDefined();
    // What BullMQ keeps after a worker spent every attempt: a failed entry under the same id.
    await entry?.remove();
    await queue.add("vm.create", { jobId: job.id }, { jobId: job.id });
    const failed = await queue.getJob(job.id);
    await failed?.moveToFailed(new Error("Can't reach database server"), "0", false).catch(() => undefined);
    await redis.call("ZADD", `${prefix}:${hostQueueName("h1")}:failed`, String(Date.now()), job.id);
    await redis.call("LREM", `${prefix}:${hostQueueName("h1")}:wait`, "0", job.id);
    expect(await queues.stateOf({ id: job.id, hostId: "h1" })).toBe("failed");
    expect((await relayQueuedJobs(db, queues, log, 0)).queued).toBe(1);
    expect(await queues.stateOf({ id: job.id, hostId: "h1" })).toBe("waiting");

    // Running, lease lapsed (database clock), no entry: put back. A live lease is left alone.
    await db.$executeRaw`UPDATE "Job" SET "state" = 'running', "startedAt" = now(), "leaseExpiresAt" = now() - interval '1 second' WHERE "id" = ${job.id}::uuid`;
    await (await queue.getJob(job.id))?.remove();
    const report = await relayQueuedJobs(db, queues, log, 0);
    expect(report).toEqual({ queued: 0, resumed: 1 });
    expect(await queues.stateOf({ id: job.id, hostId: "h1" })).toBe("waiting");
    await (await queue.getJob(job.id))?.remove();
    await db.$executeRaw`UPDATE "Job" SET "leaseExpiresAt" = now() + interval '30 seconds' WHERE "id" = ${job.id}::uuid`;
    expect(await relayQueuedJobs(db, queues, log, 0)).toEqual({ queued: 0, resumed: 0 });
    await queue.close();
  });

  it("sweeps an import past its timeout: job failed, image failed, partial files gone; settles an export whose job ended mid-way", async () => {
    const image = await db.image.create({ data: { name: "imp", state: "importing" } });
    const jobId = randomUUID();
    await db.$transaction((tx) =>
      createJobRow(tx, jobId, { type: "image.import", payload: { imageId: image.id, source: { type: "path", path: "/x.raw" }, dedupe: false }, hostId: "h1", imageId: image.id, targetName: "imp" }, {}),
    );
    await db.image.update({ where: { id: image.id }, data: { lockJobId: jobId } });
    await db.$executeRaw`UPDATE "Job" SET "state" = 'running', "startedAt" = now() - make_interval(secs => "timeoutMs" / 1000.0 + 120) WHERE "id" = ${jobId}::uuid`;
    await mkdir(path.join(store, "images"), { recursive: true });
    await mkdir(path.join(store, "staging"), { recursive: true });
    await writeFile(path.join(store, "images", `${image.id}.qcow2.part`), "partial");
    await writeFile(path.join(store, "staging", `${image.id}.download`), "partial");
    expect(await sweepExpiredJobs(db, log, store)).toEqual([jobId]);
    expect(await db.image.findUniqueOrThrow({ where: { id: image.id } })).toMatchObject({ state: "failed", lockJobId: null, errorCode: "JOB_TIMEOUT" });
    await expect(stat(path.join(store, "images", `${image.id}.qcow2.part`))).rejects.toThrow();
    await expect(stat(path.join(store, "staging", `${image.id}.download`))).rejects.toThrow();

    // An export whose job failed while the database was away: still pending, a partial file left.
    const source = await db.image.findFirstOrThrow({ where: { name: "deb" } });
    const exportJob = randomUUID();
    await db.$transaction((tx) =>
      createJobRow(tx, exportJob, { type: "image.export", payload: { exportId: randomUUID(), imageId: source.id, format: "raw", compress: false, ttlSeconds: 60 }, hostId: "h1", imageId: source.id, targetName: "deb" }, {}),
    );
    const exp = await db.export.create({ data: { jobId: exportJob, sourceType: "image", sourceId: source.id, sourceName: "deb", format: "raw" } });
    await db.job.update({ where: { id: exportJob }, data: { state: "failed", errorCode: "QEMU_IMG_FAILED", errorMessage: "boom" } });
    await mkdir(path.join(store, "exports"), { recursive: true });
    await writeFile(path.join(store, "exports", `${exp.id}.raw.part`), "partial");
    expect(await settleOrphans(db, log, store)).toBe(1);
    expect(await db.export.findUniqueOrThrow({ where: { id: exp.id } })).toMatchObject({ state: "failed" });
    await expect(stat(path.join(store, "exports", `${exp.id}.raw.part`))).rejects.toThrow();
    expect(await settleOrphans(db, log, store)).toBe(0);
    expect(await expireExports(db, store)).toBe(0);
  });

  it("moves a VM only through the transition table, and only while the expected job holds it", async () => {
    const created = await post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    const { job, vm } = (await created.json()) as { job: { id: string }; vm: { id: string } };
    // creating → running is not in the table: a bug, refused.
    await expect(transitionVm(db, vm.id, { to: "running", lock: job.id })).rejects.toThrow(/illegal VM transition creating → running/);
    // Not the job that holds it: fenced.
    const other = randomUUID();
    const fenced = await transitionVm(db, vm.id, { to: "stopped", lock: other }).catch((e: unknown) => e);
    expect(fenced).toBeInstanceOf(IaasError);
    expect((fenced as IaasError).code).toBe("VM_BUSY");
    expect(await db.vm.findUniqueOrThrow({ where: { id: vm.id } })).toMatchObject({ state: "creating" });
    // The holder moves it, with its facts, in one statement.
    expect(await transitionVm(db, vm.id, { to: "stopped", lock: job.id, from: ["creating"], error: { code: "QEMU_FAILED", message: "x", hint: null } })).toBe("creating");
    expect(await db.vm.findUniqueOrThrow({ where: { id: vm.id } })).toMatchObject({ state: "stopped", errorCode: "QEMU_FAILED" });
    const wrongFrom = await transitionVm(db, vm.id, { to: "stopped", lock: job.id, from: ["running"] }).catch((e: unknown) => e);
    expect((wrongFrom as IaasError).code).toBe("INVALID_STATE");
  });

  it("runs maintenance in one replica at a time (Postgres advisory lock)", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const runs: string[] = [];
    const a = new Maintenance(db, [{ name: "t", run: async () => (runs.push("a"), held) }], log);
    const b = new Maintenance(db, [{ name: "t", run: async () => runs.push("b") }], log);
    const first = a.pass();
    for (let i = 0; i < 50 && runs.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await b.pass()).toEqual({ ran: false, results: {} });
    release();
    expect((await first).ran).toBe(true);
    expect((await b.pass()).ran).toBe(true);
    expect(runs).toEqual(["a", "b"]);
  });

  it("keeps upload claims and offsets in Postgres: a second writer is refused, a dead writer's claim lapses, and bytes it did not record are dropped", async () => {
    const created = (await (await post("/v1/images", { name: "res", size: 8192 })).json()) as { id: string; uploadUrl: string };
    const first = randomBytes(4096);
    const put1 = await fetch(`${base}${created.uploadUrl}`, { method: "PUT", headers: { "content-range": "bytes 0-4095/8192" }, body: first });
    expect(put1.status).toBe(200);
    expect(await db.image.findUniqueOrThrow({ where: { id: created.id } })).toMatchObject({ uploadOffset: 4096n, uploadOwner: null });
    // A replica died mid-upload: it wrote 100 bytes it never recorded and still holds the claim.
    await writeFile(path.join(store, "staging", `${created.id}.upload`), Buffer.concat([first, randomBytes(100)]));
    await db.$executeRaw`UPDATE "Image" SET "uploadOwner" = 'dead:1', "uploadLockedUntil" = now() + interval '30 seconds' WHERE "id" = ${created.id}::uuid`;
    const busy = await fetch(`${base}${created.uploadUrl}`, { method: "PUT", headers: { "content-range": "bytes 4096-8191/8192" }, body: randomBytes(4096) });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { code: string }).code).toBe("UPLOAD_IN_PROGRESS");
    const head = await fetch(`${base}${created.uploadUrl}`, { method: "HEAD" });
    expect(head.headers.get("upload-offset")).toBe("4096");
    await db.$executeRaw`UPDATE "Image" SET "uploadLockedUntil" = now() - interval '1 second' WHERE "id" = ${created.id}::uuid`;
    const second = randomBytes(4096);
    const put2 = await fetch(`${base}${created.uploadUrl}`, { method: "PUT", headers: { "content-range": "bytes 4096-8191/8192" }, body: second });
    expect(put2.status).toBe(202);
    expect((await readFile(path.join(store, "staging", `${created.id}.upload`))).equals(Buffer.concat([first, second]))).toBe(true);
  });
});

describe("Postgres unreachable", () => {
  it("answers 503 DATABASE_UNAVAILABLE with Retry-After, not 500", async () => {
    const db = createPrismaClient("postgresql://postgres@127.0.0.1:1/postgres");
    const redis = new Redis(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
    const queues = new JobQueues(redis, `rel-${randomBytes(4).toString("hex")}`);
    const { app } = createApp({ db, redis, queues, log, config: { imageStore: os.tmpdir(), queuePrefix: "relx", offlineAfterSeconds: 30, maxUploadBytes: 1024, exportTtlSeconds: 60, auth: "none" } });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const address = server.address();
      const res = await fetch(`http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/v1/vms`);
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("5");
      expect(((await res.json()) as { code: string }).code).toBe("DATABASE_UNAVAILABLE");
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await queues.close();
      redis.disconnect();
      await db.$disconnect();
    }
  });
});
