import { ExitCode, type ErrorCode } from "@iaas/contracts";

/** Exit code after Ctrl-C, as shells report a SIGINT. */
export const EXIT_INTERRUPTED = 130;

export interface CliErrorOptions {
  /** The process exit code (see `iaas --help`). */
  exitCode: number;
  /** What to do next; printed as `hint: …`. */
  hint?: string | null;
  /** Extra lines printed under the message (e.g. field-level validation errors). */
  details?: readonly string[];
  /** The API's error code, when the error came from a problem+json answer or a job. */
  code?: ErrorCode | null;
  /** The HTTP status, when the error came from an HTTP answer. */
  status?: number | null;
  /** True for connection-level failures that a retry or a reconnect may cure. */
  retryable?: boolean;
  /** Exit with the code but print nothing (e.g. passing on `ssh`'s exit code). */
  silent?: boolean;
  cause?: unknown;
}

/** An error the CLI reports as `error: <message>` / `hint: <hint>` and turns into an exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly hint: string | null;
  readonly details: readonly string[];
  readonly code: ErrorCode | null;
  readonly status: number | null;
  readonly retryable: boolean;
  readonly silent: boolean;

  constructor(message: string, options: CliErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.exitCode = options.exitCode;
    this.hint = options.hint ?? null;
    this.details = options.details ?? [];
    this.code = options.code ?? null;
    this.status = options.status ?? null;
    this.retryable = options.retryable ?? false;
    this.silent = options.silent ?? false;
  }
}

/** A usage or validation error found by the CLI itself (exit 2). */
export function usageError(message: string, hint?: string): CliError {
  return new CliError(message, { exitCode: ExitCode.USAGE, hint: hint ?? null });
}

/** Ends the CLI with `exitCode` and no message (the program that ran said what went wrong). */
export function silentExit(exitCode: number): CliError {
  return new CliError(`exit ${exitCode}`, { exitCode, silent: true });
}

/** The user pressed Ctrl-C. */
export function interruptedError(): CliError {
  return new CliError("interrupted", { exitCode: EXIT_INTERRUPTED });
}
