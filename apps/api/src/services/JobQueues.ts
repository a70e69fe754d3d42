import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { hostQueueName, IaasError, type JobType } from "@iaas/contracts";
import { jobTypeOf, type Job } from "@iaas/db";

const ENQUEUE_TIMEOUT_MS = 3000;

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new IaasError("QUEUE_UNAVAILABLE", `Redis did not answer within ${ms} ms (${what})`, { hint: "retry in a few seconds" })), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Producer side of the per-host BullMQ queues. The BullMQ job id is the Postgres job id, so adding
 * the same job twice (submit + relay) is a no-op, and the job data is only that id: Postgres holds
 * the payload.
 */
/** What a queue entry is made from: a job row, read through Prisma (`vm_create`) or raw SQL (`vm.create`). */
export type QueuedJobRef = Pick<Job, "id" | "hostId" | "maxAttempts"> & { type: Job["type"] | JobType };

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

  /** Whether Redis is connected now (the client's offline queue is off: commands fail at once otherwise). */
  available(): boolean {
    return this.connection.status === "ready";
  }

  /** Refuses at once, with QUEUE_UNAVAILABLE, while Redis is not connected. */
  assertAvailable(): void {
    if (!this.available()) {
      throw new IaasError("QUEUE_UNAVAILABLE", `the job queue (Redis) is unreachable (${this.connection.status}); nothing was changed`, {
        hint: "retry in a few seconds; `GET /readyz` says when the API is ready again",
      });
    }
  }

  async enqueue(job: QueuedJobRef): Promise<void> {
    if (!job.hostId) throw new Error(`job ${job.id} has no host to run on`);
    this.assertAvailable();
    await withTimeout(this.queueFor(job.hostId).add(
      jobTypeOf(job),
      { jobId: job.id },
      {
        jobId: job.id,
        attempts: job.maxAttempts,
        backoff: { type: "exponential", delay: 1000 },
        removeOnComplete: { age: 3600, count: 5000 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    ), ENQUEUE_TIMEOUT_MS, `adding job ${job.id} to Redis`);
  }

  /**
   * What Redis knows of the job: its BullMQ state (`waiting`, `active`, `delayed`, `completed`,
   * `failed`, …) or null when it has no entry.
   */
  async stateOf(job: Pick<Job, "id" | "hostId">): Promise<string | null> {
    if (!job.hostId) return null;
    const found = await this.queueFor(job.hostId).getJob(job.id);
    if (!found) return null;
    const state = await found.getState();
    return state === "unknown" ? null : state;
  }

  /**
   * Puts a job Postgres says still needs running back on its queue, whatever BullMQ kept of an
   * earlier delivery: a `completed` or `failed` entry (attempts spent while Postgres was down, a
   * worker that gave up) is removed first, since adding an existing id is a no-op.
   */
  async requeue(job: QueuedJobRef): Promise<"added" | "kept"> {
    const state = await this.stateOf(job);
    if (state === "completed" || state === "failed") {
      await this.queueFor(job.hostId ?? "").remove(job.id);
    } else if (state !== null) {
      return "kept";
    }
    await this.enqueue(job);
    return "added";
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
