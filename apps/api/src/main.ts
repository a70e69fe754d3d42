#!/usr/bin/env node
import { mkdir } from "node:fs/promises";
import { Redis } from "ioredis";
import { createPrismaClient } from "@iaas/db";
import { createApp } from "./app.js";
import { JobEventHub } from "./events/JobEventHub.js";
import { parseApiEnv } from "./env.js";
import { hardeningFromEnv } from "./http/hardening.js";
import { createLogger } from "./http/logger.js";
import { createApiServer, listen, serverOptionsFromEnv } from "./http/server.js";
import { expireExports, settleOrphans, sweepExpiredJobs } from "./maintenance/jobSweeper.js";
import { Maintenance } from "./maintenance/Maintenance.js";
import { relayQueuedJobs } from "./maintenance/outboxRelay.js";
import { pruneJobs, removeAbandonedUploads } from "./maintenance/retention.js";
import { JobQueues } from "./services/JobQueues.js";

async function main(): Promise<void> {
  const env = parseApiEnv(process.env);
  const log = createLogger(env.LOG_LEVEL);
  // Read the TLS files first: a wrong path fails the start before anything else happens.
  const serverOptions = await serverOptionsFromEnv(env);
  await mkdir(env.IAAS_IMAGE_STORE, { recursive: true });
  const db = createPrismaClient(env.DATABASE_URL);
  // Fail fast while Redis is away: no offline queue (a command fails at once instead of waiting
  // for a reconnect), bounded connect and command times. Requests that need the queue answer 503
  // QUEUE_UNAVAILABLE; jobs committed meanwhile are relayed when it is back.
  const redis = new Redis(env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 3000 });
  redis.on("error", (err) => log.debug({ err: err.message }, "redis connection error"));
  // BullMQ's consumer side (backup schedule fires) blocks on Redis and wants its own settings.
  const blocking = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null });
  blocking.on("error", (err) => log.debug({ err: err.message }, "redis connection error"));
  // Give Redis a moment to connect, so the rate limiter loads its script; the API also starts
  // without it (requests that need the queue answer 503 until it is there).
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ redis: env.REDIS_URL.replace(/\/\/[^@]*@/, "//***@") }, "Redis is not reachable yet; starting anyway");
      resolve();
    }, 5000);
    redis.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const queues = new JobQueues(redis, env.IAAS_QUEUE_PREFIX);
  // One LISTEN connection for this process: job events reach streams and waits as they commit.
  const jobEvents = new JobEventHub(db, { safetyPollMs: env.IAAS_EVENT_SAFETY_POLL_MS, log: log.child({ component: "job-events" }) });
  await jobEvents.listen(env.DATABASE_URL);
  const { app, backupScheduler } = createApp({
    db,
    redis,
    blockingRedis: blocking,
    queues,
    log,
    jobEvents,
    hardening: hardeningFromEnv(env),
    config: {
      imageStore: env.IAAS_IMAGE_STORE,
      queuePrefix: env.IAAS_QUEUE_PREFIX,
      offlineAfterSeconds: env.IAAS_HOST_OFFLINE_SECONDS,
      auth: env.IAAS_AUTH,
      maxUploadBytes: env.IAAS_MAX_UPLOAD_BYTES,
      exportTtlSeconds: env.IAAS_EXPORT_TTL_SECONDS,
      enableBenchJobs: env.IAAS_ENABLE_BENCH_JOBS,
      metricsToken: env.IAAS_METRICS_TOKEN,
    },
  });

  // Relay, sweeper, reconcile, expiry, pruning: one replica at a time (a Postgres advisory lock per pass).
  const maintenance = new Maintenance(
    db,
    [
      { name: "relay", run: () => relayQueuedJobs(db, queues, log) },
      { name: "sweep", run: () => sweepExpiredJobs(db, log, env.IAAS_IMAGE_STORE) },
      { name: "settle", run: () => settleOrphans(db, log, env.IAAS_IMAGE_STORE) },
      { name: "schedules", run: () => (queues.available() ? backupScheduler.reconcile() : Promise.resolve("skipped: redis unreachable")) },
      { name: "uploads", run: () => removeAbandonedUploads(db, env.IAAS_IMAGE_STORE, { ttlHours: env.IAAS_UPLOAD_TTL_HOURS }) },
      { name: "retention", run: () => pruneJobs(db, { retentionDays: env.IAAS_JOB_RETENTION_DAYS }) },
      {
        name: "exports",
        run: async () => {
          const expired = await expireExports(db, env.IAAS_IMAGE_STORE);
          if (expired > 0) log.info({ expired }, "deleted expired exports");
          return expired;
        },
      },
    ],
    log.child({ component: "maintenance" }),
  );
  await maintenance.pass();
  backupScheduler.start();
  const timer = setInterval(() => void maintenance.pass(), env.IAAS_RELAY_INTERVAL_MS);

  // Node answers 431 to a head over IAAS_MAX_HEADER_BYTES itself; see http/server.ts for the timeouts.
  const server = createApiServer(app, serverOptions);
  const port = await listen(server, env.IAAS_API_PORT, env.IAAS_API_HOST);
  const scheme = serverOptions.tls ? "https" : "http";
  log.info({ host: env.IAAS_API_HOST, port, tls: scheme === "https" }, `IaaS API listening on ${scheme}://${env.IAAS_API_HOST}:${port}`);

  const shutdown = async (signal: string) => {
    log.info({ signal, graceSeconds: env.IAAS_SHUTDOWN_GRACE_SECONDS }, "shutting down: no new connections; in-flight requests get the grace period");
    clearInterval(timer);
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    const grace = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), env.IAAS_SHUTDOWN_GRACE_SECONDS * 1000).unref());
    if ((await Promise.race([closed.then(() => "done" as const), grace])) === "timeout") {
      // Event streams and long-polls are still open: clients resume them (Last-Event-ID) elsewhere.
      log.info("closing the connections still open after the grace period");
      server.closeAllConnections();
      await closed;
    }
    await backupScheduler.close();
    await jobEvents.close();
    await queues.close();
    redis.disconnect();
    blocking.disconnect();
    await db.$disconnect();
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`iaas-api: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
