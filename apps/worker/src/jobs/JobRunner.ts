import { DelayedError, type Job as BullJob } from "bullmq";
import type { Logger } from "pino";
import { IaasError, JobPayloads, JobType, type JobProgress } from "@iaas/contracts";
import { jobTypeOf, appendJobEvent, finishJob, isDatabaseUnavailable, recordJobProgress, renewJobLeases, startJobRun, type Job, type JobOutcome } from "@iaas/db";
import type { DatabaseGate } from "./DatabaseGate.js";
import type { HandlerContext, HandlerRegistry, JobHandler, WorkerServices } from "./HandlerContext.js";
import type { JobMetrics } from "../metrics/WorkerMetrics.js";
import { jobLogBindings, runWithJobLog } from "./jobLog.js";
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
export interface JobRunnerOptions {
  /** This worker process (a random id per start): the job lease names it. */
  instanceId: string;
  /** How long a job's lease lasts without renewal; renewed every third of it. */
  leaseMs: number;
  /** Pauses taking jobs while Postgres is unreachable. */
  gate: DatabaseGate;
  /** Told of job starts and outcomes (the worker's Prometheus metrics). */
  metrics?: JobMetrics;
}

/** Redeliveries of a job whose worker died this many times more than its attempts make it fail. */
const CRASH_ALLOWANCE = 3;

export class JobRunner {
  /** Jobs this worker is running, to abort them on a cancel request. */
  private readonly running = new Map<string, AbortController>();
  /** The run of each job in progress here, so a second delivery of it waits instead of running it twice. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private leaseTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: WorkerServices,
    private readonly handlers: HandlerRegistry,
    private readonly log: Logger,
    private readonly options: JobRunnerOptions,
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

  /** Renews the leases of the jobs running here every third of the lease, until `stopLeases`. */
  startLeases(): void {
    const renew = () => {
      renewJobLeases(this.services.db, this.options.instanceId, [...this.inFlight.keys()], this.options.leaseMs).catch((err: unknown) =>
        this.log.warn({ err }, "could not renew job leases; the relay redelivers a job whose lease ran out"),
      );
    };
    this.leaseTimer = setInterval(renew, Math.max(200, Math.floor(this.options.leaseMs / 3)));
  }

  stopLeases(): void {
    clearInterval(this.leaseTimer);
  }

  /** Waits until no job runs here (graceful shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  /**
   * BullMQ's processor. A second delivery of a job that runs here already (BullMQ took it for
   * stalled while this process was paused, or the relay re-added it after Redis lost it) waits for
   * that run and then finds the job final. While Postgres is unreachable the delivery is put back,
   * delayed, without spending an attempt, and the worker pauses until the database answers.
   */
  async process(delivery: BullJob<QueueJobData>, token?: string): Promise<void> {
    const jobId = delivery.data.jobId;
    const current = this.inFlight.get(jobId);
    if (current) {
      this.log.warn({ jobId }, "a second delivery of a job that runs here; waiting for the first run");
      await current.catch(() => undefined);
      return;
    }
    const run = this.run(delivery);
    this.inFlight.set(jobId, run);
    try {
      await run;
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      this.options.gate.down(err);
      if (!token) throw err;
      await delivery.moveToDelayed(Date.now() + this.options.gate.retryDelayMs(), token);
      throw new DelayedError(`Postgres is unreachable; job ${jobId} is put back until it answers`);
    } finally {
      this.inFlight.delete(jobId);
    }
  }

  private async run(delivery: BullJob<QueueJobData>): Promise<void> {
    const { db, hostId } = this.services;
    const jobId = delivery.data.jobId;
    // One statement marks the job running and returns its row; reading it first would cost a round trip.
    const started = await startJobRun(db, jobId, { hostId, instanceId: this.options.instanceId, leaseMs: this.options.leaseMs });
    if (!started) {
      const row = await db.job.findUnique({ where: { id: jobId }, select: { id: true, type: true, state: true, vmId: true, imageId: true } });
      if (row) this.log.child(jobLogBindings(row)).info({ state: row.state }, "job is no longer to be run (final or cancelled); skipped");
      else this.log.warn({ jobId }, "delivery for a job that Postgres does not know; dropped");
      return;
    }
    // Every line of the job's handling names it: its child logger here, and (runWithJobLog) the
    // lines of the shared services it calls; hostId is in the worker logger's base.
    const bindings = jobLogBindings(started.job);
    const log = this.log.child(bindings);
    return runWithJobLog(bindings, () => this.runJob(log, hostId, started));
  }

  private async runJob(log: Logger, hostId: string, { job, resumed }: { job: Job; resumed: boolean }): Promise<void> {
    const { db } = this.services;
    const jobId = job.id;
    if (job.attempts === 1 && !resumed && job.startedAt) this.options.metrics?.started(jobTypeOf(job), (job.startedAt.getTime() - job.createdAt.getTime()) / 1000);
    // Attempts are counted in Postgres: BullMQ's count restarts when the relay re-adds a job.
    const attempt = job.attempts;
    const poisoned = resumed && attempt > job.maxAttempts + CRASH_ALLOWANCE;
    const type = JobType.safeParse(jobTypeOf(job));
    const handler = type.success ? (this.handlers[type.data] as JobHandler<JobType> | undefined) : undefined;
    if (!type.success || !handler) {
      await this.finish(job, { state: "failed", error: { code: "INTERNAL", message: `host ${hostId} has no handler for job type '${jobTypeOf(job)}'`, hint: "upgrade the worker" } });
      return;
    }
    const payload = JobPayloads[type.data].safeParse(job.payload);
    if (!payload.success) {
      await this.finish(job, { state: "failed", error: { code: "VALIDATION_FAILED", message: `job payload is invalid: ${payload.error.message}`, hint: null } });
      return;
    }

    const controller = new AbortController();
    this.running.set(jobId, controller);
    if (job.cancelRequestedAt) this.cancel(jobId);
    const timeoutMs = Math.max(1, job.timeoutMs - (Date.now() - (job.startedAt ?? new Date()).getTime()));
    const timer = setTimeout(() => {
      controller.abort(
        new IaasError("JOB_TIMEOUT", `${jobTypeOf(job)} did not finish within its timeout of ${Math.round(job.timeoutMs / 1000)}s`, {
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
      // Progress and notes are a report, not the work: while Postgres is briefly unreachable they
      // are logged here and the job goes on (its outcome is written with retries).
      progress: (p: JobProgress) => this.report(log, () => recordJobProgress(db, jobId, p)),
      note: (message, level = "info") => this.report(log, () => appendJobEvent(db, jobId, { type: "log", level, message }).then(() => undefined)),
    };
    try {
      if (poisoned) {
        // Runs that kept dying (the worker crashed or lost its queue each time): settle, not again.
        throw new IaasError("WORKER_LOST", `${jobTypeOf(job)} was interrupted ${attempt - 1} times (its worker died or lost its queue while running it)`, {
          hint: `look at the worker log of host ${hostId} around the job's start; then retry the request`,
        });
      }
      const result = await handler.run(ctx);
      await this.finish(job, { state: "succeeded", result: result as Record<string, unknown>, message: handler.describe?.(result) ?? "job succeeded" });
      log.info("job succeeded");
    } catch (thrown) {
      // Postgres went away under the handler: the run is put back and resumes (handlers check the
      // domain first), rather than recorded as a failure it was not.
      if (isDatabaseUnavailable(thrown) && !controller.signal.aborted) throw thrown;
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
      await this.finish(job, { state: cancelled ? "cancelled" : "failed", error: error.toJobError() });
    } finally {
      clearTimeout(timer);
      this.running.delete(jobId);
    }
  }

  /**
   * Records the outcome. The work is done, so a Postgres outage must not lose it: the write is
   * retried with backoff while the database is unreachable (the job's lease lapses meanwhile; a
   * redelivery finds the outcome recorded or does the idempotent work again).
   */
  private async finish(job: Pick<Job, "id" | "type" | "startedAt">, outcome: JobOutcome): Promise<void> {
    const jobId = job.id;
    for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
      try {
        if (await finishJob(this.services.db, jobId, outcome)) {
          this.options.metrics?.finished(jobTypeOf(job), outcome.state, job.startedAt ? (Date.now() - job.startedAt.getTime()) / 1000 : null);
        }
        return;
      } catch (err) {
        if (!isDatabaseUnavailable(err) || this.options.gate.stopping) throw err;
        this.options.gate.down(err);
        this.log.warn({ jobId, state: outcome.state }, `Postgres is unreachable; recording the job's outcome again in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async report(log: Logger, write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      log.warn({ err }, "progress not recorded: Postgres is unreachable");
    }
  }
}
