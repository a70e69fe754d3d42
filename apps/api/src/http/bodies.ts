import type { Request, RequestHandler } from "express";
import { IaasError } from "@iaas/contracts";

/** The JSON body limit; app.ts mounts `express.json({ limit: "1mb" })`, the same 1 MiB. */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;

/** Routes whose body is not JSON (relative to /v1): the raw image upload. */
const RAW_BODY_ROUTES: { method: string; path: RegExp }[] = [{ method: "PUT", path: /^\/images\/[^/]+\/file\/?$/i }];

const isRawBodyRoute = (req: Request) => RAW_BODY_ROUTES.some((r) => r.method === req.method && r.path.test(req.path));

/** Whether the request carries a body (a non-zero Content-Length, or chunked). */
function hasBody(req: Request): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const length = req.headers["content-length"];
  return length !== undefined && length !== "0";
}

/**
 * Bodies are JSON: a request with a body whose Content-Type is not `application/json` gets 415
 * `UNSUPPORTED_MEDIA_TYPE` (this also stops HTML forms, which cannot send JSON, from posting
 * here); one announcing more than 1 MiB gets 413 `REQUEST_TOO_LARGE` before it is read. The raw
 * image upload (`PUT /v1/images/:ref/file`) is exempt. Mounted on /v1 before `express.json`.
 */
export function jsonBodiesOnly(): RequestHandler {
  return (req, _res, next) => {
    if (!hasBody(req) || isRawBodyRoute(req)) {
      next();
      return;
    }
    if (req.is("application/json") !== "application/json") {
      const type = req.headers["content-type"];
      next(
        new IaasError("UNSUPPORTED_MEDIA_TYPE", `${req.method} ${req.originalUrl.split("?")[0]} takes a JSON body, not ${type === undefined ? "a body without Content-Type" : `'${type}'`}`, {
          hint: "send the body as JSON with Content-Type: application/json",
        }),
      );
      return;
    }
    const length = Number(req.headers["content-length"] ?? 0);
    if (length > JSON_BODY_LIMIT_BYTES) {
      next(tooLarge(length));
      return;
    }
    next();
  };
}

/** 413 for a JSON body over the limit. */
export function tooLarge(length: number | null): IaasError {
  return new IaasError("REQUEST_TOO_LARGE", `the JSON body${length === null ? "" : ` (${length} bytes)`} is larger than the API's ${JSON_BODY_LIMIT_BYTES} bytes`, {
    hint: "request bodies are small JSON objects; images are uploaded with PUT /v1/images/:ref/file",
  });
}
