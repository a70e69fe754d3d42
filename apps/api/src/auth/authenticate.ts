import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Logger } from "pino";
import { DEFAULT_PROJECT, DEFAULT_PROJECT_ID, IaasError, looksLikeUuid, PROJECT_HEADER } from "@iaas/contracts";
import { auditLog, type PrismaClient } from "@iaas/db";
import { maybeAuthOf, setAuth, type AuthContext } from "./AuthContext.js";
import { runInScope, type RequestScope } from "./scope.js";
import { tokenMatches, tokenPrefix } from "./tokens.js";

/** `token`: every /v1 request needs a valid API token; `none`: everyone is the `local` admin (loopback only). */
export type AuthMode = "token" | "none";

const LOCAL: AuthContext = { tokenId: null, tokenName: "local", role: "admin", projectId: null };
const LAST_USED_RESOLUTION_MS = 60_000;

function unauthorized(message: string, hint: string): IaasError {
  return new IaasError("UNAUTHORIZED", message, { hint });
}

/** The token a request presents, checked: known, not revoked, not expired (401 with a hint otherwise). */
async function tokenAuth(db: PrismaClient, header: string | undefined): Promise<AuthContext> {
  if (!header) throw unauthorized("this API needs a token", "send `Authorization: Bearer <token>`; the CLI reads it from `iaas login --url URL --token T` (or IAAS_TOKEN)");
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const presented = match?.[1] ?? "";
  const prefix = tokenPrefix(presented);
  const row = prefix ? await db.apiToken.findUnique({ where: { prefix } }) : null;
  if (!row || !tokenMatches(presented, row.hash)) {
    throw unauthorized("the API token is not valid", "check the token (`iaas login`), or ask an admin for a new one (`iaas token create`)");
  }
  if (row.revokedAt) throw unauthorized(`token '${row.name}' was revoked at ${row.revokedAt.toISOString()}`, "ask an admin for a new token (`iaas token create`)");
  if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) {
    throw unauthorized(`token '${row.name}' expired at ${row.expiresAt.toISOString()}`, "ask an admin for a new token (`iaas token create NAME --expires 30d`)");
  }
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    await db.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
  }
  return { tokenId: row.id, tokenName: row.name, role: row.role, projectId: row.projectId };
}

/** The project the request acts in: the token's, or for an unscoped token the `X-Iaas-Project` header's (default `default`). */
async function projectOf(db: PrismaClient, auth: AuthContext, header: string | undefined): Promise<{ id: string; name: string }> {
  const wanted = header?.trim();
  const notFound = () => new IaasError("NOT_FOUND", `project '${wanted ?? ""}' not found`, { hint: "run `iaas project list`" });
  if (auth.projectId !== null) {
    const own = await db.project.findUniqueOrThrow({ where: { id: auth.projectId } });
    if (wanted && wanted !== own.name && wanted.toLowerCase() !== own.id) throw notFound();
    return own;
  }
  if (!wanted) return { id: DEFAULT_PROJECT_ID, name: DEFAULT_PROJECT };
  const found = looksLikeUuid(wanted) ? await db.project.findUnique({ where: { id: wanted.toLowerCase() } }) : await db.project.findUnique({ where: { name: wanted } });
  if (!found) throw notFound();
  return found;
}

/**
 * Authenticates every /v1 request and runs the rest of it in its scope (token, role, project,
 * request id, source address, user agent), which every query then honours.
 */
export function authenticate(db: PrismaClient, mode: AuthMode): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    void (async () => {
      const auth = mode === "none" ? LOCAL : await tokenAuth(db, req.header("authorization"));
      setAuth(req, auth);
      const project = await projectOf(db, auth, req.header(PROJECT_HEADER));
      const scope: RequestScope = {
        auth,
        projectId: project.id,
        projectName: project.name,
        requestId: String(res.getHeader("x-request-id") ?? "") || null,
        sourceAddress: req.socket.remoteAddress ?? null,
        userAgent: req.header("user-agent") ?? null,
      };
      (res.locals as { scope?: RequestScope }).scope = scope;
      runInScope(scope, () => next());
    })().catch(next);
  };
}

/** A request's outcome for the audit trail: 2xx/3xx allowed; 401, 403 and 429 denied; the rest failed. */
export function auditOutcome(status: number): "allowed" | "denied" | "failed" {
  if (status < 400) return "allowed";
  return status === 401 || status === 403 || status === 429 ? "denied" : "failed";
}

/**
 * Appends an audit row when a /v1 request that changes something finishes, and for every denied
 * request (reads included): actor, project, request id, address, user agent, status, and the job
 * it made (from `Location`).
 */
export function auditTrail(db: PrismaClient, log: Logger): RequestHandler {
  return (req, res, next) => {
    res.on("finish", () => {
      const reading = req.method === "GET" || req.method === "HEAD";
      const outcome = auditOutcome(res.statusCode);
      if (reading && outcome !== "denied") return;
      const scope = (res.locals as { scope?: RequestScope }).scope;
      const auth = maybeAuthOf(req);
      const location = String(res.getHeader("location") ?? "");
      const jobId = /^\/v1\/jobs\/([0-9a-f-]{36})$/.exec(location)?.[1] ?? null;
      const presented = tokenPrefix(/^Bearer\s+(\S+)$/i.exec(req.header("authorization") ?? "")?.[1] ?? "");
      const text = (s: string | null) => (s === null ? null : (s as string & { toWellFormed(): string }).toWellFormed().replaceAll("\u0000", "\uFFFD"));
      auditLog(db)
        .append({
          actorTokenId: auth?.tokenId ?? null,
          actorName: auth?.tokenName ?? (presented ? `unknown token iaas_${presented}_…` : "anonymous"),
          projectId: scope?.projectId ?? null,
          requestId: String(res.getHeader("x-request-id") ?? "") || null,
          sourceAddress: req.socket.remoteAddress ?? null,
          userAgent: text(req.header("user-agent")?.slice(0, 500) ?? null),
          method: req.method,
          path: text(req.originalUrl.slice(0, 1000)) ?? "",
          outcome,
          status: res.statusCode,
          action: jobId ? ((res.locals as { jobType?: string }).jobType ?? "job") : `${req.method} ${req.baseUrl}${req.route ? String((req.route as { path: string }).path) : req.path}`,
          jobId,
          detail: text((res.locals as { problem?: string }).problem ?? null),
        })
        .catch((err: unknown) => log.error({ err, method: req.method, url: req.originalUrl }, "could not append to the audit trail"));
    });
    next();
  };
}
