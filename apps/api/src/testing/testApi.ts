import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import os from "node:os";
import path from "node:path";
import express from "express";
import { Redis } from "ioredis";
import { pino, type Logger } from "pino";
import { createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl } from "@iaas/db/testing";
import type { AuthMode } from "../auth/authenticate.js";
import type { BackupScheduler } from "../services/BackupScheduler.js";
import { createApp } from "../app.js";
import { JobEventHub } from "../events/JobEventHub.js";
import { DEFAULT_HARDENING, type HardeningConfig } from "../http/hardening.js";
import { streamLimiterOf, type StreamLimiter } from "../http/streamLimits.js";
import { JobQueues } from "../services/JobQueues.js";
import { TEST_HOST_NETWORK } from "./hostNetwork.js";
import { buildOpenApiDocument } from "../openapi/openApiDocument.js";
import { ResponseValidator } from "./ResponseValidator.js";

export interface TestApi {
  db: PrismaClient;
  /** The test database, for connections of its own (plain `pg`). */
  databaseUrl: string;
  redis: Redis;
  queues: JobQueues;
  /** Not started: tests call `reconcile` or fire schedules themselves. */
  backupScheduler: BackupScheduler;
  prefix: string;
  store: string;
  base: string;
  /** The hub that pushes job events to streams and waits (its `stats` count safety polls). */
  jobEvents: JobEventHub;
  /** The app's stream limiter: `streams.total()` is the number of event/console streams open. */
  streams: StreamLimiter;
  /** Checks every JSON answer against the OpenAPI document; `close()` fails on a mismatch. */
  responses: ResponseValidator;
  post(p: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Empties every table and puts back one bridge-capable host `h1`, a ready image `deb` and a `default` network. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** The API in-process on a fresh database and queue prefix, against the real Postgres and Redis. */
export async function startTestApi(
  opts: { auth?: AuthMode; hardening?: Partial<HardeningConfig>; log?: Logger; metricsToken?: string; eventSafetyPollMs?: number } = {},
): Promise<TestApi> {
  const database = await createTestDatabase();
  const db = createPrismaClient(database.url);
  const redis = new Redis(await testRedisUrl(), { maxRetriesPerRequest: null });
  const prefix = `it-${randomBytes(4).toString("hex")}`;
  const queues = new JobQueues(redis, prefix);
  const store = await mkdtemp(path.join(os.tmpdir(), "iaas-api-"));
  const jobEvents = new JobEventHub(db, { safetyPollMs: opts.eventSafetyPollMs ?? 5000 });
  await jobEvents.listen(database.url);
  const { app, backupScheduler } = createApp({
    db,
    redis,
    queues,
    jobEvents,
    log: opts.log ?? pino({ level: "silent" }),
    ...(opts.hardening ? { hardening: { ...DEFAULT_HARDENING, ...opts.hardening } } : {}),
    config: { imageStore: store, queuePrefix: prefix, offlineAfterSeconds: 30, maxUploadBytes: 1024 ** 3, exportTtlSeconds: 3600, auth: opts.auth ?? "none", metricsToken: opts.metricsToken },
  });
  // Every JSON answer of every test is held to the OpenAPI document (a mismatch becomes a 500).
  const responses = new ResponseValidator(buildOpenApiDocument());
  const checked = express();
  checked.use(responses.middleware(), app);
  const server: Server = await new Promise((resolve) => {
    const s = checked.listen(0, "127.0.0.1", () => resolve(s));
  });
  const streams = streamLimiterOf(app);
  if (!streams) throw new Error("createApp gave the app no stream limiter");
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    db,
    databaseUrl: database.url,
    redis,
    queues,
    backupScheduler,
    jobEvents,
    prefix,
    store,
    base,
    streams,
    responses,
    post: (p, body, headers = {}) =>
      fetch(`${base}${p}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body ?? {}) }),
    async reset() {
      await db.jobEvent.deleteMany();
      await db.backup.deleteMany();
      await db.export.deleteMany();
      await db.job.deleteMany();
      await db.vm.deleteMany();
      await db.network.deleteMany();
      await db.image.deleteMany();
      await db.host.deleteMany();
      await db.host.create({
        data: { id: "h1", name: "h1", cpus: 8, memoryBytes: 8n * 1024n ** 3n, diskBytes: 100n * 1024n ** 3n, accelerator: "tcg", network: TEST_HOST_NETWORK },
      });
      await db.image.create({ data: { name: "deb", state: "ready", sourceFormat: "qcow2", virtualSize: 1024n ** 3n, storedSize: 1000n, sha256: "0".repeat(64), path: "images/x.qcow2" } });
      await db.network.create({ data: { name: "default", subnet: "10.200.0.0/24", gateway: "10.200.0.1", mtu: 1450, dnsDomain: "iaas.internal" } });
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await backupScheduler.close();
      await jobEvents.close();
      await queues.close();
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await db.$disconnect();
      await database.drop();
      await rm(store, { recursive: true, force: true });
      if (responses.mismatches.length > 0) throw new Error(`answers that do not match the OpenAPI document:\n${responses.mismatches.join("\n")}`);
    },
  };
}
