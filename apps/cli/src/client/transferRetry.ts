import { ExitCode } from "@iaas/contracts";
import { CliError } from "../CliError.js";

/** Pauses between attempts of a transfer: 0.5 s, 1 s, 2 s … 10 s; ten tries in all. */
export const DEFAULT_TRANSFER_BACKOFF_MS: readonly number[] = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000];

/** How long a transfer may go without moving a byte before it is treated as a dropped connection. */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/**
 * Counts the failures of a transfer. The count starts over whenever bytes were gained since the
 * previous failure, so a long transfer over a flaky line keeps going while it makes progress, and
 * one that is stuck gives up after `delays.length + 1` tries.
 */
export class RetryBudget {
  private failures = 0;
  private positionAtFailure = -1;

  constructor(private readonly delays: readonly number[]) {}

  /** Records a failure at `position`; the pause before the next try, or null when out of tries. */
  failure(position: number): number | null {
    if (position > this.positionAtFailure) this.failures = 0;
    this.positionAtFailure = Math.max(this.positionAtFailure, position);
    const delay = this.delays[this.failures];
    this.failures++;
    return delay ?? null;
  }

  /** Tries made so far after the first failure at the current position (for messages). */
  get attempt(): number {
    return this.failures;
  }

  get maxAttempts(): number {
    return this.delays.length;
  }
}

/** A dropped connection, a timeout or a 5xx answer: worth resuming after a pause. */
export function isTransient(err: unknown): err is CliError {
  return err instanceof CliError && (err.retryable || (err.status !== null && err.status >= 500 && err.status !== 501));
}

/** Aborts its signal when `kick` has not been called for `ms` (a stalled transfer). */
export class IdleWatchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(private readonly ms: number) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once it fired. */
  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  /** Data moved: start the idle period over (`ms` for this one period only). */
  kick(ms = this.ms): void {
    clearTimeout(this.timer);
    this.timer = this.arm(ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(ms = this.ms): NodeJS.Timeout {
    const timer = setTimeout(() => this.controller.abort(new Error(`no data moved for ${Math.round(ms / 1000)}s`)), ms);
    timer.unref();
    return timer;
  }
}

/** The error a stalled transfer is reported with, so it is resumed like a dropped connection. */
export function stalledError(what: string, ms: number): CliError {
  return new CliError(`${what} stalled: no data moved for ${Math.round(ms / 1000)}s`, { exitCode: ExitCode.UNREACHABLE, retryable: true });
}
