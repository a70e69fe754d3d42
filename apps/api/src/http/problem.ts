import type { ErrorRequestHandler, Response } from "express";
import type { Logger } from "pino";
import { httpStatusFor, IaasError, type ErrorCode, type Problem } from "@iaas/contracts";
import { isDatabaseUnavailable, isRecordNotFound } from "@iaas/db";
import { RequestValidationError } from "./validate.js";
import { tooLarge } from "./bodies.js";

const TITLES: Partial<Record<ErrorCode, string>> = {
  VALIDATION_FAILED: "Invalid request",
  NOT_FOUND: "Not found",
  VM_BUSY: "Resource busy",
  NO_HOST_AVAILABLE: "No host available",
};

function problemOf(err: IaasError): Problem {
  const status = httpStatusFor(err.code);
  const jobId = typeof err.details["jobId"] === "string" ? err.details["jobId"] : undefined;
  return {
    type: `https://iaas.dev/problems/${err.code.toLowerCase().replaceAll("_", "-")}`,
    title: TITLES[err.code] ?? err.code.toLowerCase().replaceAll("_", " "),
    status,
    detail: err.message,
    code: err.code,
    hint: err.hint,
    ...(jobId ? { jobId } : {}),
  };
}

export function sendProblem(res: Response, problem: Problem): void {
  (res.locals as { problem?: string }).problem = `${problem.code}: ${problem.detail}`;
  res.status(problem.status).type("application/problem+json").json(problem);
}

/** The one place errors become HTTP answers. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof RequestValidationError) {
      sendProblem(res, { ...problemOf(err), errors: err.errors });
      return;
    }
    if (err instanceof IaasError) {
      if (err.code === "QUEUE_UNAVAILABLE" || err.code === "DATABASE_UNAVAILABLE") res.setHeader("Retry-After", "5");
      if (typeof err.details["offset"] === "number") res.setHeader("Upload-Offset", String(err.details["offset"]));
      sendProblem(res, problemOf(err));
      return;
    }
    const httpError = err as { status?: number; type?: string; message?: string };
    if (httpError.type === "entity.too.large") {
      // A JSON body over express.json's limit that did not announce its length (chunked); see http/bodies.ts.
      sendProblem(res, problemOf(tooLarge(null)));
      return;
    }
    if (httpError.type === "encoding.unsupported" || httpError.type === "charset.unsupported") {
      sendProblem(res, problemOf(new IaasError("UNSUPPORTED_MEDIA_TYPE", `request body: ${httpError.message ?? "unsupported encoding"}`, { hint: "send plain (or gzip/deflate/br) UTF-8 JSON" })));
      return;
    }
    if (httpError.type === "entity.parse.failed") {
      sendProblem(res, problemOf(new IaasError("VALIDATION_FAILED", `request body is not valid JSON: ${httpError.message}`, { hint: "send a JSON object with Content-Type: application/json" })));
      return;
    }
    // Postgres restarting or unreachable: nothing was written; the client retries (Retry-After).
    if (isDatabaseUnavailable(err)) {
      log.warn({ method: req.method, url: req.originalUrl, err: (err as Error).message }, "Postgres is unreachable");
      res.setHeader("Retry-After", "5");
      sendProblem(res, problemOf(new IaasError("DATABASE_UNAVAILABLE", "the database is unreachable; nothing was changed", { hint: "retry in a few seconds; `GET /readyz` says when the API is ready again" })));
      return;
    }
    // A row a request found and then read again was deleted in between by another request.
    if (isRecordNotFound(err)) {
      sendProblem(res, problemOf(new IaasError("NOT_FOUND", "not found: it was removed while the request ran", { hint: "list again" })));
      return;
    }
    // Errors from express' router (a malformed %-escape: URIError, 400), body-parser (a body that
    // does not decompress: 400) and send (a file gone: 404) carry a 4xx status: the client's doing.
    const status = httpError.status ?? (err as { statusCode?: number }).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      const code = status === 404 ? "NOT_FOUND" : status === 413 ? "REQUEST_TOO_LARGE" : status === 415 ? "UNSUPPORTED_MEDIA_TYPE" : "VALIDATION_FAILED";
      const what = status === 404 ? "not found" : err instanceof URIError ? "the path has a malformed %-escape" : `the request could not be read (${httpError.message ?? status})`;
      sendProblem(res, problemOf(new IaasError(code, what, { hint: status === 404 ? "it was removed meanwhile; list again" : "fix the request and send it again" })));
      return;
    }
    log.error({ err, method: req.method, url: req.originalUrl }, "unhandled error");
    sendProblem(res, problemOf(new IaasError("INTERNAL", "internal error; the API log has the details", { hint: "retry; if it persists, check the API log" })));
  };
}
