import { Job, isTerminalJobState, type JobEvent } from "@iaas/contracts";
import { CliError, EXIT_INTERRUPTED } from "../CliError.js";
import type { ApiClient } from "../client/ApiClient.js";
import { readSseEvents } from "../client/sse.js";
import { sleep } from "../client/sleep.js";
import { parseJobEvent } from "./parseJobEvent.js";

export interface FollowJobOptions {
  /** Give up after this long (the job keeps running); null waits for as long as it takes. */
  timeoutMs: number | null;
  /** Each new event from the stream, in order, never twice. */
  onEvent?: (event: JobEvent) => void;
  /** The job as the long-poll fallback sees it. */
  onJob?: (job: Job) => void;
  /** Called when the event stream is given up and the job is polled instead. */
  onFallback?: (reason: string) => void;
  /** Pauses before reconnecting a dropped stream (default 200 ms, 1 s, 2 s). */
  reconnectDelaysMs?: readonly number[];
  /** Consecutive stream failures, with no event between them, before polling instead (default 3). */
  maxStreamFailures?: number;
}

export type FollowJobResult =
  | { kind: "final"; job: Job }
  /** The timeout passed first; `job` is the job as it was then (null if it could not be read). */
  | { kind: "timeout"; job: Job | null };

/** HTTP statuses meaning "no event stream here": poll instead. */
const NO_STREAM_STATUSES = new Set([404, 405, 406, 501]);
/** HTTP statuses worth reconnecting after (a proxy or an API restarting). */
const TRANSIENT_STATUSES = new Set([502, 503, 504]);

/**
 * Follows a job until it is final: live over Server-Sent Events, reconnecting with
 * `Last-Event-ID` when the stream drops; if the stream cannot be had at all, by long-polling
 * `GET /v1/jobs/:id/wait`. API errors (404, 401, …) and Ctrl-C are thrown as CliErrors.
 */
export async function followJob(client: ApiClient, jobId: string, options: FollowJobOptions): Promise<FollowJobResult> {
  const deadline = new AbortController();
  const timer = options.timeoutMs === null ? null : setTimeout(() => deadline.abort(), Math.max(0, options.timeoutMs));
  try {
    const streamed = await followStream(client, jobId, options, deadline.signal);
    if (streamed !== null) return streamed;
    return await poll(client, jobId, options, deadline.signal);
  } catch (err) {
    if (deadline.signal.aborted && !(err instanceof CliError)) return { kind: "timeout", job: await currentJob(client, jobId) };
    throw err;
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

/** Streams events; null means "the stream is not available, poll". */
async function followStream(
  client: ApiClient,
  jobId: string,
  options: FollowJobOptions,
  deadline: AbortSignal,
): Promise<FollowJobResult | null> {
  const delays = options.reconnectDelaysMs ?? [200, 1000, 2000];
  const maxFailures = options.maxStreamFailures ?? 3;
  const endpoint = `GET /v1/jobs/${jobId}/events`;
  let lastSeq = 0;
  let failures = 0;
  for (;;) {
    if (deadline.aborted) return { kind: "timeout", job: await currentJob(client, jobId) };
    let response: Response;
    try {
      response = await client.openJobEvents(jobId, lastSeq > 0 ? String(lastSeq) : null, deadline);
    } catch (err) {
      if (err instanceof CliError && err.status !== null && NO_STREAM_STATUSES.has(err.status)) {
        options.onFallback?.(`${endpoint} answered ${err.status}`);
        return null;
      }
      const transient = err instanceof CliError && (err.retryable || (err.status !== null && TRANSIENT_STATUSES.has(err.status)));
      if (!transient) throw err;
      failures++;
      if (failures >= maxFailures) {
        options.onFallback?.(err.message);
        return null;
      }
      await sleep(delays[Math.min(failures - 1, delays.length - 1)] ?? 1000, deadline);
      continue;
    }
    const contentType = response.headers.get("content-type") ?? "";
    if (!contentType.includes("text/event-stream") || response.body === null) {
      await response.body?.cancel();
      options.onFallback?.(`${endpoint} answered ${contentType || "no content type"}, not text/event-stream`);
      return null;
    }
    try {
      for await (const sse of readSseEvents(response.body)) {
        if (sse.event === "end") {
          const job = await finalJob(client, jobId, sse.data);
          if (job !== null) return { kind: "final", job };
          return null;
        }
        if (sse.data === "") continue;
        const event = parseJobEvent(sse.data, endpoint);
        if (event.seq <= lastSeq) continue;
        lastSeq = event.seq;
        failures = 0;
        options.onEvent?.(event);
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (deadline.aborted) return { kind: "timeout", job: await currentJob(client, jobId) };
      // The stream broke mid-way: reconnect below and resume after the last event seen.
    }
    failures++;
    if (failures >= maxFailures) {
      options.onFallback?.(`${endpoint} keeps closing without an end event`);
      return null;
    }
    await sleep(delays[Math.min(failures - 1, delays.length - 1)] ?? 1000, deadline);
  }
}

/** Long-polls the wait endpoint until the job is final or the deadline passes. */
async function poll(client: ApiClient, jobId: string, options: FollowJobOptions, deadline: AbortSignal): Promise<FollowJobResult> {
  const until = options.timeoutMs === null ? null : Date.now() + options.timeoutMs;
  for (;;) {
    const remainingMs = until === null ? 60_000 : until - Date.now();
    if (remainingMs <= 0 || deadline.aborted) return { kind: "timeout", job: await currentJob(client, jobId) };
    const job = await client.waitJob(jobId, Math.min(60, remainingMs / 1000), deadline);
    options.onJob?.(job);
    if (isTerminalJobState(job.state)) return { kind: "final", job };
  }
}

/** The job after an `end` event: from the event's data when it is a final Job, else fetched. */
async function finalJob(client: ApiClient, jobId: string, data: string): Promise<Job | null> {
  const fromEvent = safeJson(data);
  const parsed = Job.safeParse(fromEvent);
  if (parsed.success && parsed.data.id === jobId && isTerminalJobState(parsed.data.state)) return parsed.data;
  const job = await client.getJob(jobId);
  return isTerminalJobState(job.state) ? job : null;
}

/** The job as it is now, for a timeout report; null if the API cannot say. */
async function currentJob(client: ApiClient, jobId: string): Promise<Job | null> {
  try {
    return await client.getJob(jobId);
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT_INTERRUPTED) throw err;
    return null;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
