#!/usr/bin/env node
import { mkdir } from "node:fs/promises";
import os from "node:os";
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { configError, hostQueueName, LOG_REDACT_CENSOR, LOG_REDACT_PATHS, parseSize } from "@iaas/contracts";
import { createPrismaClient, finishJob } from "@iaas/db";
import { detectAccelerator, QemuImg, qemuVersion } from "@iaas/hypervisor";
import { parseWorkerEnv } from "./env.js";
import { HostRegistration, measureHost } from "./host/HostRegistration.js";
import type { WorkerServices } from "./jobs/HandlerContext.js";
import { handlers } from "./jobs/handlers.js";
import { CancelWatcher } from "./jobs/CancelWatcher.js";
import { parseAllowList } from "./download/urlPolicy.js";
import { JobRunner, type QueueJobData } from "./jobs/JobRunner.js";
import { ConsoleTailer } from "./vm/ConsoleTailer.js";
import { VmMonitor } from "./vm/VmMonitor.js";
import { VmRuntime } from "./vm/VmRuntime.js";
import { qemuUserFromSetting } from "./vm/qemuUserPolicy.js";
import { detectHostNetwork } from "./net/detectHostNetwork.js";
import { HostNetwork } from "./net/HostNetwork.js";
import { NetRunner } from "./net/NetRunner.js";

function allowList(text: string | undefined) {
  try {
    return parseAllowList(text);
  } catch (err) {
    throw configError([`IAAS_URL_ALLOW_LIST: ${(err as Error).message}`]);
  }
}

async function main(): Promise<void> {
  const env = parseWorkerEnv(process.env);
  const log = pino({ level: env.LOG_LEVEL, base: { service: "worker", hostId: env.IAAS_HOST_ID }, redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR } });
  await mkdir(env.IAAS_DATA_DIR, { recursive: true });
  await mkdir(env.IAAS_IMAGE_STORE, { recursive: true });

  const accelerator = await detectAccelerator(env.IAAS_ACCEL);
  const version = await qemuVersion(env.IAAS_QEMU_BINARY).then(
    (v) => v.version,
    (err: unknown) => {
      throw new Error(`cannot run ${env.IAAS_QEMU_BINARY}: ${(err as Error).message}; install QEMU (apt-get install qemu-system-x86 qemu-utils) or set IAAS_QEMU_BINARY`);
    },
  );
  const qemuUser = await qemuUserFromSetting(env.IAAS_QEMU_USER, {
    isRoot: process.getuid?.() === 0,
    accelerator,
    dirs: { IAAS_DATA_DIR: env.IAAS_DATA_DIR, IAAS_IMAGE_STORE: env.IAAS_IMAGE_STORE },
  });
  const db = createPrismaClient(env.DATABASE_URL);
  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null });
  const capacity = await measureHost({
    dataDir: env.IAAS_DATA_DIR,
    cpuRatio: env.IAAS_CPU_ALLOCATION_RATIO,
    cpus: env.IAAS_HOST_CPUS,
    memory: env.IAAS_HOST_MEMORY,
    disk: env.IAAS_HOST_DISK,
  });
  const netRunner = new NetRunner(env.IAAS_NETNS);
  const detectNetwork = () => detectHostNetwork(netRunner, { mode: env.IAAS_NETWORK_MODE, address: env.IAAS_HOST_ADDRESS });
  const networkInfo = await detectNetwork();
  const registration = new HostRegistration(
    db,
    { id: env.IAAS_HOST_ID, name: env.IAAS_HOST_NAME ?? os.hostname(), accelerator, qemuVersion: version, ...capacity, network: networkInfo },
    log,
  );
  const network = new HostNetwork(db, netRunner, env.IAAS_HOST_ID, env.IAAS_DATA_DIR, networkInfo, log.child({ component: "network" }), env.IAAS_HOST_OFFLINE_SECONDS, qemuUser);
  // Reconcile the host's networking with Postgres before the host shows up as online (bridges,
  // taps, dnsmasq, rules: a reboot or a crash may have lost them).
  await network.sync("worker start", true).catch((err: unknown) => {
    log.error({ err }, "could not bring the host's networking in line at start; retrying every IAAS_NETWORK_SYNC_MS");
  });
  await registration.register();
  registration.start(env.IAAS_HEARTBEAT_SECONDS * 1000);
  log.info(
    {
      accelerator,
      qemu: version,
      // QEMU always runs under its seccomp sandbox; on a root worker also as this unprivileged user.
      qemuUser: qemuUser === null ? `the worker's own (uid ${String(process.getuid?.())})` : `${qemuUser.name} (uid ${qemuUser.uid})`,
      ...capacity,
      network: { mode: networkInfo.mode, address: networkInfo.address, notes: networkInfo.notes },
    },
    `host ${env.IAAS_HOST_ID} registered`,
  );

  const services: WorkerServices = {
    db,
    runtime: new VmRuntime({ dataDir: env.IAAS_DATA_DIR, qemuBinary: env.IAAS_QEMU_BINARY, accelerator, runner: netRunner, qemuUser }),
    qemuImg: new QemuImg({ binary: env.IAAS_QEMU_IMG_BINARY }),
    consoles: new ConsoleTailer(redis, env.IAAS_QUEUE_PREFIX),
    hostId: env.IAAS_HOST_ID,
    imageStore: env.IAAS_IMAGE_STORE,
    importConfig: {
      importDir: env.IAAS_IMPORT_DIR,
      urlAllowList: allowList(env.IAAS_URL_ALLOW_LIST),
      maxVirtualSize: parseSize(env.IAAS_MAX_IMAGE_VIRTUAL_SIZE, "G"),
      maxDownloadBytes: parseSize(env.IAAS_MAX_DOWNLOAD_BYTES, "G"),
      downloadTimeoutMs: env.IAAS_DOWNLOAD_TIMEOUT_SECONDS * 1000,
    },
    network,
    runner: netRunner,
  };

  const monitor = new VmMonitor(services, log.child({ component: "monitor" }));
  await monitor.pass(true);

  const runner = new JobRunner(services, handlers, log);
  const worker = new Worker<QueueJobData>(hostQueueName(env.IAAS_HOST_ID), (job) => runner.process(job), {
    connection: redis.duplicate(),
    prefix: env.IAAS_QUEUE_PREFIX,
    concurrency: env.IAAS_CONCURRENCY,
    maxStalledCount: 2,
  });
  worker.on("failed", (job, err) => {
    if (!job) return;
    const exhausted = job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled/i.test(err.message);
    if (!exhausted) return;
    // The processor records its own final failures; this catches deliveries BullMQ gave up on.
    void finishJob(db, job.data.jobId, {
      state: "failed",
      error: { code: "INTERNAL", message: `delivery failed for good: ${err.message}`, hint: "retry the request; the worker log has details" },
    }).catch((e: unknown) => log.error({ err: e }, "could not record a failed delivery"));
  });
  worker.on("error", (err) => log.error({ err }, "queue worker error"));
  const cancels = new CancelWatcher(redis, env.IAAS_QUEUE_PREFIX, db, runner, log);
  await cancels.start();
  log.info({ queue: hostQueueName(env.IAAS_HOST_ID), concurrency: env.IAAS_CONCURRENCY }, "taking jobs");

  let monitoring = false;
  const monitorTimer = setInterval(() => {
    if (monitoring) return;
    monitoring = true;
    monitor
      .pass()
      .catch((err: unknown) => log.warn({ err }, "monitor pass failed"))
      .finally(() => (monitoring = false));
  }, env.IAAS_MONITOR_INTERVAL_MS);

  // Peers joining or leaving a network, DHCP leases, and the host's listening ports change on their own.
  let syncing = false;
  let lastDetect = Date.now();
  const networkTimer = setInterval(() => {
    if (syncing) return;
    syncing = true;
    (async () => {
      await network.sync("periodic");
      await network.recordLeases();
      if (Date.now() - lastDetect > 30_000) {
        lastDetect = Date.now();
        const info = await detectNetwork();
        network.updateInfo(info);
        await registration.updateNetwork(info);
      }
    })()
      .catch((err: unknown) => log.warn({ err }, "network sync failed"))
      .finally(() => (syncing = false));
  }, env.IAAS_NETWORK_SYNC_MS);

  const shutdown = async (signal: string) => {
    log.info({ signal }, "stopping: no new jobs; running jobs get a grace period; VMs keep running");
    clearInterval(monitorTimer);
    clearInterval(networkTimer);
    cancels.stop();
    const grace = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), env.IAAS_SHUTDOWN_GRACE_SECONDS * 1000).unref());
    if ((await Promise.race([worker.close(), grace])) === "timeout") {
      log.warn("running jobs did not finish within the grace period; they will be redelivered");
      await worker.close(true);
    }
    registration.stop();
    redis.disconnect();
    await db.$disconnect();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`iaas-worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
