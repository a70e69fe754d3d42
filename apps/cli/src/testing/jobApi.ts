import type { ServerResponse } from "node:http";
import type { Job, JobEvent } from "@iaas/contracts";
import { JOB_ID } from "./fixtures.js";
import { sendJson, sendProblem, startSse, writeSse, type RecordedRequest } from "./scriptedServer.js";

/** How the scripted API plays one job. */
export interface JobScript {
  /** The job while it runs (what GET /v1/jobs/:id answers until it is final). */
  running: Job;
  /** Every event of the job, in order. */
  events: JobEvent[];
  /** The final job; null for a job that never finishes. */
  final: Job | null;
  /** The first event stream is cut (socket destroyed) right after this seq. */
  cutAfterSeq?: number;
  /** The events endpoint answers 404, so clients must poll. */
  noStream?: boolean;
  /**
   * What `event: end` carries: "job" (the final Job, as apps/api sends; the default),
   * "summary" (`{jobId, state}`, as older APIs sent) or "none" (no data line).
   */
  endData?: "summary" | "job" | "none";
}

/**
 * Serves GET /v1/jobs/:id, /events (SSE) and /wait for a scripted job; returns false for other
 * requests so a test can answer them. Unknown job ids get a 404 problem.
 */
export function serveJob(script: JobScript, req: RecordedRequest, res: ServerResponse): boolean {
  const match = /^\/v1\/jobs\/([^/]+)(\/events|\/wait)?$/.exec(req.path);
  if (match === null || req.method !== "GET") return false;
  const id = decodeURIComponent(match[1] ?? "");
  if (id !== JOB_ID) {
    sendProblem(res, 404, "NOT_FOUND", `job '${id}' not found`, "list jobs with `iaas job list`");
    return true;
  }
  const current = script.final ?? script.running;
  switch (match[2]) {
    case undefined:
      sendJson(res, 200, current);
      return true;
    case "/wait":
      if (script.final !== null) sendJson(res, 200, script.final);
      else setTimeout(() => sendJson(res, 200, script.running), Number(req.query.get("timeout") ?? "1") * 1000).unref();
      return true;
    default:
      streamEvents(script, req, res);
      return true;
  }
}

function streamEvents(script: JobScript, req: RecordedRequest, res: ServerResponse): void {
  if (script.noStream === true) {
    sendProblem(res, 404, "NOT_FOUND", "no such route", null);
    return;
  }
  const header = req.headers["last-event-id"];
  const after = typeof header === "string" ? Number(header) : Number(req.query.get("after") ?? "0");
  startSse(res);
  res.write(": connected\n\n");
  // A resumed stream repeats the last event the client saw: clients must drop duplicates.
  for (const event of script.events.filter((e) => e.seq >= Math.max(1, after))) {
    writeSse(res, { id: event.seq, event: event.type, data: event });
    if (after === 0 && script.cutAfterSeq === event.seq) {
      // Let the events reach the client, then break the connection without ending the response.
      setTimeout(() => res.socket?.destroy(), 30);
      return;
    }
  }
  if (script.final !== null) {
    const final = script.final;
    const data = { summary: { jobId: final.id, state: final.state }, job: final, none: undefined }[script.endData ?? "job"];
    writeSse(res, { event: "end", data });
    res.end();
    return;
  }
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), 50);
  res.on("close", () => clearInterval(heartbeat));
}
