import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { hostQueueName } from "@iaas/contracts";
import type { Job } from "@iaas/db";

/**
 * Producer side of the per-host BullMQ queues. The BullMQ job id is the Postgres job id, so adding
 * the same job twice (submit + relay) is a no-op, and the job data is only that id: Postgres holds
 * the payload.
 */
export class JobQueues {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
  ) {}

  private queueFor(hostId: string): Queue {
    let queue = this.queues.get(hostId);
    if (!queue) {
      queue = new Queue(hostQueueName(hostId), { connection: this.connection, prefix: this.prefix });
      this.queues.set(hostId, queue);
    }
    return queue;
  }

  async enqueue(job: Pick<Job, "id" | "type" | "hostId" | "maxAttempts">): Promise<void> {
    if (!job.hostId) throw new Error(`job ${job.id} has no host to run on`);
    await this.queueFor(job.hostId).add(
      job.type,
      { jobId: job.id },
      {
        jobId: job.id,
        attempts: job.maxAttempts,
        backoff: { type: "exponential", delay: 1000 },
        removeOnComplete: { age: 3600, count: 5000 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    );
  }

  /** Whether Redis still knows the job (in any state). */
  async has(job: Pick<Job, "id" | "hostId">): Promise<boolean> {
    if (!job.hostId) return false;
    const found = await this.queueFor(job.hostId).getJob(job.id);
    return found !== undefined && found !== null;
  }

  /** Removes a job that has not started (used by cancel); a locked (active) job is left alone. */
  async remove(job: Pick<Job, "id" | "hostId">): Promise<void> {
    if (!job.hostId) return;
    const found = await this.queueFor(job.hostId).getJob(job.id);
    if (found && !(await found.isActive())) await found.remove();
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
