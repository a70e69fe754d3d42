import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Job as BullJob } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostNetworkInfo } from "@iaas/contracts";
import { createJobRow, createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "@iaas/db/testing";
import { isProcessAlive, QemuImg } from "@iaas/hypervisor";
import { parseAllowList } from "../download/urlPolicy.js";
import { HostNetwork } from "../net/HostNetwork.js";
import { NetRunner } from "../net/NetRunner.js";
import { ConsoleTailer } from "../vm/ConsoleTailer.js";
import { VmRuntime } from "../vm/VmRuntime.js";
import type { WorkerServices } from "./HandlerContext.js";
import { handlers } from "./handlers.js";
import { DatabaseGate } from "./DatabaseGate.js";
import { JobRunner, type QueueJobData } from "./JobRunner.js";

/** A 1 MiB disk whose boot sector just halts: enough for QEMU to run under TCG. */
function haltingDisk(): Buffer {
  const disk = Buffer.alloc(1024 * 1024);
  disk.set([0xfa, 0xf4, 0xeb, 0xfd], 0); // cli; hlt; jmp $-1
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** A host without managed networking: VMs get isolated user-mode NICs and nothing on the host changes. */
const userModeNetwork: HostNetworkInfo = {
  mode: "user",
  address: null,
  capabilities: { root: false, bridge: false, tap: false, nftables: false, dnsmasq: false, vxlan: false },
  notes: [],
  routes: [],
  listening: [],
};

function delivery(jobId: string, attemptsMade = 0): BullJob<QueueJobData> {
  return { data: { jobId }, attemptsMade } as BullJob<QueueJobData>;
}

// The job runner against the real Postgres, Redis and QEMU, with deliveries handed to it directly,
// as BullMQ would hand them (including twice).
describe("JobRunner", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let redis: Redis;
  let dir: string;
  let services: WorkerServices;
  let runner: JobRunner;
  let imageId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    redis = new Redis(await testRedisUrl());
    dir = await mkdtemp("/tmp/ijr-");
    const store = path.join(dir, "store");
    await mkdir(path.join(store, "images"), { recursive: true });
    const raw = path.join(dir, "boot.raw");
    await writeFile(raw, haltingDisk());
    const qemuImg = new QemuImg();
    const netRunner = new NetRunner(undefined);
    imageId = randomUUID();
    await qemuImg.convert(raw, "raw", path.join(store, "images", `${imageId}.qcow2`), "qcow2");
    await db.host.create({ data: { id: "h1", name: "h1", cpus: 4, memoryBytes: 2n ** 31n, diskBytes: 2n ** 34n, accelerator: "tcg" } });
    await db.image.create({ data: { id: imageId, name: "halt", state: "ready", virtualSize: 1048576n, path: `images/${imageId}.qcow2` } });
    services = {
      db,
      runtime: new VmRuntime({ dataDir: path.join(dir, "h1"), qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: netRunner }),
      qemuImg,
      consoles: new ConsoleTailer(redis, `ijr-${randomBytes(4).toString("hex")}`),
      hostId: "h1",
      imageStore: store,
      importConfig: {
        importDir: undefined,
        urlAllowList: parseAllowList(undefined),
        maxVirtualSize: 2 ** 30,
        maxDownloadBytes: 2 ** 30,
        downloadTimeoutMs: 60_000,
      },
      network: new HostNetwork(db, netRunner, "h1", path.join(dir, "h1"), userModeNetwork, pino({ level: "silent" })),
      runner: netRunner,
    };
    const gate = new DatabaseGate(db, pino({ level: "silent" }), { pause: async () => undefined, resume: async () => undefined });
    runner = new JobRunner(services, handlers, pino({ level: "silent" }), { instanceId: "it-runner", leaseMs: 30_000, gate });
  }, 60_000);

  afterAll(async () => {
    for (const vm of (await db?.vm.findMany()) ?? []) {
      if (vm.pid && (await isProcessAlive(vm.pid))) process.kill(vm.pid, "SIGKILL");
    }
    redis?.disconnect();
    await db?.$disconnect();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function submitCreate(name: string, start: boolean) {
    const jobId = randomUUID();
    const vm = await db.vm.create({ data: { name, hostId: "h1", imageId, cpus: 1, memoryBytes: 128n * 1024n ** 2n, diskBytes: 2n * 1024n ** 2n, lockJobId: jobId } });
    await db.$transaction((tx) => createJobRow(tx, jobId, { type: "vm.create", payload: { vmId: vm.id, start }, hostId: "h1", vmId: vm.id, targetName: name }, {}));
    return { jobId, vmId: vm.id };
  }

  async function qemuCountFor(name: string): Promise<number> {
    let n = 0;
    for (const pid of await readdir("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await import("node:fs/promises").then((fs) => fs.readFile(`/proc/${pid}/cmdline`, "utf8")).catch(() => "");
      if (cmd.includes(`guest=${name},`) && (await isProcessAlive(Number(pid)))) n++;
    }
    return n;
  }

  it("creates the disk as an overlay grown to the VM's size, starts QEMU and releases the lock", async () => {
    const { jobId, vmId } = await submitCreate("one", true);
    await runner.process(delivery(jobId));
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job.state).toBe("succeeded");
    const vm = await db.vm.findUniqueOrThrow({ where: { id: vmId } });
    expect(vm).toMatchObject({ state: "running", lockJobId: null, accelerator: "tcg" });
    expect(await isProcessAlive(vm.pid ?? 0)).toBe(true);
    const info = await services.qemuImg.info(services.runtime.files(vmId).disk, "qcow2", { allowShared: true });
    expect(info.backingFilename).toContain(`${imageId}.qcow2`);
    expect(info.virtualSize).toBe(2 * 1024 ** 2);
    const seqs = (await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } })).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it("adopts the QEMU of a delivery that died after starting it, instead of starting a second one", async () => {
    const { jobId, vmId } = await submitCreate("two", true);
    await runner.process(delivery(jobId));
    const first = await db.vm.findUniqueOrThrow({ where: { id: vmId } });
    // As if the worker died between QEMU coming up and recording it: the job is still running.
    await db.job.update({ where: { id: jobId }, data: { state: "running", finishedAt: null } });
    await db.vm.update({ where: { id: vmId }, data: { state: "starting", pid: null, lockJobId: jobId } });
    await runner.process(delivery(jobId));
    const after = await db.vm.findUniqueOrThrow({ where: { id: vmId } });
    expect(after).toMatchObject({ state: "running", pid: first.pid, lockJobId: null });
    expect(await qemuCountFor("two")).toBe(1);
    const events = await db.jobEvent.findMany({ where: { jobId }, orderBy: { seq: "asc" } });
    expect(events.some((e) => e.message.includes("resumed on host h1"))).toBe(true);
    expect(events.some((e) => e.message.includes("adopting it"))).toBe(true);
  });

  it("skips a delivery for a job that was cancelled before it started", async () => {
    const { jobId, vmId } = await submitCreate("three", false);
    await db.job.update({ where: { id: jobId }, data: { state: "cancelled" } });
    await runner.process(delivery(jobId));
    await expect(stat(services.runtime.files(vmId).disk)).rejects.toThrow();
    expect((await db.vm.findUniqueOrThrow({ where: { id: vmId } })).state).toBe("creating");
  });

  it("fails a start whose QEMU cannot run, records the error on the VM and leaves it stopped", async () => {
    const { jobId, vmId } = await submitCreate("four", false);
    await runner.process(delivery(jobId));
    await rm(services.runtime.files(vmId).disk);
    const startId = randomUUID();
    await db.vm.update({ where: { id: vmId }, data: { lockJobId: startId } });
    await db.$transaction((tx) => createJobRow(tx, startId, { type: "vm.start", payload: { vmId }, hostId: "h1", vmId, targetName: "four" }, {}));
    await runner.process(delivery(startId));
    const job = await db.job.findUniqueOrThrow({ where: { id: startId } });
    expect(job.state).toBe("failed");
    expect(job.errorCode).toBe("QEMU_FAILED");
    expect(job.attempts).toBe(1);
    const vm = await db.vm.findUniqueOrThrow({ where: { id: vmId } });
    expect(vm).toMatchObject({ lockJobId: null, errorCode: "QEMU_FAILED" });
    expect(["stopped", "error"]).toContain(vm.state);
  });

  it("runs a job once when it is delivered again while it runs here (a stalled-then-resumed worker), and records its lease", async () => {
    const { jobId, vmId } = await submitCreate("five", false);
    const first = runner.process(delivery(jobId));
    const second = runner.process(delivery(jobId));
    await Promise.all([first, second]);
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ state: "succeeded", attempts: 1, workerInstance: "it-runner", leaseExpiresAt: null });
    const started = await db.jobEvent.count({ where: { jobId, state: "running" } });
    expect(started).toBe(1);
    expect((await db.vm.findUniqueOrThrow({ where: { id: vmId } })).state).toBe("stopped");
  });

  it("fails with WORKER_LOST a job whose runs kept dying, instead of running it again", async () => {
    const { jobId, vmId } = await submitCreate("six", false);
    await db.job.update({ where: { id: jobId }, data: { state: "running", startedAt: new Date(), attempts: 10 } });
    await runner.process(delivery(jobId));
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ state: "failed", errorCode: "WORKER_LOST" });
    await expect(stat(services.runtime.files(vmId).disk)).rejects.toThrow();
    // Settled like any failure: the VM it was creating is out of `creating`, and free.
    expect(await db.vm.findUniqueOrThrow({ where: { id: vmId } })).toMatchObject({ lockJobId: null, state: "error", errorCode: "WORKER_LOST" });
  });

  it("puts a delivery back, delayed and without spending an attempt, and pauses taking jobs while Postgres is unreachable", async () => {
    const unreachable = createPrismaClient("postgresql://postgres@127.0.0.1:1/postgres");
    const paused: string[] = [];
    const gate = new DatabaseGate(unreachable, pino({ level: "silent" }), { pause: async () => void paused.push("pause"), resume: async () => void paused.push("resume") });
    const offline = new JobRunner({ ...services, db: unreachable }, handlers, pino({ level: "silent" }), { instanceId: "it-offline", leaseMs: 30_000, gate });
    const delayed: number[] = [];
    const put = { ...delivery(randomUUID()), moveToDelayed: async (ts: number) => void delayed.push(ts) } as unknown as BullJob<QueueJobData>;
    const thrown = await offline.process(put, "token").catch((e: unknown) => e);
    expect((thrown as Error).name).toBe("DelayedError");
    expect(delayed).toHaveLength(1);
    expect(delayed[0]).toBeGreaterThan(Date.now());
    expect(gate.isDown).toBe(true);
    expect(paused).toEqual(["pause"]);
    gate.stopping = true;
    await unreachable.$disconnect();
  });
});
