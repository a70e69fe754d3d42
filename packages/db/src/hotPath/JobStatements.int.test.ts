import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_PROJECT_ID } from "@iaas/contracts";
import { AuditLog, createPrismaClient, finishJob, isUniqueViolation, JobStatements, poolOf, recordJobProgress, startJobRun, type PrismaClient } from "../index.js";
import { createTestDatabase, type TestDatabase } from "../testing.js";

const LEASE = { hostId: "h1", instanceId: "w-1", leaseMs: 30_000 };

// The single-statement job writes against a real Postgres, through a pool whose round trips are
// counted, so grouping is observed rather than assumed.
describe("JobStatements", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let statements: JobStatements;
  let roundTrips = 0;
  let imageId: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    pool = new pg.Pool({ connectionString: database.url, options: "-c TimeZone=UTC" });
    const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
    (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args: unknown[]) => {
      roundTrips++;
      return query(...args);
    };
    statements = new JobStatements(pool);
    await db.host.create({ data: { id: "h1", name: "h1", cpus: 4, memoryBytes: 2n ** 31n, diskBytes: 2n ** 34n, accelerator: "tcg" } });
    await db.host.create({ data: { id: "h-silent", name: "h-silent", cpus: 4, memoryBytes: 2n ** 31n, diskBytes: 2n ** 34n, accelerator: "tcg", lastHeartbeatAt: new Date(Date.now() - 3_600_000) } });
    imageId = (await db.image.create({ data: { name: "img", state: "ready", virtualSize: 1048576n } })).id;
  });

  afterAll(async () => {
    await pool?.end();
    await db?.$disconnect();
    await database?.drop();
  });

  beforeEach(() => {
    roundTrips = 0;
  });

  const noop = (n: number, extra: { idempotencyKey?: string } = {}) => ({
    id: randomUUID(),
    spec: { type: "bench.noop" as const, payload: { n }, hostId: "h1", targetName: `noop-${n}` },
    request: { ...extra, hash: `hash-${n}`, actor: { name: "alice", tokenId: null, requestId: `req-${n}` } },
  });

  async function vm(name: string, state: "stopped" | "running" = "stopped", hostId = "h1") {
    return db.vm.create({ data: { name, state, hostId, imageId, cpus: 1, memoryBytes: 128n << 20n, diskBytes: 1n << 20n } });
  }

  async function events(jobId: string) {
    return db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
  }

  it("submits a job with its queued event as sequence 1", async () => {
    const input = noop(1, { idempotencyKey: "key-1" });
    const job = await statements.submit(input);
    expect(job).toMatchObject({ id: input.id, type: "bench_noop", state: "queued", hostId: "h1", eventSeq: 1, attempts: 0, projectId: DEFAULT_PROJECT_ID, actorName: "alice", requestId: "req-1", idempotencyKey: "key-1", requestHash: "hash-1", payload: { n: 1 } });
    expect(Math.abs(job!.createdAt.getTime() - Date.now())).toBeLessThan(5000);
    expect(await db.job.findUniqueOrThrow({ where: { id: input.id } })).toEqual(job);
    expect(await events(input.id)).toMatchObject([{ seq: 1, type: "state", state: "queued", message: "benchmark no-op 'noop-1' queued on host h1" }]);
  });

  it("groups submissions made at once into one round trip, each with its own job", async () => {
    const inputs = Array.from({ length: 20 }, (_, i) => noop(100 + i));
    const jobs = await Promise.all(inputs.map((i) => statements.submit(i)));
    expect(roundTrips).toBe(1);
    expect(jobs.map((j) => j?.id)).toEqual(inputs.map((i) => i.id));
    expect(await db.jobEvent.count({ where: { jobId: { in: inputs.map((i) => i.id) }, seq: 1 } })).toBe(20);
  });

  it("gives a reused Idempotency-Key its own unique violation and lets the rest of its batch through", async () => {
    await statements.submit(noop(200, { idempotencyKey: "key-200" }));
    const inputs = [noop(201), noop(202, { idempotencyKey: "key-200" }), noop(203)];
    const results = await Promise.allSettled(inputs.map((i) => statements.submit(i)));
    expect(results[0]).toMatchObject({ status: "fulfilled", value: { id: inputs[0]!.id } });
    expect(results[2]).toMatchObject({ status: "fulfilled", value: { id: inputs[2]!.id } });
    expect(results[1]!.status).toBe("rejected");
    expect(isUniqueViolation((results[1] as PromiseRejectedResult).reason, "idempotencyKey")).toBe(true);
    expect(isUniqueViolation((results[1] as PromiseRejectedResult).reason, "name")).toBe(false);
    expect(await db.job.count({ where: { id: inputs[1]!.id } })).toBe(0);
  });

  it("takes a VM's lock with the job, and refuses (writing nothing) when busy, in the wrong state or on a silent host", async () => {
    const free = await vm("free");
    const start = (vmId: string, hostId = "h1") => ({
      id: randomUUID(),
      spec: { type: "vm.start" as const, payload: { vmId }, hostId, vmId, targetName: "v" },
      request: {},
      lockVm: { from: ["stopped"], onlineWithinSeconds: 30 },
    });
    const first = start(free.id);
    expect(await statements.submit(first)).toMatchObject({ id: first.id, vmId: free.id });
    expect((await db.vm.findUniqueOrThrow({ where: { id: free.id } })).lockJobId).toBe(first.id);

    const second = start(free.id);
    expect(await statements.submit(second)).toBeNull();
    const running = await vm("running", "running");
    const wrongState = start(running.id);
    expect(await statements.submit(wrongState)).toBeNull();
    const silent = await vm("silent", "stopped", "h-silent");
    const offline = start(silent.id, "h-silent");
    expect(await statements.submit(offline)).toBeNull();
    expect(await db.job.count({ where: { id: { in: [second.id, wrongState.id, offline.id] } } })).toBe(0);
    expect((await db.vm.findUniqueOrThrow({ where: { id: running.id } })).lockJobId).toBeNull();
    expect((await db.vm.findUniqueOrThrow({ where: { id: silent.id } })).lockJobId).toBeNull();
  });

  it("lets exactly one of a batch of submissions for one VM take its lock", async () => {
    const target = await vm("contended");
    const inputs = Array.from({ length: 10 }, () => ({
      id: randomUUID(),
      spec: { type: "vm.start" as const, payload: { vmId: target.id }, hostId: "h1", vmId: target.id, targetName: "contended" },
      request: {},
      lockVm: { from: ["stopped"], onlineWithinSeconds: 30 },
    }));
    const jobs = await Promise.all(inputs.map((i) => statements.submit(i)));
    expect(roundTrips).toBe(1);
    const winners = jobs.filter((j) => j !== null);
    expect(winners).toHaveLength(1);
    expect((await db.vm.findUniqueOrThrow({ where: { id: target.id } })).lockJobId).toBe(winners[0]!.id);
    expect(await db.job.count({ where: { vmId: target.id } })).toBe(1);
  });

  it("starts a job, counts the attempt and resumes a running one, in one statement each", async () => {
    const input = noop(300);
    await statements.submit(input);
    roundTrips = 0;
    const started = await statements.start(input.id, LEASE);
    expect(roundTrips).toBe(1);
    expect(started).toMatchObject({ resumed: false, job: { id: input.id, state: "running", attempts: 1, eventSeq: 2, workerInstance: "w-1" } });
    expect(Math.abs(started!.job.startedAt!.getTime() - Date.now())).toBeLessThan(5000);
    expect(started!.job.leaseExpiresAt!.getTime() - started!.job.startedAt!.getTime()).toBeGreaterThan(29_000);
    const again = await statements.start(input.id, { ...LEASE, instanceId: "w-2" });
    expect(again).toMatchObject({ resumed: true, job: { attempts: 2, eventSeq: 3, workerInstance: "w-2", startedAt: started!.job.startedAt } });
    expect((await events(input.id)).map((e) => [e.seq, e.state, e.message])).toEqual([
      [1, "queued", "benchmark no-op 'noop-300' queued on host h1"],
      [2, "running", "started on host h1"],
      [3, "running", "resumed on host h1 (attempt 2) after its previous run was interrupted"],
    ]);
    expect(await statements.start(randomUUID(), LEASE)).toBeNull();
  });

  it("finishes a job: terminal state, result, locks released, final event; a final job stays final", async () => {
    const target = await vm("to-finish");
    const jobId = randomUUID();
    await statements.submit({ id: jobId, spec: { type: "vm.start", payload: { vmId: target.id }, hostId: "h1", vmId: target.id, imageId, targetName: "to-finish" }, request: {}, lockVm: { from: ["stopped"], onlineWithinSeconds: 30 } });
    await db.image.update({ where: { id: imageId }, data: { lockJobId: jobId } });
    await statements.start(jobId, LEASE);
    expect(await statements.finish(jobId, { state: "succeeded", result: { vmId: target.id }, message: "started" })).toBe(true);
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ state: "succeeded", result: { vmId: target.id }, progress: { phase: "done", percent: 100 }, leaseExpiresAt: null, errorCode: null, eventSeq: 3 });
    expect(Math.abs(job.finishedAt!.getTime() - Date.now())).toBeLessThan(5000);
    expect((await db.vm.findUniqueOrThrow({ where: { id: target.id } })).lockJobId).toBeNull();
    expect((await db.image.findUniqueOrThrow({ where: { id: imageId } })).lockJobId).toBeNull();
    expect((await events(jobId)).at(-1)).toMatchObject({ seq: 3, state: "succeeded", level: "info", message: "started", error: null });

    expect(await statements.finish(jobId, { state: "failed", error: { code: "INTERNAL", message: "late", hint: null } })).toBe(false);
    expect(await db.job.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ state: "succeeded", eventSeq: 3 });
  });

  it("records a failure with its error on the row and on the event", async () => {
    const input = noop(400);
    await statements.submit(input);
    await statements.start(input.id, LEASE);
    const error = { code: "QEMU_FAILED" as const, message: "boom", hint: "retry" };
    expect(await statements.finish(input.id, { state: "failed", error })).toBe(true);
    expect(await db.job.findUniqueOrThrow({ where: { id: input.id } })).toMatchObject({ state: "failed", result: null, errorCode: "QEMU_FAILED", errorMessage: "boom", errorHint: "retry" });
    expect((await events(input.id)).at(-1)).toMatchObject({ seq: 3, state: "failed", level: "error", message: "job failed: boom", error });
  });

  it("keeps every job's sequence numbers contiguous under concurrent progress, start and finish", async () => {
    const inputs = Array.from({ length: 8 }, (_, i) => noop(500 + i));
    await Promise.all(inputs.map((i) => statements.submit(i)));
    await Promise.all(inputs.map((i) => statements.start(i.id, LEASE)));
    await Promise.all(inputs.flatMap((i) => Array.from({ length: 5 }, (_, p) => statements.progress(i.id, { phase: "work", percent: p * 20 }))));
    await Promise.all(inputs.map((i) => statements.finish(i.id, { state: "succeeded", result: {} })));
    for (const input of inputs) {
      const seqs = (await events(input.id)).map((e) => e.seq);
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await db.job.findUniqueOrThrow({ where: { id: input.id } })).eventSeq).toBe(8);
    }
    // The five progress calls of one job landed in call order.
    expect((await events(inputs[0]!.id)).slice(2, 7).map((e) => e.message)).toEqual(["work (0%)", "work (20%)", "work (40%)", "work (60%)", "work (80%)"]);
  });

  it("runs jobStore's startJobRun, recordJobProgress and finishJob on the pool Prisma uses", async () => {
    expect(poolOf(db)).toBeInstanceOf(pg.Pool);
    const input = noop(600);
    await statements.submit(input);
    expect(await startJobRun(db, input.id, LEASE)).toMatchObject({ resumed: false, job: { state: "running" } });
    await recordJobProgress(db, input.id, { phase: "copy", percent: 50, message: "half" });
    expect(await finishJob(db, input.id, { state: "cancelled", error: { code: "JOB_CANCELLED", message: "stop", hint: null } })).toBe(true);
    expect((await events(input.id)).map((e) => [e.seq, e.type, e.message])).toEqual([
      [1, "state", "benchmark no-op 'noop-600' queued on host h1"],
      [2, "state", "started on host h1"],
      [3, "progress", "copy: half (50%)"],
      [4, "state", "job cancelled: stop"],
    ]);
  });

  it("appends audit rows of requests that finish together in one round trip", async () => {
    const audit = new AuditLog(pool);
    const entry = (i: number) => ({ actorName: "alice", method: "POST", path: `/v1/vms/v${i}/start`, outcome: "allowed" as const, status: 202, action: "vm.start", requestId: `audit-${i}` });
    await Promise.all(Array.from({ length: 10 }, (_, i) => audit.append(entry(i))));
    expect(roundTrips).toBe(1);
    const rows = await db.auditEvent.findMany({ where: { requestId: { startsWith: "audit-" } }, orderBy: { requestId: "asc" } });
    expect(rows).toHaveLength(10);
    expect(rows[0]).toMatchObject({ actorName: "alice", method: "POST", path: "/v1/vms/v0/start", status: 202, action: "vm.start", jobId: null });
    expect(Math.abs(rows[0]!.at.getTime() - Date.now())).toBeLessThan(5000);
  });
});
