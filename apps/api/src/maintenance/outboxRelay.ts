import type { Logger } from "pino";
import type { JobType } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import type { JobQueues } from "../services/JobQueues.js";

export interface RelayReport {
  /** Queued jobs put (back) on their queue. */
  queued: number;
  /** Running jobs whose lease ran out and that Redis no longer delivers, put back. */
  resumed: number;
}

/**
 * The outbox relay. Postgres decides, BullMQ only delivers: every job Postgres says is `queued`
 * (older than `olderThanMs`, so a submit's own enqueue goes first) is put on its queue unless
 * Redis holds a live entry for it, and so is every `running` job whose lease ran out (its worker
 * died or stalled) when Redis has no live entry (a restart without persistence, a FLUSHALL, or
 * attempts spent while Postgres was down). Adding is idempotent: the BullMQ job id is the job id.
 * Lease times are compared with the database clock.
 */
export async function relayQueuedJobs(db: PrismaClient, queues: JobQueues, log: Logger, olderThanMs = 1000): Promise<RelayReport> {
  const report: RelayReport = { queued: 0, resumed: 0 };
  if (!queues.available()) return report;
  const queued = await db.$queryRaw<{ id: string; type: JobType; hostId: string | null; maxAttempts: number }[]>`
    SELECT "id", "type"::text AS "type", "hostId", "maxAttempts" FROM "Job"
    WHERE "state" = 'queued' AND "createdAt" < now() - make_interval(secs => ${olderThanMs / 1000})
    ORDER BY "createdAt" LIMIT 1000`;
  for (const job of queued) {
    if ((await queues.requeue(job)) === "kept") continue;
    report.queued++;
    log.info({ jobId: job.id, hostId: job.hostId, type: job.type }, "relay put a queued job (back) on its queue");
  }
  const lapsed = await db.$queryRaw<{ id: string; type: JobType; hostId: string | null; maxAttempts: number }[]>`
    SELECT "id", "type"::text AS "type", "hostId", "maxAttempts" FROM "Job"
    WHERE "state" = 'running' AND "leaseExpiresAt" < now()
    ORDER BY "startedAt" LIMIT 1000`;
  for (const job of lapsed) {
    if ((await queues.requeue(job)) === "kept") continue;
    report.resumed++;
    log.warn({ jobId: job.id, hostId: job.hostId, type: job.type }, "relay put back a running job whose lease ran out and that Redis no longer delivers");
  }
  return report;
}
