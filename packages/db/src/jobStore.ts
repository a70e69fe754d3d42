import type { JobError, JobEventType, JobPayload, JobProgress, JobState, JobType } from "@iaas/contracts";
import { JobCatalog } from "@iaas/contracts";
import { Prisma, type Job, type JobType as DbJobType, type PrismaClient } from "./generated/prisma/client.js";
import type { Db } from "./tx.js";
import { jobStatements } from "./createPrismaClient.js";
import { BACKUP_READERS } from "./hotPath/JobStatements.js";
import { jobTypeOf, toDbJobType } from "./jobType.js";


export interface NewJobEvent {
  type: JobEventType;
  message: string;
  level?: "info" | "warn" | "error";
  state?: JobState | null;
  progress?: JobProgress | null;
  error?: JobError | null;
}

/**
 * Appends an event to a job's log with the next sequence number. The sequence comes from an
 * atomic increment of the job row, so it is gap-free and monotonic even under concurrent writers.
 */
export async function appendJobEvent(db: Db, jobId: string, event: NewJobEvent): Promise<number> {
  const level = event.level ?? (event.error ? "error" : "info");
  const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
  // One statement: take the next sequence number from the job row and insert the event with it.
  const rows = await db.$queryRaw<{ seq: number }[]>`
    WITH next AS (
      UPDATE "Job" SET "eventSeq" = "eventSeq" + 1 WHERE "id" = ${jobId}::uuid RETURNING "eventSeq"
    )
    INSERT INTO "JobEvent" ("jobId", "seq", "type", "level", "message", "state", "progress", "error")
    SELECT ${jobId}::uuid, next."eventSeq", ${event.type}::"JobEventType", ${level}::"JobEventLevel", ${event.message},
           ${event.state ?? null}::"JobState", ${json(event.progress)}::jsonb, ${json(event.error)}::jsonb
    FROM next
    RETURNING "seq"`;
  const seq = rows[0]?.seq;
  if (seq === undefined) throw new Error(`cannot add an event to job ${jobId}: no such job`);
  return seq;
}

/** Records structured progress on the job row and as an event, in one statement (see JobStatements). */
export async function recordJobProgress(db: PrismaClient, jobId: string, progress: JobProgress): Promise<void> {
  await jobStatements(db).progress(jobId, progress);
}

export type JobOutcome =
  | { state: "succeeded"; result: Record<string, unknown>; message?: string }
  | { state: "failed"; error: JobError }
  | { state: "cancelled"; error: JobError };

const NON_TERMINAL: JobState[] = ["queued", "running"];

/**
 * Moves a job to a terminal state and releases what it held (VM, image and backup locks), in one
 * statement (see JobStatements). Returns false when the job was already final (a terminal state
 * is never changed).
 */
export async function finishJob(db: PrismaClient, jobId: string, outcome: JobOutcome): Promise<boolean> {
  return jobStatements(db).finish(jobId, outcome, NON_TERMINAL);
}

/** `finishJob` inside a caller's transaction, so domain rows can change atomically with the job. */
export async function finishJobIn(
  tx: Prisma.TransactionClient,
  jobId: string,
  outcome: JobOutcome,
  from: JobState[] = NON_TERMINAL,
): Promise<boolean> {
  const error = outcome.state === "succeeded" ? null : outcome.error;
  let held: { vmId: string | null; imageId: string | null; type: DbJobType };
  try {
    held = await tx.job.update({
      where: { id: jobId, state: { in: from } },
      data: {
        state: outcome.state,
        finishedAt: new Date(),
        leaseExpiresAt: null,
        result: outcome.state === "succeeded" ? (outcome.result as Prisma.InputJsonValue) : Prisma.DbNull,
        ...(outcome.state === "succeeded" ? { progress: { phase: "done", percent: 100 } } : {}),
        errorCode: error?.code ?? null,
        errorMessage: error?.message ?? null,
        errorHint: error?.hint ?? null,
      },
      select: { vmId: true, imageId: true, type: true },
    });
  } catch (err) {
    if (isRecordNotFound(err)) return false;
    throw err;
  }
  // The job's own VM, and any other VM it holds (a clone holds its source too); indexed column.
  await tx.vm.updateMany({ where: { lockJobId: jobId }, data: { lockJobId: null } });
  if (held.imageId) await tx.image.updateMany({ where: { id: held.imageId, lockJobId: jobId }, data: { lockJobId: null } });
  if (BACKUP_READERS.includes(jobTypeOf(held))) await tx.backup.updateMany({ where: { lockJobId: jobId }, data: { lockJobId: null } });
  const message =
    outcome.state === "succeeded"
      ? (outcome.message ?? "job succeeded")
      : `job ${outcome.state}: ${outcome.error.message}`;
  await appendJobEvent(tx, jobId, { type: "state", state: outcome.state, message, error });
  return true;
}

/** Who runs a job: the host, the worker process, and how long its lease lasts without renewal. */
export interface JobRunLease {
  hostId: string;
  instanceId: string;
  leaseMs: number;
}

/**
 * `queued → running`, or the redelivery of a `running` job whose previous run died: counts the
 * attempt, stamps `startedAt` (first run only) and the lease with the database clock, and records
 * the event, in one statement (see JobStatements). Returns null when the job must not run (final, cancelled, or gone), else the job and
 * whether it was already running (a resumed run).
 */
export async function startJobRun(db: PrismaClient, jobId: string, lease: JobRunLease): Promise<{ job: Job; resumed: boolean } | null> {
  return jobStatements(db).start(jobId, lease);
}

/** Extends the leases of the jobs a worker process runs (database clock); returns how many it renewed. */
export async function renewJobLeases(db: Db, instanceId: string, jobIds: string[], leaseMs: number): Promise<number> {
  if (jobIds.length === 0) return 0;
  return db.$executeRaw`
    UPDATE "Job" SET "leaseExpiresAt" = now() + make_interval(secs => ${leaseMs / 1000})
    WHERE "id" = ANY(${jobIds}::uuid[]) AND "state" = 'running' AND "workerInstance" = ${instanceId}`;
}

export interface JobSpec<T extends JobType = JobType> {
  type: T;
  payload: JobPayload<T>;
  hostId: string;
  vmId?: string;
  imageId?: string;
  targetName: string;
  /** The project the job belongs to (default: `default`). */
  projectId?: string;
}

/** Who asked for a job: a token (name and id) and the request. */
export interface JobActor {
  name: string;
  tokenId: string | null;
  requestId: string | null;
}

/** Writes a job row and its first event. Timeout and attempts come from the job catalog. */
export async function createJobRow(
  tx: Prisma.TransactionClient,
  jobId: string,
  spec: JobSpec,
  request: { idempotencyKey?: string | undefined; hash?: string; actor?: JobActor },
): Promise<Job> {
  const entry = JobCatalog[spec.type];
  const job = await tx.job.create({
    data: {
      id: jobId,
      type: toDbJobType(spec.type),
      hostId: spec.hostId,
      vmId: spec.vmId ?? null,
      imageId: spec.imageId ?? null,
      targetName: spec.targetName,
      payload: spec.payload as Prisma.InputJsonValue,
      maxAttempts: entry.attempts,
      timeoutMs: entry.timeoutMs,
      idempotencyKey: request.idempotencyKey ?? null,
      requestHash: request.hash ?? null,
      ...(spec.projectId !== undefined ? { projectId: spec.projectId } : {}),
      actorName: request.actor?.name ?? null,
      actorTokenId: request.actor?.tokenId ?? null,
      requestId: request.actor?.requestId ?? null,
    },
  });
  const eventSeq = await appendJobEvent(tx, jobId, { type: "state", state: "queued", message: `${entry.title} '${spec.targetName}' queued on host ${spec.hostId}` });
  return { ...job, eventSeq };
}

/** Prisma's "record to update not found" (P2025): a conditional update matched nothing. */
export function isRecordNotFound(err: unknown): boolean {
  return err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2025";
}
