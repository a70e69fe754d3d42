import type { Logger } from "pino";
import type { PrismaClient } from "@iaas/db";

/**
 * Stops the worker taking jobs while Postgres is unreachable, and starts it again when the
 * database answers. The first failure pauses the queue worker; a probe (`SELECT 1`) retries with
 * exponential backoff (0.5 s doubling up to 10 s) and resumes the worker on success.
 */
export class DatabaseGate {
  private probing = false;
  private delayMs = 500;
  /** Set on shutdown: outcome writes stop retrying, so the process can exit. */
  stopping = false;

  constructor(
    private readonly db: PrismaClient,
    private readonly log: Logger,
    private readonly hooks: { pause(): Promise<void>; resume(): Promise<void> },
    private readonly maxDelayMs = 10_000,
  ) {}

  /** Whether the worker is paused for the database now. */
  get isDown(): boolean {
    return this.probing;
  }

  /** How long a delivery put back meanwhile waits before it is tried again. */
  retryDelayMs(): number {
    return Math.max(1000, this.delayMs);
  }

  /** Reports a failure that says Postgres is unreachable; pauses the worker once. */
  down(err: unknown): void {
    if (this.probing || this.stopping) return;
    this.probing = true;
    this.delayMs = 500;
    this.log.error({ err }, "Postgres is unreachable: not taking jobs until it answers");
    void this.hooks
      .pause()
      .catch((e: unknown) => this.log.warn({ err: e }, "could not pause the queue worker"))
      .then(() => this.probe());
  }

  private async probe(): Promise<void> {
    while (!this.stopping) {
      await new Promise((r) => setTimeout(r, this.delayMs));
      try {
        await this.db.$queryRaw`SELECT 1`;
        break;
      } catch (err) {
        this.log.warn({ retryInMs: Math.min(this.delayMs * 2, this.maxDelayMs), err: (err as Error).message }, "Postgres still unreachable");
        this.delayMs = Math.min(this.delayMs * 2, this.maxDelayMs);
      }
    }
    this.probing = false;
    if (this.stopping) return;
    this.log.info("Postgres answers again: taking jobs");
    await this.hooks.resume().catch((e: unknown) => this.log.error({ err: e }, "could not resume the queue worker"));
  }
}
