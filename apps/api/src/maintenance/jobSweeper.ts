import type { Logger } from "pino";
import { TRANSITIONAL_VM_STATES } from "@iaas/contracts";
import { rm } from "node:fs/promises";
import path from "node:path";
import { finishJobIn, type PrismaClient } from "@iaas/db";

/** Extra time past a job's own timeout before the sweeper steps in (the worker enforces the timeout itself). */
export const SWEEP_GRACE_MS = 60_000;

/**
 * Fails running jobs that are past their timeout plus a grace period — their worker died or lost
 * its host — and takes their VM out of its transitional state, so nothing stays `starting` or
 * `deleting` forever. Returns the ids it failed.
 */
export async function sweepExpiredJobs(db: PrismaClient, log: Logger, now = new Date()): Promise<string[]> {
  const running = await db.job.findMany({ where: { state: "running" }, select: { id: true, startedAt: true, timeoutMs: true, vmId: true, hostId: true, type: true } });
  const expired = running.filter((j) => j.startedAt && j.startedAt.getTime() + j.timeoutMs + SWEEP_GRACE_MS < now.getTime());
  const failed: string[] = [];
  for (const job of expired) {
    const done = await db.$transaction(async (tx) => {
      const ok = await finishJobIn(tx, job.id, {
        state: "failed",
        error: {
          code: "JOB_TIMEOUT",
          message: `${job.type} ran past its timeout of ${Math.round(job.timeoutMs / 1000)}s and its worker on host ${job.hostId} did not finish it`,
          hint: `check the worker of host ${job.hostId} (\`iaas host list\`); then look at the VM with \`iaas vm show\``,
        },
      });
      if (ok && job.vmId) {
        await tx.vm.updateMany({
          where: { id: job.vmId, state: { in: [...TRANSITIONAL_VM_STATES] } },
          data: { state: "error", errorCode: "JOB_TIMEOUT", errorMessage: `job ${job.id} (${job.type}) timed out`, errorHint: "stop or delete the VM to recover it" },
        });
      }
      return ok;
    });
    if (done) {
      failed.push(job.id);
      log.warn({ jobId: job.id, hostId: job.hostId }, "sweeper failed a job past its timeout");
    }
  }
  return failed;
}

/** Deletes the files of exports past their expiry and marks them expired; returns how many. */
export async function expireExports(db: PrismaClient, store: string, now = new Date()): Promise<number> {
  const due = await db.export.findMany({ where: { state: "ready", expiresAt: { lt: now } } });
  for (const e of due) {
    if (e.path) await rm(path.join(store, e.path), { force: true });
    await db.export.update({ where: { id: e.id }, data: { state: "expired", path: null } });
  }
  return due.length;
}
