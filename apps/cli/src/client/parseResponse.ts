import type { z } from "zod";
import { ExitCode } from "@iaas/contracts";
import { CliError } from "../CliError.js";

/**
 * Parses an API answer with its contract schema. A body that does not match is an error naming
 * the endpoint and the first mismatches, so a CLI/API version skew is obvious.
 */
export function parseResponse<S extends z.ZodType>(schema: S, body: unknown, endpoint: string): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "(body)"}: ${issue.message}`);
  const more = result.error.issues.length > 3 ? ` (and ${result.error.issues.length - 3} more)` : "";
  throw new CliError(`unexpected response from ${endpoint}: ${issues.join("; ")}${more}`, {
    exitCode: ExitCode.JOB_FAILED,
    hint: "the CLI and the API may be different versions; compare `iaas --version` with the API's",
  });
}
