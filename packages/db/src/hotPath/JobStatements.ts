import { DEFAULT_PROJECT_ID, JobCatalog, type JobError, type JobProgress, type JobState } from "@iaas/contracts";
import pg from "pg";
import { isDatabaseUnavailable } from "../availability.js";
import type { Job } from "../generated/prisma/client.js";
import { jobTypeOf, toDbJobType } from "../jobType.js";
import { Batcher } from "./Batcher.js";
import { FINISH_SQL, PROGRESS_SQL, START_SQL, SUBMIT_SQL } from "./jobSql.js";
import type { JobActor, JobOutcome, JobRunLease, JobSpec } from "../jobStore.js";

/** A job to insert, and optionally the VM lock it must take in the same statement. */
export interface SubmitJob {
  id: string;
  spec: JobSpec;
  request: { idempotencyKey?: string | undefined; hash?: string; actor?: JobActor };
  /**
   * Take `spec.vmId`'s lock for the job: only while no job holds it, it is in one of `from`, and
   * its host's last heartbeat is at most `onlineWithinSeconds` old. Refused: nothing is written.
   */
  lockVm?: { from: readonly string[]; onlineWithinSeconds: number };
}

/** Job types that may hold a backup's lock (indexed column), released when they finish. */
export const BACKUP_READERS: readonly string[] = ["vm.create", "vm.backup.restore", "backup.verify", "backup.delete"];

const NON_TERMINAL: JobState[] = ["queued", "running"];

/** `timestamp without time zone` columns hold UTC: read them as such (pg reads them as local time). */
const UTC_TIMESTAMP_OID = 1114;
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === UTC_TIMESTAMP_OID && format !== "binary"
      ? (text: string) => new Date(`${text.replace(" ", "T")}Z`)
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

/**
 * The writes every job makes — submit, start, progress, finish — each as one statement on the
 * pool Prisma uses (no interactive transaction), grouped into one round trip per kind when several
 * callers wait at once (see Batcher). Each keeps what the Prisma versions in jobStore.ts promise:
 * gap-free event sequence numbers, locks taken and released with the job, terminal states final.
 */
export class JobStatements {
  private readonly submitter: Batcher<SubmitJob, Job | null>;
  private readonly starter: Batcher<{ jobId: string; lease: JobRunLease }, { job: Job; resumed: boolean } | null>;
  private readonly progressor: Batcher<{ jobId: string; progress: JobProgress }, boolean>;
  private readonly finisher: Batcher<{ jobId: string; outcome: JobOutcome; from: readonly JobState[] }, boolean>;

  constructor(private readonly pool: pg.Pool) {
    const options = { isShared: isDatabaseUnavailable };
    this.submitter = new Batcher((inputs) => this.runSubmit(inputs), options);
    this.starter = new Batcher((inputs) => inRounds(inputs, (i) => i.jobId, (round) => this.runStart(round)), options);
    this.progressor = new Batcher((inputs) => inRounds(inputs, (i) => i.jobId, (round) => this.runProgress(round)), options);
    this.finisher = new Batcher((inputs) => inRounds(inputs, (i) => i.jobId, (round) => this.runFinish(round)), options);
  }

  /** Inserts a job and its `queued` event (and takes its VM lock); null when the lock was refused. */
  submit(job: SubmitJob): Promise<Job | null> {
    return this.submitter.call(job);
  }

  /** Marks a job running (see startJobRun); null when it must not run (final, or gone). */
  start(jobId: string, lease: JobRunLease): Promise<{ job: Job; resumed: boolean } | null> {
    return this.starter.call({ jobId, lease });
  }

  /** Records progress on the row and as an event; false when the job is gone. */
  progress(jobId: string, progress: JobProgress): Promise<boolean> {
    return this.progressor.call({ jobId, progress });
  }

  /** Moves a job to a terminal state and releases its locks; false when it was not in `from`. */
  finish(jobId: string, outcome: JobOutcome, from: readonly JobState[] = NON_TERMINAL): Promise<boolean> {
    return this.finisher.call({ jobId, outcome, from });
  }

  private async query<R>(sql: string, params: unknown[]): Promise<R[]> {
    const result = await this.pool.query({ text: sql, values: params, types: TYPES });
    return result.rows as R[];
  }

  private async runSubmit(inputs: SubmitJob[]): Promise<Array<Job | null>> {
    const rows = inputs.map(({ id, spec, request, lockVm }) => {
      const entry = JobCatalog[spec.type];
      return {
        id,
        type: spec.type,
        projectId: spec.projectId ?? DEFAULT_PROJECT_ID,
        actorName: request.actor?.name ?? null,
        actorTokenId: request.actor?.tokenId ?? null,
        requestId: request.actor?.requestId ?? null,
        hostId: spec.hostId,
        vmId: spec.vmId ?? null,
        imageId: spec.imageId ?? null,
        targetName: spec.targetName,
        payload: spec.payload,
        maxAttempts: entry.attempts,
        timeoutMs: entry.timeoutMs,
        idempotencyKey: request.idempotencyKey ?? null,
        requestHash: request.hash ?? null,
        lockFrom: lockVm ? [...lockVm.from] : null,
        onlineWithin: lockVm?.onlineWithinSeconds ?? null,
        queuedAs: `${entry.title} '${spec.targetName}'`,
      };
    });
    const jobs = (await this.query<Job>(SUBMIT_SQL, [JSON.stringify(rows)])).map(asPrismaJob);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    return inputs.map((i) => byId.get(i.id) ?? null);
  }

  private async runStart(inputs: Array<{ jobId: string; lease: JobRunLease }>): Promise<Array<{ job: Job; resumed: boolean } | null>> {
    const rows = inputs.map(({ jobId, lease }) => ({ id: jobId, host: lease.hostId, instance: lease.instanceId, leaseSeconds: lease.leaseMs / 1000 }));
    const started = await this.query<Job & { startedFrom: string; startedOn: string }>(START_SQL, [JSON.stringify(rows)]);
    const byId = new Map(
      started.map(({ startedFrom, startedOn: _host, ...job }) => [job.id, { job: asPrismaJob(job as Job), resumed: startedFrom === "running" }]),
    );
    return inputs.map((i) => byId.get(i.jobId) ?? null);
  }

  private async runProgress(inputs: Array<{ jobId: string; progress: JobProgress }>): Promise<boolean[]> {
    const rows = inputs.map(({ jobId, progress }) => {
      const text = progress.message ? `${progress.phase}: ${progress.message}` : progress.phase;
      return { id: jobId, progress, message: `${text} (${progress.percent.toFixed(0)}%)` };
    });
    const done = new Set((await this.query<{ id: string }>(PROGRESS_SQL, [JSON.stringify(rows)])).map((r) => r.id));
    return inputs.map((i) => done.has(i.jobId));
  }

  private async runFinish(inputs: Array<{ jobId: string; outcome: JobOutcome; from: readonly JobState[] }>): Promise<boolean[]> {
    const rows = inputs.map(({ jobId, outcome, from }) => {
      const error: JobError | null = outcome.state === "succeeded" ? null : outcome.error;
      const message = outcome.state === "succeeded" ? (outcome.message ?? "job succeeded") : `job ${outcome.state}: ${outcome.error.message}`;
      // Absent keys are SQL NULL (a JSON null would be stored as the jsonb value `null`).
      return {
        id: jobId,
        state: outcome.state,
        from,
        ...(outcome.state === "succeeded" ? { result: outcome.result } : {}),
        ...(error ? { errorCode: error.code, errorMessage: error.message, errorHint: error.hint ?? null, error } : {}),
        message,
      };
    });
    const done = new Set((await this.query<{ id: string }>(FINISH_SQL, [JSON.stringify(rows), BACKUP_READERS])).map((r) => r.id));
    return inputs.map((i) => done.has(i.jobId));
  }
}

/**
 * Runs `inputs` as rounds in which each key appears once (in call order), so two writes to one
 * job in a batch each get their own sequence number, in order, instead of one update swallowing
 * the other.
 */
async function inRounds<I, O>(inputs: I[], key: (input: I) => string, run: (round: I[]) => Promise<O[]>): Promise<O[]> {
  const rounds: Array<Array<{ index: number; input: I }>> = [];
  const seen = new Map<string, number>();
  inputs.forEach((input, index) => {
    const k = key(input);
    const round = seen.get(k) ?? 0;
    seen.set(k, round + 1);
    (rounds[round] ??= []).push({ index, input });
  });
  const out: O[] = new Array<O>(inputs.length);
  for (const round of rounds) {
    const results = await run(round.map((r) => r.input));
    round.forEach((r, i) => (out[r.index] = results[i] as O));
  }
  return out;
}

/**
 * A job row read by raw SQL as Prisma reads it: the JobType enum's labels are the dotted names
 * (`vm.create`), which Prisma's client spells `vm_create` (see jobType.ts).
 */
function asPrismaJob(row: Job): Job {
  return { ...row, type: toDbJobType(jobTypeOf(row)) };
}
