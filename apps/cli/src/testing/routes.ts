import type { ServerResponse } from "node:http";
import { serveJob, type JobScript } from "./jobApi.js";
import { sendJson, sendProblem, type RecordedRequest, type ScriptedHandler } from "./scriptedServer.js";

export type Route = (req: RecordedRequest, res: ServerResponse) => void;

/** Answers JSON with `status` (200 by default). */
export function json(body: unknown, status = 200): Route {
  return (_req, res) => sendJson(res, status, body);
}

/** Answers a problem+json error. */
export function problem(status: number, code: string, detail: string, hint: string | null = null): Route {
  return (_req, res) => sendProblem(res, status, code, detail, hint);
}

/** Answers with no body (204). */
export function noContent(): Route {
  return (_req, res) => void res.writeHead(204).end();
}

/** Answers each call with the next route; the last one repeats. */
export function sequence(...routes: Route[]): Route {
  let calls = 0;
  return (req, res) => {
    const route = routes[Math.min(calls++, routes.length - 1)];
    route?.(req, res);
  };
}

/**
 * A scripted API from a table keyed by "METHOD /path" (the path without its query); the jobs
 * API of `job` when given; a 404 problem for anything else.
 */
export function routeTable(table: Record<string, Route>, job?: JobScript): ScriptedHandler {
  return (req, res) => {
    if (job !== undefined && serveJob(job, req, res)) return;
    const route = table[`${req.method} ${req.path}`];
    if (route === undefined) sendProblem(res, 404, "NOT_FOUND", `no route ${req.method} ${req.path}`, null);
    else route(req, res);
  };
}

/** The JSON body of a recorded request. */
export function bodyOf(req: RecordedRequest | undefined): unknown {
  return req === undefined || req.body.length === 0 ? undefined : JSON.parse(req.body.toString("utf8"));
}

/** Answers plain text (e.g. the serial console). */
export function text(body: string): Route {
  return (_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end(body);
  };
}
