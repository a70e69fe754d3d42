import { z } from "zod";
import { ExitCode, Problem, exitCodeFor } from "@iaas/contracts";
import { CliError } from "../CliError.js";

/** What can still be read from an error body that is not a valid `Problem` (e.g. an unknown code). */
const LooseProblem = z.object({
  title: z.string().optional(),
  detail: z.string().optional(),
  message: z.string().optional(),
  hint: z.string().nullable().optional(),
});

export interface ProblemContext {
  /** `METHOD /path`, named in messages about odd answers. */
  endpoint: string;
  /** The hint for 401/403: where the token comes from and how to set it. */
  authHint: string;
  baseUrl: string;
}

/**
 * Turns a non-2xx answer into a CliError: `detail` and `hint` from the problem+json body, the
 * exit code from `exitCodeFor(code)` (401/403 are exit 5, whatever the body says).
 */
export function problemError(status: number, statusText: string, bodyText: string, ctx: ProblemContext): CliError {
  let json: unknown = null;
  try {
    json = JSON.parse(bodyText);
  } catch {
    json = null;
  }
  const unauthorized = status === 401 || status === 403;
  const problem = Problem.safeParse(json);
  if (problem.success) {
    const p = problem.data;
    const details = (p.errors ?? []).map((e) => `  ${e.path === "" ? "(body)" : e.path}: ${e.message}`);
    return new CliError(unauthorized ? unauthorizedMessage(status, p.detail, ctx) : p.detail, {
      exitCode: unauthorized ? ExitCode.UNREACHABLE : exitCodeFor(p.code),
      hint: unauthorized ? (p.hint ?? ctx.authHint) : p.hint,
      details,
      code: p.code,
      status,
    });
  }
  const loose = LooseProblem.safeParse(json);
  const text = loose.success ? (loose.data.detail ?? loose.data.message ?? loose.data.title) : undefined;
  const detail = text ?? `${ctx.endpoint} answered ${status}${statusText === "" ? "" : ` ${statusText}`}`;
  const hint = loose.success ? (loose.data.hint ?? null) : null;
  if (unauthorized) {
    return new CliError(unauthorizedMessage(status, detail, ctx), {
      exitCode: ExitCode.UNREACHABLE,
      hint: hint ?? ctx.authHint,
      status,
    });
  }
  return new CliError(detail, { exitCode: exitCodeForStatus(status), hint, status });
}

/** Exit code for an error answer whose body carries no known `code`. */
export function exitCodeForStatus(status: number): number {
  if (status === 401 || status === 403) return ExitCode.UNREACHABLE;
  if (status === 404 || status === 409 || status === 410 || status === 412) return ExitCode.NOT_FOUND_OR_CONFLICT;
  if (status >= 400 && status < 500) return ExitCode.USAGE;
  if (status === 502 || status === 503 || status === 504) return ExitCode.UNREACHABLE;
  return ExitCode.JOB_FAILED;
}

function unauthorizedMessage(status: number, detail: string, ctx: ProblemContext): string {
  // 401: no token, or not a valid one; 403: a valid token whose role or project does not allow this.
  const what = status === 401 ? "requires a valid token" : "refused the request";
  return `the IaaS API at ${ctx.baseUrl} ${what} (${status}): ${detail}`;
}
