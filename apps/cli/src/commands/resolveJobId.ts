import { ExitCode, looksLikeUuid } from "@iaas/contracts";
import { CliError, usageError } from "../CliError.js";
import type { ApiClient } from "../client/ApiClient.js";
import { jobTarget } from "../output/format.js";

/** How many recent jobs a short id is looked up in. */
const PREFIX_SEARCH_LIMIT = 1000;

/**
 * The API takes full job ids only; the CLI also takes a unique prefix (as `job list` shows it,
 * 8 characters) and finds the job among the most recent ones.
 */
export async function resolveJobId(client: ApiClient, idOrPrefix: string): Promise<string> {
  const text = idOrPrefix.trim();
  if (text === "") throw usageError("a job id is required", "list jobs with `iaas job list`");
  if (looksLikeUuid(text) || !/^[0-9a-f-]{4,}$/i.test(text)) return text;
  const prefix = text.toLowerCase();
  const matches = (await client.listJobs({ limit: PREFIX_SEARCH_LIMIT })).filter((job) => job.id.toLowerCase().startsWith(prefix));
  const [first, second] = matches;
  if (first !== undefined && second === undefined) return first.id;
  if (first === undefined) {
    throw new CliError(`no job id starts with '${text}' among the ${PREFIX_SEARCH_LIMIT} most recent jobs`, {
      exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
      hint: "list jobs with `iaas job list`, or give the full id",
    });
  }
  throw new CliError(`job id prefix '${text}' is ambiguous`, {
    exitCode: ExitCode.USAGE,
    details: matches.slice(0, 10).map((job) => `  ${job.id}  ${job.type} ${jobTarget(job)}`),
    hint: "give more characters of the id",
  });
}
