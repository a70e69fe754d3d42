import type { Logger } from "pino";
import type { PrismaClient } from "@iaas/db";

/** The advisory lock key the API processes elect their maintenance runner with ("iaas" + 1). */
export const MAINTENANCE_LOCK_KEY = 0x69616173_01n;

/** One named piece of maintenance (relay, sweeper, expiry, pruning, …). */
export interface MaintenanceTask {
  name: string;
  run(): Promise<unknown>;
}

export interface MaintenancePass {
  /** Whether this process held the lock and ran the tasks (another replica did otherwise). */
  ran: boolean;
  /** Each task's result, or its error message. */
  results: Record<string, unknown>;
}

/**
 * Background maintenance that must run in one API process at a time, however many replicas run:
 * each pass first takes a Postgres advisory lock (`pg_try_advisory_xact_lock`) in a transaction
 * held for the pass; a replica that does not get it skips the pass. A replica that dies mid-pass
 * loses its connection, and with it the lock. A task that fails is logged and does not stop the
 * others.
 */
export class Maintenance {
  private running = false;

  constructor(
    private readonly db: PrismaClient,
    private readonly tasks: MaintenanceTask[],
    private readonly log: Logger,
    private readonly maxPassMs = 10 * 60_000,
  ) {}

  async pass(): Promise<MaintenancePass> {
    if (this.running) return { ran: false, results: {} };
    this.running = true;
    try {
      return await this.db.$transaction(
        async (tx) => {
          const [lock] = await tx.$queryRaw<{ held: boolean }[]>`SELECT pg_try_advisory_xact_lock(${MAINTENANCE_LOCK_KEY}) AS "held"`;
          if (!lock?.held) return { ran: false, results: {} };
          const results: Record<string, unknown> = {};
          for (const task of this.tasks) {
            try {
              results[task.name] = await task.run();
            } catch (err) {
              results[task.name] = `failed: ${(err as Error).message}`;
              this.log.warn({ err, task: task.name }, "maintenance task failed; retried next pass");
            }
          }
          return { ran: true, results };
        },
        { timeout: this.maxPassMs, maxWait: 5_000 },
      );
    } catch (err) {
      this.log.warn({ err }, "maintenance pass could not run (database unreachable?); retried next interval");
      return { ran: false, results: {} };
    } finally {
      this.running = false;
    }
  }
}
