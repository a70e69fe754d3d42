import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import path from "node:path";
import type { Job as BullJob } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostNetworkInfo } from "@iaas/contracts";
import { createJobRow, createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "@iaas/db/testing";
import { isProcessAlive, QemuImg } from "@iaas/hypervisor";
import { scrape } from "../../../api/src/testing/prometheusText.js";
import { parseAllowList } from "../download/urlPolicy.js";
import { WorkerMetrics } from "../metrics/WorkerMetrics.js";
import { HostNetwork } from "../net/HostNetwork.js";
import { NetRunner } from "../net/NetRunner.js";
import { ConsoleTailer } from "../vm/ConsoleTailer.js";
import { VmRuntime } from "../vm/VmRuntime.js";
import { DatabaseGate } from "./DatabaseGate.js";
import type { HandlerRegistry, WorkerServices } from "./HandlerContext.js";
import { handlers } from "./handlers.js";
import { workerLoggerOptions } from "./jobLog.js";
import { JobRunner, type QueueJobData } from "./JobRunner.js";

const userModeNetwork: HostNetworkInfo = {
  mode: "user",
  address: null,
  capabilities: { root: false, bridge: false, tap: false, nftables: false, dnsmasq: false, vxlan: false },
  notes: [],
  routes: [],
  listening: [],
};

const delivery = (jobId: string) => ({ data: { jobId }, attemptsMade: 0 }) as BullJob<QueueJobData>;

// The worker's job runner on the real Postgres, Redis and QEMU, its logger writing into an array
// and its metrics served on a free port: what a job's log lines carry, and what /metrics counts.
describe("a worker's job logs and metrics", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let redis: Redis;
  let dir: string;
  let runner: JobRunner;
  let server: Server;
  let metricsUrl: string;
  let imageId: string;
  const lines: string[] = [];
  const logged = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const log = pino(workerLoggerOptions("info", "obs-h1"), { write: (line: string) => void lines.push(line) });
  // A shared service with its own logger, as host networking and consoles have.
  const serviceLog = log.child({ component: "shared-service" });

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    redis = new Redis(await testRedisUrl());
    dir = await mkdtemp("/tmp/ijo-");
    const store = path.join(dir, "store");
    await mkdir(path.join(store, "images"), { recursive: true });
    // A 1 MiB disk whose boot sector halts: QEMU runs it under TCG.
    const disk = Buffer.alloc(1024 * 1024);
    disk.set([0xfa, 0xf4, 0xeb, 0xfd], 0);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    await writeFile(path.join(dir, "boot.raw"), disk);
    imageId = randomUUID();
    const qemuImg = new QemuImg();
    await qemuImg.convert(path.join(dir, "boot.raw"), "raw", path.join(store, "images", `${imageId}.qcow2`), "qcow2");
    await db.host.create({ data: { id: "obs-h1", name: "obs-h1", cpus: 4, memoryBytes: 2n ** 31n, diskBytes: 2n ** 34n, accelerator: "tcg" } });
    await db.image.create({ data: { id: imageId, name: "halt", state: "ready", virtualSize: 1048576n, path: `images/${imageId}.qcow2` } });
    const netRunner = new NetRunner(undefined);
    const services: WorkerServices = {
      db,
      runtime: new VmRuntime({ dataDir: path.join(dir, "obs-h1"), qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: netRunner }),
      qemuImg,
      consoles: new ConsoleTailer(redis, `ijo-${randomBytes(4).toString("hex")}`),
      hostId: "obs-h1",
      imageStore: store,
      importConfig: { importDir: undefined, urlAllowList: parseAllowList(undefined), maxVirtualSize: 2 ** 30, maxDownloadBytes: 2 ** 30, downloadTimeoutMs: 60_000 },
      network: new HostNetwork(db, netRunner, "obs-h1", path.join(dir, "obs-h1"), userModeNetwork, log.child({ component: "network" })),
      runner: netRunner,
    };
    // vm.create is the real handler; vm.reconcile here logs through its own and a shared logger, and fails when asked to.
    const registry: HandlerRegistry = {
      ...handlers,
      "vm.reconcile": {
        async run(ctx) {
          ctx.log.info("handler line");
          await new Promise((r) => setTimeout(r, 20));
          serviceLog.info("service line during the job");
          if (ctx.payload.reason === "fail") throw new Error("asked to fail");
          return { vmId: ctx.payload.vmId, state: "stopped", previousState: "running" };
        },
      },
    };
    const metrics = new WorkerMetrics("obs-h1", { runningJobs: () => runner.runningJobIds().length, countQemuProcesses: () => services.runtime.countQemuProcesses() }, log);
    const gate = new DatabaseGate(db, log, { pause: async () => undefined, resume: async () => undefined });
    runner = new JobRunner(services, registry, log, { instanceId: "it-observe", leaseMs: 30_000, gate, metrics });
    server = await metrics.serve({ port: 0, host: "127.0.0.1", token: undefined });
    const address = server.address();
    metricsUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/metrics`;
  }, 60_000);

  afterAll(async () => {
    server?.close();
    for (const vm of (await db?.vm.findMany()) ?? []) {
      if (vm.pid && (await isProcessAlive(vm.pid))) process.kill(vm.pid, "SIGKILL");
    }
    redis?.disconnect();
    await db?.$disconnect();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function reconcileJob(reason: string): Promise<{ jobId: string; vmId: string }> {
    const jobId = randomUUID();
    const vmId = randomUUID();
    await db.$transaction((tx) => createJobRow(tx, jobId, { type: "vm.reconcile", payload: { vmId, reason }, hostId: "obs-h1", vmId, targetName: "r" }, {}));
    return { jobId, vmId };
  }

  it("puts jobId, type, vmId and hostId on every line of a job's handling, its shared services' lines included, each key once", async () => {
    serviceLog.info("service line outside any job");
    const { jobId, vmId } = await reconcileJob("ok");
    await runner.process(delivery(jobId));
    expect((await db.job.findUniqueOrThrow({ where: { id: jobId } })).state).toBe("succeeded");
    const all = logged();
    const outside = all.find((l) => l["msg"] === "service line outside any job");
    expect(outside).toMatchObject({ hostId: "obs-h1", component: "shared-service" });
    expect(outside).not.toHaveProperty("jobId");
    const ofJob = all.filter((l) => l["jobId"] === jobId);
    expect(ofJob.map((l) => l["msg"])).toEqual(expect.arrayContaining(["handler line", "service line during the job", "job succeeded"]));
    for (const line of ofJob) expect(line).toMatchObject({ jobId, type: "vm.reconcile", vmId, hostId: "obs-h1" });
    for (const raw of lines.filter((l) => l.includes(jobId))) {
      for (const key of ["jobId", "vmId", "hostId", "type"]) expect(raw.match(new RegExp(`"${key}":`, "g"))).toHaveLength(1);
    }
  });

  it("serves /metrics with jobs finished by type and state, their durations and queue waits, and the QEMU processes on the host", async () => {
    const before = await scrape(metricsUrl);
    const failing = await reconcileJob("fail");
    await runner.process(delivery(failing.jobId));
    const created = randomUUID();
    const vm = await db.vm.create({ data: { name: "metered", hostId: "obs-h1", imageId, cpus: 1, memoryBytes: 128n * 1024n ** 2n, diskBytes: 2n * 1024n ** 2n, lockJobId: created } });
    await db.$transaction((tx) => createJobRow(tx, created, { type: "vm.create", payload: { vmId: vm.id, start: true }, hostId: "obs-h1", vmId: vm.id, targetName: "metered" }, {}));
    await runner.process(delivery(created));
    expect((await db.job.findUniqueOrThrow({ where: { id: created } })).state).toBe("succeeded");
    // The QEMU count is cached for two seconds.
    await new Promise((r) => setTimeout(r, 2100));
    const after = await scrape(metricsUrl);
    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    expect(delta("iaas_jobs_finished_total", { type: "vm.reconcile", state: "failed", host: "obs-h1" })).toBe(1);
    expect(delta("iaas_jobs_finished_total", { type: "vm.create", state: "succeeded", host: "obs-h1" })).toBe(1);
    expect(after.count("iaas_job_duration_seconds", { type: "vm.create", state: "succeeded" }) - before.count("iaas_job_duration_seconds", { type: "vm.create", state: "succeeded" })).toBe(1);
    expect(after.count("iaas_job_queue_wait_seconds", { type: "vm.create" }) - before.count("iaas_job_queue_wait_seconds", { type: "vm.create" })).toBe(1);
    expect(after.value("iaas_qemu_processes", { host: "obs-h1" })).toBe(1);
    expect(after.value("iaas_worker_jobs_running", { host: "obs-h1" })).toBe(0);
    expect(after.names()).toContain("process_cpu_seconds_total");
    expect((await fetch(metricsUrl.replace("/metrics", "/other"))).status).toBe(404);
  }, 60_000);

  it("refuses a scrape without the token when IAAS_METRICS_TOKEN is set", async () => {
    const guarded = new WorkerMetrics("obs-h2", { runningJobs: () => 0, countQemuProcesses: async () => 0 }, log);
    const s = await guarded.serve({ port: 0, host: "127.0.0.1", token: "worker-scrape-token-123" });
    try {
      const address = s.address();
      const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      expect((await scrape(url, "worker-scrape-token-123")).value("iaas_qemu_processes", { host: "obs-h2" })).toBe(0);
    } finally {
      s.close();
    }
  });
});
