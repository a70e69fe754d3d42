// The system under test: a throw-away database, API and one worker as child processes, unique
// BullMQ prefixes, temp dirs — and a cleanup that undoes all of it, once, in reverse order.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { createPrismaClient } from "@iaas/db";
import { createTestDatabase } from "@iaas/db/testing";
import { createClient, waitFor } from "./http.mjs";
import { freePort, startChild } from "./proc.mjs";

async function deleteKeys(redis, prefix) {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
}

/**
 * Starts everything; `stack.cleanup()` must be called in every case (safe more than once). On a
 * signal call `stack.interrupt()` instead, which also covers a start() still in progress.
 */
export function createStack({ root, redisUrl, hostId, clients, workerEnv = () => ({}) }) {
  const token = randomBytes(4).toString("hex");
  const stack = { prefix: `bench-${token}`, rawPrefix: `bench-${token}-raw`, hostId };
  const cleanups = [];
  let cleaning;
  /** Registers an extra cleanup step; steps run in reverse order of registration. */
  stack.defer = (what, fn) => (cleaning ? cleaning.then(fn) : cleanups.push([what, fn]));
  stack.cleanup = () =>
    (cleaning ??= (async () => {
      const done = [];
      for (const [what, fn] of cleanups.reverse()) {
        try {
          await fn();
          done.push(what);
        } catch (err) {
          process.stderr.write(`bench: cleanup '${what}' failed: ${err.message}\n`);
        }
      }
      if (done.length) process.stderr.write(`bench: cleaned up: ${done.join(", ")}\n`);
    })());

  let interrupted = false;
  const checkpoint = () => {
    if (interrupted) throw new Error("interrupted");
  };
  let starting;
  const children = [];
  let rejectInterrupt;
  const interruptedP = new Promise((_, reject) => (rejectInterrupt = reject));
  interruptedP.catch(() => undefined);
  /** For signals: lets an in-flight start() register what it already made (≤ 10 s), then cleans up. */
  stack.interrupt = async () => {
    interrupted = true;
    for (const c of children) c.expectExit();
    rejectInterrupt(new Error("interrupted"));
    await Promise.race([starting?.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
    await stack.cleanup();
  };

  stack.start = () => (starting ??= start());
  const start = async () => {
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: (n) => (n > 5 ? null : 200) });
    let redisError;
    redis.on("error", (err) => (redisError = err)); // surfaced by the commands that fail
    await redis.connect().catch((err) => {
      throw new Error(`cannot reach Redis at ${redisUrl}: ${(redisError ?? err).message}`);
    });
    cleanups.push(["disconnect redis", () => redis.quit()]);
    // Runs after the children are stopped (cleanups run in reverse).
    cleanups.push([`delete keys ${stack.prefix}:* and ${stack.rawPrefix}:*`, async () => {
      await deleteKeys(redis, stack.prefix);
      await deleteKeys(redis, stack.rawPrefix);
    }]);
    checkpoint();

    const tmp = await mkdtemp("/tmp/bj-");
    cleanups.push([`remove ${tmp}`, () => rm(tmp, { recursive: true, force: true })]);
    stack.tmp = tmp;
    stack.imageStore = path.join(tmp, "img");
    checkpoint();
    const database = await createTestDatabase().catch((err) => {
      throw new Error(`cannot create a throw-away database on ${process.env.DATABASE_URL}: ${err.message}`);
    });
    cleanups.push([`drop database ${new URL(database.url).pathname.slice(1)}`, () => database.drop()]);
    stack.databaseUrl = database.url;
    stack.db = createPrismaClient(database.url);
    cleanups.push(["disconnect prisma", () => stack.db.$disconnect()]);
    checkpoint();

    const port = await freePort();
    const common = { DATABASE_URL: database.url, REDIS_URL: redisUrl, IAAS_QUEUE_PREFIX: stack.prefix, IAAS_IMAGE_STORE: path.join(tmp, "img"), LOG_LEVEL: "warn" };
    const api = startChild("api", path.join(root, "apps/api/dist/main.js"), { ...common, IAAS_API_PORT: String(port), IAAS_ENABLE_BENCH_JOBS: "true", IAAS_AUTH: "none" });
    cleanups.push(["stop api", () => api.stop()]);
    const worker = startChild("worker", path.join(root, "apps/worker/dist/main.js"), {
      ...common, IAAS_HOST_ID: hostId, IAAS_ACCEL: "tcg", IAAS_CONCURRENCY: "50", IAAS_DATA_DIR: path.join(tmp, "data"), IAAS_SHUTDOWN_GRACE_SECONDS: "2", IAAS_METRICS_PORT: "0",
      ...workerEnv(tmp),
    });
    cleanups.push(["stop worker", () => worker.stop()]);
    children.push(api, worker);
    checkpoint();
    /** Rejects as soon as the API or the worker dies; race every phase against it. */
    stack.crashed = Promise.race([api.crashed, worker.crashed]);

    stack.baseUrl = `http://127.0.0.1:${port}`;
    stack.api = createClient(stack.baseUrl, clients);
    cleanups.push(["close http agent", () => stack.api.close()]);
    const ready = async () => {
      await waitFor("the API's /readyz", async () => (await stack.api.get("/readyz")).status === 200);
      await waitFor(`host ${hostId} online in GET /v1/hosts`, async () =>
        (await stack.api.get("/v1/hosts")).json?.items?.some((h) => h.id === hostId && h.state === "online"));
    };
    await Promise.race([ready(), stack.crashed, interruptedP]);
    return stack;
  };
  return stack;
}
