import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Job as BullJob } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HostNetworkInfo } from "@iaas/contracts";
import { createJobRow, createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "@iaas/db/testing";
import { QemuImg } from "@iaas/hypervisor";
import { parseAllowList } from "../download/urlPolicy.js";
import { DatabaseGate } from "../jobs/DatabaseGate.js";
import type { WorkerServices } from "../jobs/HandlerContext.js";
import { handlers } from "../jobs/handlers.js";
import { JobRunner, type QueueJobData } from "../jobs/JobRunner.js";
import { HostNetwork } from "../net/HostNetwork.js";
import { NetRunner } from "../net/NetRunner.js";
import { ConsoleTailer } from "../vm/ConsoleTailer.js";
import { VmRuntime } from "../vm/VmRuntime.js";
import { hashFile } from "./hashFile.js";

const userModeNetwork: HostNetworkInfo = {
  mode: "user",
  address: null,
  capabilities: { root: false, bridge: false, tap: false, nftables: false, dnsmasq: false, vxlan: false },
  notes: [],
  routes: [],
  listening: [],
};

function delivery(jobId: string): BullJob<QueueJobData> {
  return { data: { jobId }, attemptsMade: 0 } as BullJob<QueueJobData>;
}

const HINT = (name: string) => `restore the file and run \`iaas image verify ${name}\`, or delete the image and import it again`;

// `image.verify` and the create path's check of the image file, run by the job runner against the
// real Postgres, Redis and qemu-img, with a temporary image store.
describe("image verify and the VM create path's image check", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let redis: Redis;
  let dir: string;
  let store: string;
  let services: WorkerServices;
  let runner: JobRunner;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    redis = new Redis(await testRedisUrl());
    dir = await mkdtemp("/tmp/iiv-");
    store = path.join(dir, "store");
    await mkdir(path.join(store, "images"), { recursive: true });
    const netRunner = new NetRunner(undefined);
    await db.host.create({ data: { id: "h1", name: "h1", cpus: 4, memoryBytes: 2n ** 31n, diskBytes: 2n ** 34n, accelerator: "tcg" } });
    services = {
      db,
      runtime: new VmRuntime({ dataDir: path.join(dir, "h1"), qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: netRunner }),
      qemuImg: new QemuImg(),
      consoles: new ConsoleTailer(redis, `iiv-${randomBytes(4).toString("hex")}`),
      hostId: "h1",
      imageStore: store,
      importConfig: { importDir: undefined, urlAllowList: parseAllowList(undefined), maxVirtualSize: 2 ** 30, maxDownloadBytes: 2 ** 30, downloadTimeoutMs: 60_000 },
      network: new HostNetwork(db, netRunner, "h1", path.join(dir, "h1"), userModeNetwork, pino({ level: "silent" })),
      runner: netRunner,
    };
    const gate = new DatabaseGate(db, pino({ level: "silent" }), { pause: async () => undefined, resume: async () => undefined });
    runner = new JobRunner(services, handlers, pino({ level: "silent" }), { instanceId: "it-verify", leaseMs: 30_000, gate });
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await db?.$disconnect();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A stored 1 MiB qcow2 image as an import leaves it; `storedSha256: false` as images imported before it was kept. */
  async function storedImage(name: string, opts: { storedSha256?: boolean; state?: "ready" | "error" } = {}) {
    const id = randomUUID();
    const relative = path.join("images", `${id}.qcow2`);
    const file = path.join(store, relative);
    await services.qemuImg.create(file, "qcow2", 1024 * 1024);
    const size = (await stat(file)).size;
    const sha = await hashFile(file);
    await db.image.create({
      data: {
        id,
        name,
        state: opts.state ?? "ready",
        sourceFormat: "qcow2",
        virtualSize: 1048576n,
        storedSize: BigInt(size),
        sha256: "c".repeat(64),
        storedSha256: opts.storedSha256 === false ? null : sha,
        path: relative,
        ...(opts.state === "error" ? { errorCode: "IMAGE_FILE_MISSING", errorMessage: "the stored file was missing", errorHint: HINT(name) } : {}),
      },
    });
    return { id, file, sha };
  }

  /** Submits `image.verify` as the API does: the job holds the image. */
  async function verify(imageId: string) {
    const jobId = randomUUID();
    await db.image.update({ where: { id: imageId }, data: { lockJobId: jobId } });
    await db.$transaction((tx) => createJobRow(tx, jobId, { type: "image.verify", payload: { imageId }, hostId: "h1", imageId, targetName: "img" }, {}));
    await runner.process(delivery(jobId));
    return db.job.findUniqueOrThrow({ where: { id: jobId } });
  }

  it("makes an image in error ready again when its file is whole, clearing the error and keeping the file's sha256", async () => {
    const img = await storedImage("back", { state: "error", storedSha256: false });
    const job = await verify(img.id);
    expect(job).toMatchObject({ state: "succeeded", errorCode: null });
    expect(job.result).toEqual({ imageId: img.id, state: "ready", sizeBytes: (await stat(img.file)).size, sha256: img.sha, firstChecksum: true });
    const image = await db.image.findUniqueOrThrow({ where: { id: img.id } });
    expect(image).toMatchObject({ state: "ready", errorCode: null, errorMessage: null, errorHint: null, storedSha256: img.sha, lockJobId: null });
    expect(image.checkedAt).not.toBeNull();
  });

  it("fails on one changed byte of the same size with IMAGE_FILE_MISMATCH naming both checksums, and marks the image error", async () => {
    const img = await storedImage("flipped");
    const fh = await open(img.file, "r+");
    const at = (await stat(img.file)).size - 100;
    const old = Buffer.alloc(1);
    await fh.read(old, 0, 1, at);
    await fh.write(Buffer.from([old[0]! ^ 0xff]), 0, 1, at);
    await fh.close();
    const now = await hashFile(img.file);
    const job = await verify(img.id);
    expect(job).toMatchObject({ state: "failed", errorCode: "IMAGE_FILE_MISMATCH", errorHint: HINT("flipped") });
    expect(job.errorMessage).toBe(`the stored file of image 'flipped' has changed: the sha256 of ${img.file} is ${now}, ${img.sha} was recorded when it was stored`);
    expect(await db.image.findUniqueOrThrow({ where: { id: img.id } })).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISMATCH", errorMessage: job.errorMessage, lockJobId: null });
  });

  it("fails with IMAGE_FILE_MISSING when the file is gone", async () => {
    const img = await storedImage("vanished");
    await rm(img.file);
    const job = await verify(img.id);
    expect(job).toMatchObject({ state: "failed", errorCode: "IMAGE_FILE_MISSING", errorHint: HINT("vanished") });
    expect(job.errorMessage).toContain(`is missing: ${img.file}`);
    expect(await db.image.findUniqueOrThrow({ where: { id: img.id } })).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISSING", lockJobId: null });
  });

  it("refuses, through qemu-img, a file of the right size that is no qcow2 image when no checksum was kept", async () => {
    const img = await storedImage("garbage", { storedSha256: false });
    await writeFile(img.file, randomBytes((await stat(img.file)).size));
    const job = await verify(img.id);
    expect(job).toMatchObject({ state: "failed", errorCode: "IMAGE_FILE_MISMATCH" });
    expect(job.errorMessage).toContain(`the stored file of image 'garbage' is not a readable qcow2 image: ${img.file}`);
    expect(await db.image.findUniqueOrThrow({ where: { id: img.id } })).toMatchObject({ state: "error", storedSha256: null });
  });

  it("fails a VM create whose image file vanished after submit with IMAGE_FILE_MISSING and the hint, marking the image error", async () => {
    const img = await storedImage("base");
    const jobId = randomUUID();
    const vm = await db.vm.create({ data: { name: "orphan", hostId: "h1", imageId: img.id, cpus: 1, memoryBytes: 128n * 1024n ** 2n, diskBytes: 2n * 1024n ** 2n, lockJobId: jobId } });
    await db.$transaction((tx) => createJobRow(tx, jobId, { type: "vm.create", payload: { vmId: vm.id, start: false }, hostId: "h1", vmId: vm.id, imageId: img.id, targetName: "orphan" }, {}));
    await rm(img.file);
    await runner.process(delivery(jobId));
    const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ state: "failed", errorCode: "IMAGE_FILE_MISSING", errorHint: HINT("base") });
    expect(job.errorMessage).toContain(`the stored file of image 'base' is missing: ${img.file}`);
    expect(job.errorMessage).not.toMatch(/qemu-img/);
    expect(await db.image.findUniqueOrThrow({ where: { id: img.id } })).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISSING" });
    expect(await db.job.count({ where: { imageId: img.id, type: "image_reconcile" } })).toBe(1);
    expect(await db.vm.findUniqueOrThrow({ where: { id: vm.id } })).toMatchObject({ state: "error", lockJobId: null });
    expect(await stat(services.runtime.files(vm.id).disk).then(() => true, () => false)).toBe(false);
  });
});
