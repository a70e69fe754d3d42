import type { Job as BullJob } from "bullmq";
import type { Logger } from "pino";
import { IaasError, JobPayloads, JobType, type JobProgress } from "@iaas/contracts";
import { appendJobEvent, finishJob, isRecordNotFound, recordJobProgress, type Job } from "@iaas/db";
import type { HandlerContext, HandlerRegistry, JobHandler, WorkerServices } from "./HandlerContext.js";
import { toIaasError } from "./toIaasError.js";

export interface QueueJobData {
  jobId: string;
}

/**
 * Runs one delivery of a job: Postgres says what the job is and whether it still needs doing;
 * BullMQ only delivers. A redelivered job (at-least-once) finds its row already `running` and
 * its handler checks the domain rows first, so nothing is done twice. A job that has failed for
 * good is recorded in Postgres and returned normally, so BullMQ does not retry it again.
 */
export class JobRunner {
  /** Jobs this worker is running, to abort them on a cancel request. */
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly services: WorkerServices,
    private readonly handlers: HandlerRegistry,
    private readonly log: Logger,
  ) {}

  /** Ids of the jobs running here now. */
  runningJobIds(): string[] {
    return [...this.running.keys()];
  }

  /** Aborts a running job at the user's request; its handler cleans up and it ends `cancelled`. */
  cancel(jobId: string): boolean {
    const controller = this.running.get(jobId);
    if (!controller || controller.signal.aborted) return false;
    controller.abort(new IaasError("JOB_CANCELLED", "cancelled by request while running", { hint: "partial files were removed; run it again when you want it" }));
    return true;
  }

  async process(delivery: BullJob<QueueJobData>): Promise<void> {
    const { db, hostId } = this.services;
    const jobId = delivery.data.jobId;
    const row = await db.job.findUnique({ where: { id: jobId } });
    if (!row) {
      this.log.warn({ jobId }, "delivery for a job that Postgres does not know; dropped");
      return;
    }
    const log = this.log.child({ jobId, type: row.type, vmId: row.vmId ?? undefined, imageId: row.imageId ?? undefined });
    const attempt = delivery.attemptsMade + 1;
    const job = await this.markRunning(row, attempt);
    if (!job) {
      log.info({ state: row.state }, "job is no longer to be run (final or cancelled); skipped");
      return;
    }
    const type = JobType.safeParse(job.type);
    const handler = type.success ? (this.handlers[type.data] as JobHandler<JobType> | undefined) : undefined;
    if (!type.success || !handler) {
      await finishJob(db, jobId, { state: "failed", error: { code: "INTERNAL", message: `host ${hostId} has no handler for job type '${job.type}'`, hint: "upgrade the worker" } });
      return;
    }
    const payload = JobPayloads[type.data].safeParse(job.payload);
    if (!payload.success) {
      await finishJob(db, jobId, { state: "failed", error: { code: "VALIDATION_FAILED", message: `job payload is invalid: ${payload.error.message}`, hint: null } });
      return;
    }

    const controller = new AbortController();
    this.running.set(jobId, controller);
    if (job.cancelRequestedAt) this.cancel(jobId);
    const timeoutMs = Math.max(1, job.timeoutMs - (Date.now() - (job.startedAt ?? new Date()).getTime()));
    const timer = setTimeout(() => {
      controller.abort(
        new IaasError("JOB_TIMEOUT", `${job.type} did not finish within its timeout of ${Math.round(job.timeoutMs / 1000)}s`, {
          hint: "look at `iaas job logs` for the last phase it reached; retry, or raise the VM's stop timeout",
        }),
      );
    }, timeoutMs);
    const ctx: HandlerContext<JobType> = {
      ...this.services,
      job,
      payload: payload.data as HandlerContext<JobType>["payload"],
      attempt,
      log,
      signal: controller.signal,
      progress: (p: JobProgress) => recordJobProgress(db, jobId, p),
      note: async (message, level = "info") => {
        await appendJobEvent(db, jobId, { type: "log", level, message });
      },
    };
    try {
      const result = await handler.run(ctx);
      await finishJob(db, jobId, { state: "succeeded", result: result as Record<string, unknown>, message: handler.describe?.(result) ?? "job succeeded" });
      log.info("job succeeded");
    } catch (thrown) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : thrown;
      const error = toIaasError(reason);
      const final = !error.retryable || attempt >= job.maxAttempts || controller.signal.aborted;
      const cancelled = error.code === "JOB_CANCELLED";
      if (!final) {
        await appendJobEvent(db, jobId, { type: "log", level: "warn", message: `attempt ${attempt} of ${job.maxAttempts} failed: ${error.message}; retrying` });
        log.warn({ err: thrown }, "job attempt failed; BullMQ will retry");
        throw error;
      }
      log.warn({ err: thrown, code: error.code }, cancelled ? "job cancelled" : "job failed");
      try {
        await handler.settle?.(ctx, error.toJobError());
      } catch (settleErr) {
        log.error({ err: settleErr }, "could not settle after failure");
      }
      await finishJob(db, jobId, { state: cancelled ? "cancelled" : "failed", error: error.toJobError() });
    } finally {
      clearTimeout(timer);
      this.running.delete(jobId);
    }
  }

  /** queued → running (or a redelivery of a running job). Returns null when the job must not run. */
  private async markRunning(job: Job, attempt: number): Promise<Job | null> {
    const { db, hostId } = this.services;
    return db.$transaction(async (tx) => {
      let running: Job;
      try {
        running = await tx.job.update({
          where: { id: job.id, state: { in: ["queued", "running"] } },
          data: { state: "running", startedAt: job.startedAt ?? new Date(), attempts: attempt },
        });
      } catch (err) {
        if (isRecordNotFound(err)) return null;
        throw err;
      }
      const message = job.state === "running" && attempt <= job.attempts ? `resumed on host ${hostId} (attempt ${attempt}) after an interrupted delivery` : attempt > 1 ? `attempt ${attempt} started on host ${hostId}` : `started on host ${hostId}`;
      const eventSeq = await appendJobEvent(tx, job.id, { type: "state", state: "running", message });
      return { ...running, eventSeq };
    });
  }
}
