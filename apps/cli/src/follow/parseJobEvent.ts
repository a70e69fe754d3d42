import { ExitCode, JobEvent } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { parseResponse } from "../client/parseResponse.js";

/** Parses the `data:` of a job event from `endpoint` as a JobEvent (an error naming the endpoint if not). */
export function parseJobEvent(data: string, endpoint: string): JobEvent {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new CliError(`unexpected response from ${endpoint}: event data is not JSON: ${data.slice(0, 80)}`, {
      exitCode: ExitCode.JOB_FAILED,
    });
  }
  return parseResponse(JobEvent, json, endpoint);
}
