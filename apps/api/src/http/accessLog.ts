import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Request, RequestHandler } from "express";
import type { Logger } from "pino";
import { pinoHttp } from "pino-http";

/** Header a client or proxy names its request with; the API answers with it on every response. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/**
 * A client's `X-Request-Id` is kept when it is 1–128 characters of letters, digits and
 * `. _ : + / = -` (UUIDs, ULIDs, hex and base64 ids of proxies and tracers); anything else — too
 * long, control characters, spaces, quotes — is replaced by a fresh UUID, so a header cannot forge
 * or break a log line or the job row it is stored on.
 */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

/** The request id to use for a request: the client's when it is safe, else a new UUID. */
export function acceptRequestId(header: string | undefined): string {
  return header !== undefined && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
}

const ROUTE = Symbol("iaas.route");
type RoutedRequest = IncomingMessage & { [ROUTE]?: string };

/**
 * The route pattern a request matched, e.g. `/v1/jobs/:id` (never the raw path, so labels and
 * log fields stay few), or `unmatched` when no route took it (404s, requests refused before
 * routing). Recorded by `captureRoute`.
 */
export function routeOf(req: IncomingMessage): string {
  return (req as RoutedRequest)[ROUTE] ?? "unmatched";
}

/**
 * Gives the request its id (validated or generated, set on the response before anything else can
 * answer) and records the route pattern it matches: Express assigns `req.route` when a route
 * matches, while `req.baseUrl` is still its router's mount path (both are gone again once an
 * error leaves the router), so the pattern is taken at that moment.
 */
export function captureRoute(): RequestHandler {
  return (req, res, next) => {
    const id = acceptRequestId(req.header(REQUEST_ID_HEADER));
    (req as Request & { id?: string }).id = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    let route: unknown;
    Object.defineProperty(req, "route", {
      configurable: true,
      enumerable: true,
      get: () => route,
      set(value: unknown) {
        route = value;
        const pattern = (value as { path?: unknown } | undefined)?.path;
        if (typeof pattern === "string") (req as RoutedRequest)[ROUTE] = `${req.baseUrl}${pattern === "/" && req.baseUrl !== "" ? "" : pattern}`;
      },
    });
    next();
  };
}

/** Requests that log at debug rather than info: scrapes and probes, every few seconds. */
const QUIET_PATHS: ReadonlySet<string> = new Set(["/metrics", "/healthz", "/readyz"]);

function pathOf(req: IncomingMessage): string {
  const url = (req as Request).originalUrl ?? req.url ?? "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

/**
 * One access log line per request when its response finishes (or its connection closes), at info
 * (5xx at error; `/metrics` and health probes at debug): request id, method, route pattern, path
 * (without its query string, which may carry a download token), status and duration. Headers are
 * not logged; the logger's redaction covers Authorization, cookies and tokens anywhere else.
 * Mount after `captureRoute` (it reads the id that set).
 */
export function accessLog(log: Logger): RequestHandler {
  const fields = (req: IncomingMessage, res: ServerResponse, responseTime: number) => ({
    method: req.method,
    route: routeOf(req),
    path: pathOf(req),
    status: res.statusCode,
    durationMs: responseTime,
  });
  const middleware = pinoHttp({
    logger: log,
    genReqId: (req) => (req as IncomingMessage & { id?: string }).id ?? acceptRequestId(undefined),
    quietReqLogger: true,
    quietResLogger: true,
    customAttributeKeys: { reqId: "requestId" },
    customLogLevel: (req, res, err) => (err !== undefined || res.statusCode >= 500 ? "error" : QUIET_PATHS.has(pathOf(req)) ? "debug" : "info"),
    customSuccessMessage: (req, res) => `${req.method ?? ""} ${routeOf(req)} ${res.statusCode}`,
    customErrorMessage: (req, res) => `${req.method ?? ""} ${routeOf(req)} ${res.statusCode}`,
    customSuccessObject: (req, res, val: { responseTime: number }) => fields(req, res, val.responseTime),
    customErrorObject: (req, res, _err, val: { responseTime: number }) => fields(req, res, val.responseTime),
  });
  return (req, res, next) => middleware(req, res, next);
}
