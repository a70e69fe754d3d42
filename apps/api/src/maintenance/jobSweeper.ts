import type { Logger } from "pino";
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { IaasError, TRANSITIONAL_VM_STATES, type JobError, type JobType } from "@iaas/contracts";
import { jobTypeOf, finishJobIn, transitionVm, type Job, type Prisma, type PrismaClient } from "@iaas/db";

/** Extra time past a job's own timeout before the sweeper steps in (the worker enforces the timeout itself). */
export const SWEEP_GRACE_MS = 60_000;

interface SweptJob {
  id: string;
  type: Job["type"] | JobType;
  hostId: string | null;
  vmId: string | null;
  imageId: string | null;
  timeoutMs: number;
}

/**
 * Fails running jobs that are past their timeout plus a grace period — their worker died or lost
 * its host — and settles what they held: a VM out of its transitional state (to `error`), an
 * image import (`failed`, partial files removed), an image delete (back to `ready` when its file
 * is still there), an export (`failed`, partial file removed), a backup being made (row and file
 * removed) or deleted (back to `ready`). Ages come from the database clock. Returns the ids it failed.
 */
export async function sweepExpiredJobs(db: PrismaClient, log: Logger, store: string): Promise<string[]> {
  const expired = await db.$queryRaw<SweptJob[]>`
    SELECT "id", "type"::text AS "type", "hostId", "vmId", "imageId", "timeoutMs" FROM "Job"
    WHERE "state" = 'running'
      AND "startedAt" + make_interval(secs => ("timeoutMs" + ${SWEEP_GRACE_MS}) / 1000.0) < now()`;
  const failed: string[] = [];
  for (const job of expired) {
    const error: JobError = {
      code: "JOB_TIMEOUT",
      message: `${jobTypeOf(job)} ran past its timeout of ${Math.round(job.timeoutMs / 1000)}s and its worker on host ${job.hostId} did not finish it`,
      hint: `check the worker of host ${job.hostId} (\`iaas host list\`); then look at the VM with \`iaas vm show\``,
    };
    const files = await db.$transaction(async (tx) => {
      if (!(await finishJobIn(tx, job.id, { state: "failed", error }))) return null;
      return settleDomain(tx, store, job, error);
    });
    if (files === null) continue;
    await removeFiles(store, files);
    failed.push(job.id);
    log.warn({ jobId: job.id, hostId: job.hostId, type: jobTypeOf(job) }, "sweeper failed a job past its timeout");
  }
  return failed;
}

/**
 * Settles rows a finished job left mid-way: its worker recorded the outcome but could not settle
 * (the database went away in between), or the job was cancelled before it ran. Imports whose job
 * ended and that are still `importing`, exports still `pending`, backups still `creating`.
 * Returns how many rows it settled.
 */
export async function settleOrphans(db: PrismaClient, log: Logger, store: string): Promise<number> {
  const imports = await db.$queryRaw<{ id: string; jobId: string; type: string; state: string }[]>`
    SELECT i."id", j."id" AS "jobId", j."type"::text AS "type", j."state"::text AS "state" FROM "Image" i
    JOIN LATERAL (SELECT "id", "type", "state" FROM "Job" WHERE "imageId" = i."id" ORDER BY "createdAt" DESC LIMIT 1) j ON true
    WHERE i."state" IN ('importing', 'deleting') AND i."lockJobId" IS NULL
      AND j."state" IN ('succeeded', 'failed', 'cancelled')
      AND j."type" IN ('image.import', 'image.delete')`;
  const exports = await db.$queryRaw<{ id: string; jobId: string; type: string }[]>`
    SELECT e."id", j."id" AS "jobId", j."type"::text AS "type" FROM "Export" e JOIN "Job" j ON j."id" = e."jobId"
    WHERE e."state" = 'pending' AND j."state" IN ('succeeded', 'failed', 'cancelled')`;
  const backups = await db.$queryRaw<{ id: string; jobId: string; type: string }[]>`
    SELECT b."id", j."id" AS "jobId", j."type"::text AS "type" FROM "Backup" b JOIN "Job" j ON j."id" = b."jobId"
    WHERE b."state" = 'creating' AND j."state" IN ('succeeded', 'failed', 'cancelled')`;
  let settled = await db.$transaction((tx) => settleUnheldBackups(tx, store));
  const error = (jobId: string): JobError => ({ code: "INTERNAL", message: `job ${jobId} ended without settling this`, hint: "run the request again" });
  for (const row of [...imports, ...exports, ...backups]) {
    const job = await db.job.findUnique({ where: { id: row.jobId }, select: { id: true, type: true, hostId: true, vmId: true, imageId: true, timeoutMs: true, errorCode: true, errorMessage: true, errorHint: true } });
    if (!job) continue;
    const why: JobError = job.errorCode ? { code: job.errorCode as JobError["code"], message: job.errorMessage ?? "", hint: job.errorHint } : error(job.id);
    const files = await db.$transaction((tx) => settleDomain(tx, store, job, why, { vm: false }));
    await removeFiles(store, files);
    settled++;
    log.warn({ jobId: job.id, type: jobTypeOf(job) }, "settled what a finished job left mid-way");
  }
  return settled;
}

/** Puts the rows a failed job held back in line; returns store-relative files to remove afterwards. */
async function settleDomain(tx: Prisma.TransactionClient, store: string, job: SweptJob, error: JobError, opts: { vm: boolean } = { vm: true }): Promise<string[]> {
  const files: string[] = [];
  const errorFields = { errorCode: error.code, errorMessage: error.message, errorHint: error.hint };
  if (opts.vm && job.vmId) {
    // The lock was released with the job: only a VM no job holds, and only out of a transitional state.
    await transitionVm(tx, job.vmId, { to: "error", lock: null, from: TRANSITIONAL_VM_STATES, error: { ...error, hint: "stop or delete the VM to recover it" } }).catch((err: unknown) => {
      if (!(err instanceof IaasError)) throw err;
    });
  }
  if (job.imageId && (jobTypeOf(job) === "image.import" || jobTypeOf(job) === "image.delete")) {
    const image = await tx.image.findUnique({ where: { id: job.imageId } });
    if (image?.state === "importing") {
      await tx.image.update({ where: { id: image.id }, data: { state: "failed", path: null, ...errorFields } });
      files.push(`images/${image.id}.qcow2`, `images/${image.id}.qcow2.part`, ...["upload", "download", "decompressed"].map((ext) => `staging/${image.id}.${ext}`));
    } else if (image?.state === "deleting") {
      const present = image.path ? await exists(path.join(store, image.path)) : false;
      if (present) await tx.image.update({ where: { id: image.id }, data: { state: "ready", ...errorFields } });
      else await tx.image.delete({ where: { id: image.id } });
    }
  }
  const exp = await tx.export.findUnique({ where: { jobId: job.id } });
  if (exp && exp.state === "pending") {
    await tx.export.update({ where: { id: exp.id }, data: { state: "failed", path: null } });
    files.push(...(await exportFiles(store, exp.id)));
  }
  for (const backup of await tx.backup.findMany({ where: { jobId: job.id, state: "creating" } })) {
    await tx.vm.updateMany({ where: { backupBaseId: backup.id }, data: { backupBaseId: null } });
    await tx.backup.delete({ where: { id: backup.id } });
    if (backup.path) files.push(backup.path, `${backup.path}.part`);
  }
  await settleUnheldBackups(tx, store);
  return files;
}

/** A backup is only `deleting` while a job holds it: one released that way was left mid-way. */
async function settleUnheldBackups(tx: Prisma.TransactionClient, store: string): Promise<number> {
  const left = await tx.backup.findMany({ where: { state: "deleting", lockJobId: null } });
  for (const backup of left) {
    if (backup.path && (await exists(path.join(store, backup.path)))) await tx.backup.update({ where: { id: backup.id }, data: { state: "ready" } });
    else await tx.backup.delete({ where: { id: backup.id } });
  }
  return left.length;
}

/** An export's file and partial file, whatever the format's extension (`exports/<id>.<ext>[.part]`). */
async function exportFiles(store: string, exportId: string): Promise<string[]> {
  const names = await readdir(path.join(store, "exports")).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(`${exportId}.`)).map((n) => `exports/${n}`);
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

async function removeFiles(store: string, files: string[]): Promise<void> {
  for (const f of files) await rm(path.join(store, f), { force: true });
}

/** Deletes the files of exports past their expiry (database clock) and marks them expired; returns how many. */
export async function expireExports(db: PrismaClient, store: string): Promise<number> {
  const due = await db.$queryRaw<{ id: string; path: string | null }[]>`SELECT "id", "path" FROM "Export" WHERE "state" = 'ready' AND "expiresAt" < now()`;
  for (const e of due) {
    if (e.path) await rm(path.join(store, e.path), { force: true });
    await db.export.update({ where: { id: e.id }, data: { state: "expired", path: null } });
  }
  return due.length;
}
