import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { formatSize } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";

/** Jobs deleted per statement: a large backlog goes in short statements, not one long lock. */
const PRUNE_BATCH = 1000;

/** Cutoff `amountSeconds` before `now`, or before the database clock when `now` is not given. */
async function cutoffBefore(db: PrismaClient, amountSeconds: number, now: Date | undefined): Promise<Date> {
  const [row] = await db.$queryRaw<{ cutoff: Date }[]>`
    SELECT (COALESCE(${now ?? null}::timestamptz, now()) - make_interval(secs => ${amountSeconds})) AS "cutoff"`;
  if (!row) throw new Error("the database returned no row for a time computation");
  return row.cutoff;
}

/**
 * Job retention (`IAAS_JOB_RETENTION_DAYS`): deletes jobs that finished (succeeded, failed,
 * cancelled) more than `retentionDays` ago — by the database clock, or before `now` — with their
 * events (JobEvent cascades), oldest first, in batches of 1000 per statement. A job something still
 * names is kept: a VM's, image's or backup's lock (`lockJobId`), the job that made a backup or an
 * export that still exists (`Backup.jobId`, `Export.jobId`), a backup schedule's last run
 * (`BackupSchedule.lastJobId`). Audit rows keep the ids of jobs deleted here. Returns how many
 * jobs were deleted.
 */
export async function pruneJobs(db: PrismaClient, opts: { retentionDays: number; now?: Date; batchSize?: number }): Promise<number> {
  if (!(opts.retentionDays > 0)) throw new RangeError(`retentionDays must be a positive number of days, got ${opts.retentionDays}`);
  const batch = opts.batchSize ?? PRUNE_BATCH;
  const cutoff = await cutoffBefore(db, opts.retentionDays * 86_400, opts.now);
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      WITH doomed AS (
        SELECT j."id" FROM "Job" j
        WHERE j."state" IN ('succeeded', 'failed', 'cancelled') AND j."finishedAt" < ${cutoff}
          AND NOT EXISTS (SELECT 1 FROM "Vm" v WHERE v."lockJobId" = j."id")
          AND NOT EXISTS (SELECT 1 FROM "Image" i WHERE i."lockJobId" = j."id")
          AND NOT EXISTS (SELECT 1 FROM "Backup" b WHERE b."lockJobId" = j."id" OR b."jobId" = j."id")
          AND NOT EXISTS (SELECT 1 FROM "Export" e WHERE e."jobId" = j."id")
          AND NOT EXISTS (SELECT 1 FROM "BackupSchedule" s WHERE s."lastJobId" = j."id")
        ORDER BY j."finishedAt"
        LIMIT ${batch}
        FOR UPDATE OF j SKIP LOCKED
      )
      DELETE FROM "Job" WHERE "id" IN (SELECT "id" FROM doomed)`;
    total += deleted;
    if (deleted < batch) return total;
  }
}

export interface AbandonedUploadsReport {
  /** Images whose upload was abandoned, now `failed`; `receivedBytes` is what had arrived. */
  abandoned: { id: string; name: string; receivedBytes: number }[];
  /** Staging files removed, relative to the image store: of abandoned uploads, and orphans. */
  removedFiles: string[];
}

const STAGING = "staging";
/** Staging files are named after their image: `<image id>.upload`, `.upload.whole`, `.download`, `.decompressed`. */
const STAGED_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\./;

async function stagedFiles(imageStore: string): Promise<{ name: string; imageId: string }[]> {
  let names: string[];
  try {
    names = await readdir(path.join(imageStore, STAGING));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names.flatMap((name) => {
    const id = STAGED_NAME.exec(name)?.[1];
    return id ? [{ name, imageId: id }] : [];
  });
}

/** Last time the file was written (ms), or null when it is gone. */
async function modifiedMs(file: string): Promise<number | null> {
  try {
    return (await stat(file)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/**
 * Abandoned uploads (`IAAS_UPLOAD_TTL_HOURS`): an image created for an upload that has no import
 * job yet and received no bytes for `ttlHours` — by `uploadActivityAt` (else `createdAt`) against
 * the database clock or `now`, and by its staging file's modification time, so an upload still
 * streaming is never cut — is marked `failed` with a message saying so, and its staging files are
 * removed. Staging files of images that no longer exist, or that are no longer importing and held
 * by no job, are removed too. Returns what it did.
 */
export async function removeAbandonedUploads(db: PrismaClient, imageStore: string, opts: { ttlHours: number; now?: Date }): Promise<AbandonedUploadsReport> {
  if (!(opts.ttlHours > 0)) throw new RangeError(`ttlHours must be a positive number of hours, got ${opts.ttlHours}`);
  const report: AbandonedUploadsReport = { abandoned: [], removedFiles: [] };
  const cutoff = await cutoffBefore(db, opts.ttlHours * 3600, opts.now);
  const fileCutoffMs = (opts.now?.getTime() ?? Date.now()) - opts.ttlHours * 3_600_000;
  const files = await stagedFiles(imageStore);
  const filesOf = (imageId: string) => files.filter((f) => f.imageId === imageId).map((f) => path.join(STAGING, f.name));
  const removeFiles = async (relative: string[]) => {
    for (const file of relative) {
      await rm(path.join(imageStore, file), { force: true });
      report.removedFiles.push(file);
    }
  };

  const idle = await db.$queryRaw<{ id: string; name: string; uploadLength: bigint | null; uploadOffset: bigint | null }[]>`
    SELECT i."id"::text AS "id", i."name", i."uploadLength", i."uploadOffset" FROM "Image" i
    WHERE i."state" = 'importing' AND i."lockJobId" IS NULL AND COALESCE(i."originType", 'upload') = 'upload'
      AND COALESCE(i."uploadActivityAt", i."createdAt") < ${cutoff}`;
  for (const image of idle) {
    const upload = path.join(imageStore, STAGING, `${image.id}.upload`);
    const written = await Promise.all([modifiedMs(upload), modifiedMs(`${upload}.whole`)]);
    if (written.some((ms) => ms !== null && ms >= fileCutoffMs)) continue; // bytes arrived lately: still going
    const receivedBytes =
      image.uploadOffset !== null
        ? Number(image.uploadOffset)
        : await stat(upload).then(
            (s) => s.size,
            (err: NodeJS.ErrnoException) => {
              if (err.code === "ENOENT") return 0;
              throw err;
            },
          );
    const of = image.uploadLength === null ? "" : ` of ${formatSize(Number(image.uploadLength))}`;
    const message = `the upload was abandoned: no bytes arrived for ${opts.ttlHours} h (${formatSize(receivedBytes)}${of} received); the partial upload was removed`;
    const hint = `create the image again: \`iaas image delete ${image.name}\`, then \`iaas image import ${image.name} --file PATH\``;
    // Conditional on the same facts, so an upload that completed (its import job took the lock) or
    // that a PUT holds the upload lock of meanwhile is left alone.
    const marked = await db.$executeRaw`
      UPDATE "Image" SET "state" = 'failed', "errorCode" = 'UPLOAD_INCOMPLETE', "errorMessage" = ${message}, "errorHint" = ${hint},
        "uploadOwner" = NULL, "uploadLockedUntil" = NULL, "updatedAt" = now()
      WHERE "id" = ${image.id}::uuid AND "state" = 'importing' AND "lockJobId" IS NULL
        AND COALESCE("uploadActivityAt", "createdAt") < ${cutoff}
        AND ("uploadLockedUntil" IS NULL OR "uploadLockedUntil" < now())`;
    if (marked === 0) continue;
    report.abandoned.push({ id: image.id, name: image.name, receivedBytes });
    await removeFiles(filesOf(image.id));
  }

  // Orphans: files of images that are gone, or that nothing will read again.
  const abandonedIds = new Set(report.abandoned.map((a) => a.id));
  const ids = [...new Set(files.map((f) => f.imageId))].filter((id) => !abandonedIds.has(id));
  if (ids.length === 0) return report;
  const live = await db.image.findMany({
    where: { id: { in: ids }, OR: [{ state: { in: ["importing", "deleting"] } }, { lockJobId: { not: null } }] },
    select: { id: true },
  });
  const keep = new Set(live.map((i) => i.id));
  await removeFiles(ids.filter((id) => !keep.has(id)).flatMap(filesOf));
  return report;
}
