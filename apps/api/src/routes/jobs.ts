import { rm } from "node:fs/promises";
import { guardedRouter } from "../auth/permissions.js";
import { inProject } from "../auth/scope.js";
import path from "node:path";
import type { Router } from "express";
import type { Redis } from "ioredis";
import { cancelChannel, IaasError, isTerminalJobState, JobCatalog, JobListQuery, JobPayloads, looksLikeUuid, type JobList } from "@iaas/contracts";
import { jobTypeOf, toDbJobType, appendJobEvent, finishJobIn, type Job, type PrismaClient, type Prisma } from "@iaas/db";
import type { JobEventHub, JobSubscription } from "../events/JobEventHub.js";
import { streamJobEvents, waitForFinalJob } from "../events/jobEventStream.js";
import { validate } from "../http/validate.js";
import { acquireStream } from "../http/streamLimits.js";
import { watchClient } from "../http/clientWatch.js";
import { toJobDto } from "../services/dto.js";
import type { JobQueues } from "../services/JobQueues.js";
import { findImage, findJob, findVm, jobNotFound } from "../services/resolve.js";
import { NEWEST_FIRST, pageArgs, pageOf, pageResult } from "../http/paginate.js";

const MAX_WAIT_SECONDS = 60;

export function jobRoutes(deps: { db: PrismaClient; queues: JobQueues; store: string; redis: Redis; queuePrefix: string; jobEvents: JobEventHub }): Router {
  const { db } = deps;
  const router = guardedRouter("/v1/jobs");

  router.get("/", async (req, res) => {
    const q = validate(JobListQuery, req.query, "job list query");
    const where: Prisma.JobWhereInput = {};
    if (q.vm) where.vmId = looksLikeUuid(q.vm) ? q.vm.toLowerCase() : (await findVm(db, q.vm)).id;
    if (q.image) where.imageId = looksLikeUuid(q.image) ? q.image.toLowerCase() : (await findImage(db, q.image)).id;
    if (q.state) where.state = q.state;
    if (q.type) where.type = toDbJobType(q.type);
    if (q.host) where.hostId = q.host;
    Object.assign(where, inProject());
    const page = pageOf(q.limit, q.cursor, NEWEST_FIRST);
    const { items, nextCursor } = pageResult(await db.job.findMany(pageArgs(where, NEWEST_FIRST, page)), NEWEST_FIRST, page);
    res.json({ items: items.map(toJobDto), nextCursor } satisfies JobList);
  });

  router.get("/:id", async (req, res) => {
    res.json(toJobDto(await findJob(db, req.params.id)));
  });

  router.get("/:id/wait", async (req, res) => {
    // Not counted as a stream (it ends within MAX_WAIT_SECONDS, and it is what the CLI falls back
    // to when a stream is refused); it wakes when the job's terminal event is committed.
    const watch = watchClient(req, res);
    const raw = Number(req.query["timeout"] ?? 30);
    if (!Number.isFinite(raw) || raw < 0) {
      throw new IaasError("VALIDATION_FAILED", `timeout must be a number of seconds, got '${String(req.query["timeout"])}'`, { hint: "use ?timeout=30" });
    }
    const deadline = Date.now() + Math.min(raw, MAX_WAIT_SECONDS) * 1000;
    const sub = subscribe(deps.jobEvents, req.params.id);
    try {
      const job = await findJob(db, req.params.id);
      const final = await waitForFinalJob(db, sub, job, deadline, watch);
      if (final !== null) res.json(toJobDto(final));
    } finally {
      sub.close();
    }
  });

  router.get("/:id/events", async (req, res) => {
    const watch = watchClient(req, res);
    const sub = subscribe(deps.jobEvents, req.params.id);
    try {
      const job = await findJob(db, req.params.id);
      if (watch.gone) return;
      acquireStream(req, res); // 429/503 over IAAS_MAX_STREAMS_PER_TOKEN/IAAS_MAX_STREAMS; released when the response closes
      const resumeFrom = Number(req.header("last-event-id") ?? req.query["after"] ?? 0);
      await streamJobEvents(db, deps.jobEvents, sub, job, Number.isFinite(resumeFrom) ? resumeFrom : 0, watch, res);
    } finally {
      sub.close();
    }
  });

  router.post("/:id/cancel", async (req, res) => {
    const job = await findJob(db, req.params.id);
    if (job.state === "running" && JobCatalog[jobTypeOf(job)].cancellableWhileRunning) {
      await db.$transaction(async (tx) => {
        await tx.job.update({ where: { id: job.id }, data: { cancelRequestedAt: new Date() } });
        await appendJobEvent(tx, job.id, { type: "log", level: "warn", message: "cancel requested; the worker is stopping the job" });
      });
      // The worker also polls the flag: a publish Redis misses only delays the abort.
      await deps.redis.publish(cancelChannel(deps.queuePrefix), job.id).catch(() => 0);
      res.status(202).json(toJobDto(await db.job.findUniqueOrThrow({ where: { id: job.id } })));
      return;
    }
    const cancelled = await cancelJob(db, job, deps.store);
    // A cancelled job is skipped by the worker anyway; its queue entry is only tidied here.
    await deps.queues.remove(cancelled).catch(() => undefined);
    res.json(toJobDto(cancelled));
  });

  return router;
}

/**
 * Watches a job's events from before it is read (an id that is no UUID is unknown: 404, as
 * findJob says).
 */
function subscribe(hub: JobEventHub, ref: string): JobSubscription {
  if (!looksLikeUuid(ref)) throw jobNotFound(ref);
  return hub.subscribe(ref.toLowerCase());
}

/** Cancels a job that has not started, undoing what its submission reserved. */
export async function cancelJob(db: PrismaClient, job: Job, store: string): Promise<Job> {
  const type = jobTypeOf(job);
  if (!JobCatalog[type].cancellable) {
    throw new IaasError("JOB_NOT_CANCELLABLE", `job ${job.id} (${type}) cannot be cancelled`, { hint: "it is a record, not work to do" });
  }
  let stagingFile: string | null = null;
  const done = await db.$transaction(async (tx) => {
    const finished = await finishJobIn(
      tx,
      job.id,
      { state: "cancelled", error: { code: "JOB_CANCELLED", message: "cancelled by request before it started", hint: null } },
      ["queued"],
    );
    if (!finished) return false;
    if (type === "vm.create" && job.vmId) {
      await tx.vm.deleteMany({ where: { id: job.vmId, state: "creating" } });
    }
    if (type === "image.export" || type === "vm.export") {
      await tx.export.updateMany({ where: { jobId: job.id }, data: { state: "failed" } });
    }
    if (type === "image.import" && job.imageId) {
      const payload = JobPayloads["image.import"].safeParse(job.payload);
      if (payload.success && payload.data.source.type === "upload") stagingFile = payload.data.source.stagingFile;
      await tx.image.update({
        where: { id: job.imageId },
        data: { state: "failed", errorCode: "JOB_CANCELLED", errorMessage: "import cancelled before it started", errorHint: "import it again with `iaas image import`" },
      });
    }
    return true;
  });
  if (!done) {
    const now = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    throw new IaasError("JOB_NOT_CANCELLABLE", `job ${job.id} is ${now.state}; only jobs that have not started can be cancelled`, {
      hint: isTerminalJobState(now.state) ? "it is already final" : `wait for it with \`iaas job wait ${job.id}\``,
    });
  }
  if (stagingFile) await rm(path.join(store, stagingFile), { force: true });
  return db.job.findUniqueOrThrow({ where: { id: job.id } });
}
