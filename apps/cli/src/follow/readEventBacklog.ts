import type { JobEvent } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import type { ApiClient } from "../client/ApiClient.js";
import { readSseEvents } from "../client/sse.js";
import { parseJobEvent } from "./parseJobEvent.js";

/** How the backlog read ended. */
export type BacklogEnd = "end" | "quiet" | "unavailable";

/**
 * Reads the events a job has so far, without following it: the event stream is read until its
 * `end` event, or until it has been quiet for `quietMs` (the backlog arrives in one burst; what
 * follows would be live events). "unavailable" when the API has no event stream.
 */
export async function readEventBacklog(
  client: ApiClient,
  jobId: string,
  onEvent: (event: JobEvent) => void,
  options: { quietMs?: number; connectMs?: number } = {},
): Promise<BacklogEnd> {
  const quietMs = options.quietMs ?? 500;
  const stop = new AbortController();
  let timer = setTimeout(() => stop.abort(), options.connectMs ?? 10_000);
  const quietAgain = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => stop.abort(), quietMs);
  };
  const endpoint = `GET /v1/jobs/${jobId}/events`;
  try {
    const response = await client.openJobEvents(jobId, null, stop.signal);
    if (!(response.headers.get("content-type") ?? "").includes("text/event-stream") || response.body === null) {
      await response.body?.cancel();
      return "unavailable";
    }
    quietAgain();
    for await (const sse of readSseEvents(response.body)) {
      if (sse.event === "end") return "end";
      if (sse.data === "") continue;
      onEvent(parseJobEvent(sse.data, endpoint));
      quietAgain();
    }
    return "quiet";
  } catch (err) {
    if (err instanceof CliError && err.status !== null && [404, 405, 406, 501].includes(err.status)) return "unavailable";
    if (stop.signal.aborted && !(err instanceof CliError)) return "quiet";
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
