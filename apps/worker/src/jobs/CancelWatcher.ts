import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { cancelChannel } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import type { JobRunner } from "./JobRunner.js";

/**
 * Hears cancel requests for running jobs: at once over Redis pub/sub, and from Postgres every few
 * seconds in case a message was missed (the flag on the job row is the durable request).
 */
export class CancelWatcher {
  private timer: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly db: PrismaClient,
    private readonly runner: JobRunner,
    private readonly log: Logger,
  ) {}

  async start(pollMs = 2000): Promise<void> {
    this.subscriber = this.redis.duplicate();
    this.subscriber.on("message", (_channel: string, jobId: string) => this.cancel(jobId));
    await this.subscriber.subscribe(cancelChannel(this.prefix));
    this.timer = setInterval(() => void this.poll().catch((err: unknown) => this.log.warn({ err }, "cancel poll failed")), pollMs);
  }

  private cancel(jobId: string): void {
    if (this.runner.cancel(jobId)) this.log.info({ jobId }, "cancelling a running job at the user's request");
  }

  private async poll(): Promise<void> {
    const ids = this.runner.runningJobIds();
    if (ids.length === 0) return;
    const flagged = await this.db.job.findMany({ where: { id: { in: ids }, cancelRequestedAt: { not: null } }, select: { id: true } });
    for (const { id } of flagged) this.cancel(id);
  }

  stop(): void {
    clearInterval(this.timer);
    this.subscriber?.disconnect();
  }
}
