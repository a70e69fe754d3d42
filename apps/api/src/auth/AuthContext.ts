import type { Request } from "express";

/** Roles of an API token: viewer reads; operator also changes things in its project; admin also manages hosts, projects, quotas and tokens. */
export type Role = "viewer" | "operator" | "admin";

/** Who a request acts as, set by the authentication middleware before any /v1 route runs. */
export interface AuthContext {
  /** The token's id and name (`local` with IAAS_AUTH=none). */
  tokenId: string | null;
  tokenName: string;
  role: Role;
  /** The project the token is scoped to; null: every project (an admin token without --project). */
  projectId: string | null;
}

/** The request's auth context (the middleware guarantees it on /v1). */
export function authOf(req: Request): AuthContext {
  const auth = (req as Request & { auth?: AuthContext }).auth;
  if (!auth) throw new Error("authOf: the request was not authenticated (middleware missing)");
  return auth;
}

/** Sets the request's auth context. */
export function setAuth(req: Request, auth: AuthContext): void {
  (req as Request & { auth?: AuthContext }).auth = auth;
}

/** The auth context if the request has one (rate limiting, logging). */
export function maybeAuthOf(req: Request): AuthContext | undefined {
  return (req as Request & { auth?: AuthContext }).auth;
}
