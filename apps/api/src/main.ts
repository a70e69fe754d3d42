#!/usr/bin/env node
import { mkdir } from "node:fs/promises";
import { Redis } from "ioredis";
import { createPrismaClient } from "@iaas/db";
import { createApp } from "./app.js";
import { parseApiEnv } from "./env.js";
import { hardeningFromEnv } from "./http/hardening.js";
import { createLogger } from "./http/logger.js";
import { createApiServer, listen, serverOptionsFromEnv } from "./http/server.js";
import { expireExports, sweepExpiredJobs } from "./maintenance/jobSweeper.js";
import { relayQueuedJobs } from "./maintenance/outboxRelay.js";
import { JobQueues } from "./services/JobQueues.js";

async function main(): Promise<void> {
  const env = parseApiEnv(process.env);
  const log = createLogger(env.LOG_LEVEL);
  // Read the TLS files first: a wrong path fails the start before anything else happens.
  const serverOptions = await serverOptionsFromEnv(env);
  await mkdir(env.IAAS_IMAGE_STORE, { recursive: true });
  const db = createPrismaClient(env.DATABASE_URL);
  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null });
  const queues = new JobQueues(redis, env.IAAS_QUEUE_PREFIX);
  const { app, backupScheduler } = createApp({
    db,
    redis,
    queues,
    log,
    hardening: hardeningFromEnv(env),
    config: {
      imageStore: env.IAAS_IMAGE_STORE,
      queuePrefix: env.IAAS_QUEUE_PREFIX,
      offlineAfterSeconds: env.IAAS_HOST_OFFLINE_SECONDS,
      auth: env.IAAS_AUTH,
      maxUploadBytes: env.IAAS_MAX_UPLOAD_BYTES,
      exportTtlSeconds: env.IAAS_EXPORT_TTL_SECONDS,
      enableBenchJobs: env.IAAS_ENABLE_BENCH_JOBS,
    },
  });

  let maintenanceRunning = false;
  const maintenance = async () => {
    if (maintenanceRunning) return;
    maintenanceRunning = true;
    try {
      await relayQueuedJobs(db, queues, log);
      await backupScheduler.reconcile();
      await sweepExpiredJobs(db, log);
      const expired = await expireExports(db, env.IAAS_IMAGE_STORE);
      if (expired > 0) log.info({ expired }, "deleted expired exports");
    } catch (err) {
      log.warn({ err }, "maintenance pass failed; will retry");
    } finally {
      maintenanceRunning = false;
    }
  };
  await maintenance();
  backupScheduler.start();
  const timer = setInterval(() => void maintenance(), env.IAAS_RELAY_INTERVAL_MS);

  // Node answers 431 to a head over IAAS_MAX_HEADER_BYTES itself; see http/server.ts for the timeouts.
  const server = createApiServer(app, serverOptions);
  const port = await listen(server, env.IAAS_API_PORT, env.IAAS_API_HOST);
  const scheme = serverOptions.tls ? "https" : "http";
  log.info({ host: env.IAAS_API_HOST, port, tls: scheme === "https" }, `IaaS API listening on ${scheme}://${env.IAAS_API_HOST}:${port}`);

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    clearInterval(timer);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Long-polls and event streams would hold close() open; clients resume them (Last-Event-ID).
    server.closeAllConnections();
    await closed;
    await backupScheduler.close();
    await queues.close();
    redis.disconnect();
    await db.$disconnect();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`iaas-api: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
