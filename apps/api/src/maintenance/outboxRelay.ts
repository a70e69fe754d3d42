import type { Logger } from "pino";
import type { PrismaClient } from "@iaas/db";
import type { JobQueues } from "../services/JobQueues.js";

/**
 * The outbox relay: puts back on its queue every job that Postgres says is `queued` but Redis
 * does not know (a crash between commit and enqueue, or a Redis that lost its data). Adding is
 * idempotent because the BullMQ job id is the job id. Returns how many it re-enqueued.
 */
export async function relayQueuedJobs(db: PrismaClient, queues: JobQueues, log: Logger, olderThanMs = 1000): Promise<number> {
  const jobs = await db.job.findMany({
    where: { state: "queued", createdAt: { lt: new Date(Date.now() - olderThanMs) } },
    orderBy: { createdAt: "asc" },
    take: 1000,
  });
  let relayed = 0;
  for (const job of jobs) {
    if (await queues.has(job)) continue;
    await queues.enqueue(job);
    relayed++;
    log.info({ jobId: job.id, hostId: job.hostId, type: job.type }, "relay re-enqueued a queued job missing from Redis");
  }
  return relayed;
}
