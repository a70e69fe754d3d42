#!/usr/bin/env node
import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import os from "node:os";
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { pino } from "pino";
import { configError, hostQueueName, parseSize } from "@iaas/contracts";
import { createPrismaClient } from "@iaas/db";
import { detectAccelerator, QemuImg, qemuVersion } from "@iaas/hypervisor";
import { parseWorkerEnv } from "./env.js";
import { HostRegistration, measureHost } from "./host/HostRegistration.js";
import { StoreCheck } from "./host/StoreCheck.js";
import type { WorkerServices } from "./jobs/HandlerContext.js";
import { handlers } from "./jobs/handlers.js";
import { CancelWatcher } from "./jobs/CancelWatcher.js";
import { DatabaseGate } from "./jobs/DatabaseGate.js";
import { parseAllowList } from "./download/urlPolicy.js";
import { JobRunner, type QueueJobData } from "./jobs/JobRunner.js";
import { workerLoggerOptions } from "./jobs/jobLog.js";
import { WorkerMetrics } from "./metrics/WorkerMetrics.js";
import { ConsoleTailer } from "./vm/ConsoleTailer.js";
import { OrphanCleaner } from "./vm/OrphanCleaner.js";
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
  const log = pino(workerLoggerOptions(env.LOG_LEVEL, env.IAAS_HOST_ID));
  await mkdir(env.IAAS_DATA_DIR, { recursive: true });
  // Prometheus metrics (IAAS_METRICS_PORT, 0: none), listening first: a taken port fails the start
  // before the host is registered. Running jobs and QEMU processes are counted at scrape time.
  let runningJobs = (): number => 0;
  const metrics = new WorkerMetrics(env.IAAS_HOST_ID, { runningJobs: () => runningJobs(), countQemuProcesses: () => services.runtime.countQemuProcesses() }, log);
  const metricsServer =
    env.IAAS_METRICS_PORT === 0 ? null : await metrics.serve({ port: env.IAAS_METRICS_PORT, host: env.IAAS_METRICS_HOST, token: env.IAAS_METRICS_TOKEN });
  if (metricsServer) log.info({ host: env.IAAS_METRICS_HOST, port: env.IAAS_METRICS_PORT }, `metrics on http://${env.IAAS_METRICS_HOST}:${env.IAAS_METRICS_PORT}/metrics`);
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
  const instanceId = randomUUID();
  // Until the worker takes jobs there is nothing to hand back: a fenced worker just exits.
  let onFenced = (): void => process.exit(1);
  const registration = new HostRegistration(
    db,
    { id: env.IAAS_HOST_ID, name: env.IAAS_HOST_NAME ?? os.hostname(), accelerator, qemuVersion: version, ...capacity, network: networkInfo },
    log,
    {
      instanceId,
      offlineAfterSeconds: env.IAAS_HOST_OFFLINE_SECONDS,
      // Another worker took this host over while this one was paused or cut off: stop taking work.
      onFenced: () => onFenced(),
    },
  );
  // A second worker for a host id that is alive is refused before it touches the host's networking.
  await registration.waitUntilAvailable();
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
    consoles: new ConsoleTailer(redis, env.IAAS_QUEUE_PREFIX, { maxBytes: env.IAAS_CONSOLE_LOG_MAX_BYTES, log: log.child({ component: "console" }) }),
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
  // What this host keeps of VMs deleted with --force while it was lost, or moved to another host.
  const orphans = new OrphanCleaner(services, log.child({ component: "orphans" }));
  const cleanOrphans = () => orphans.pass().catch((err: unknown) => log.warn({ err }, "orphan cleanup failed; trying again later"));
  await cleanOrphans();
  const orphanTimer = setInterval(() => void cleanOrphans(), 60_000);
  // Every ready image's file is in the shared store with its recorded size: at start, then periodically.
  const storeCheck = new StoreCheck(db, env.IAAS_IMAGE_STORE, env.IAAS_HOST_ID, log.child({ component: "store-check" }));
  await storeCheck.pass().catch((err: unknown) => log.warn({ err }, "image store check failed at start; trying again at the next interval"));
  storeCheck.start(env.IAAS_STORE_CHECK_INTERVAL_SECONDS * 1000);

  const leaseMs = env.IAAS_JOB_LEASE_SECONDS * 1000;
  const gate: DatabaseGate = new DatabaseGate(db, log.child({ component: "db-gate" }), {
    pause: async (): Promise<void> => worker.pause(true),
    resume: async (): Promise<void> => worker.resume(),
  });
  const runner: JobRunner = new JobRunner(services, handlers, log, { instanceId, leaseMs, gate, metrics });
  runningJobs = () => runner.runningJobIds().length;
  const worker: Worker<QueueJobData> = new Worker<QueueJobData>(hostQueueName(env.IAAS_HOST_ID), (job, token): Promise<void> => runner.process(job, token), {
    connection: redis.duplicate(),
    prefix: env.IAAS_QUEUE_PREFIX,
    concurrency: env.IAAS_CONCURRENCY,
    // The BullMQ lock is the lease: a job whose worker died is redelivered once it lapses.
    lockDuration: leaseMs,
    stalledInterval: leaseMs,
    maxStalledCount: 1_000_000,
  });
  runner.startLeases();
  // Postgres decides what a job needs (the relay re-adds what BullMQ gave up on); this only logs.
  worker.on("failed", (job, err) => {
    if (job) log.warn({ jobId: job.data.jobId, err: err.message }, "delivery failed");
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

  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ signal, running: runner.runningJobIds() }, "stopping: no new jobs; running jobs get a grace period; VMs keep running");
    clearInterval(monitorTimer);
    clearInterval(networkTimer);
    clearInterval(orphanTimer);
    storeCheck.stop();
    cancels.stop();
    // A fenced worker's host belongs to another process now: hand everything back at once.
    const graceMs = signal === "fenced" ? 0 : env.IAAS_SHUTDOWN_GRACE_SECONDS * 1000;
    const closing = worker.close();
    const grace = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs).unref());
    if ((await Promise.race([closing.then(() => "done" as const), grace])) === "timeout") {
      // Hand the jobs back: their leases end now, so the relay and BullMQ redeliver them to the
      // next worker of this host, whose handlers pick up where the domain rows say. The handlers
      // still running here end with the process: nothing they do after this is recorded as theirs.
      const handed = runner.runningJobIds();
      log.warn({ jobs: handed }, "running jobs did not finish within the grace period; handing them back");
      gate.stopping = true;
      runner.stopLeases();
      await db.job
        .updateMany({ where: { id: { in: handed }, state: "running", workerInstance: instanceId }, data: { leaseExpiresAt: new Date(0) } })
        .catch((err: unknown) => log.error({ err }, "could not end the leases of the jobs handed back; they are redelivered when the lease runs out"));
      // BullMQ's forced close still waits for the running handlers; give it a moment, no more.
      await Promise.race([worker.close(true), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    runner.stopLeases();
    metricsServer?.close();
    if (signal === "fenced") registration.stop();
    else await registration.release().catch((err: unknown) => log.warn({ err }, "could not release the host; the next worker waits for its heartbeat to go stale"));
    redis.disconnect();
    await db.$disconnect().catch(() => undefined);
    log.info("stopped");
    process.exit(signal === "fenced" ? 1 : 0);
  }
  onFenced = () => void shutdown("fenced");
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`iaas-worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
