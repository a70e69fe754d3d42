import { Router, type RequestHandler } from "express";
import { IaasError, roleAllows, type Permission } from "@iaas/contracts";
import { authOf } from "./AuthContext.js";

/**
 * Every /v1 route and what it needs. A route registered through `guardedRouter` without an entry
 * here makes the API fail to start, and the authorization tests walk this table: no route can be
 * added without a rule. `admin` routes also need a token not scoped to a project.
 */
export const ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  "GET /v1/vms": "read",
  "POST /v1/vms": "operate",
  "GET /v1/vms/:ref": "read",
  "PATCH /v1/vms/:ref": "operate",
  "DELETE /v1/vms/:ref": "operate",
  "POST /v1/vms/:ref/start": "operate",
  "POST /v1/vms/:ref/stop": "operate",
  "POST /v1/vms/:ref/reboot": "operate",
  "POST /v1/vms/:ref/export": "operate",
  "POST /v1/vms/:ref/nics": "operate",
  "DELETE /v1/vms/:ref/nics/:nic": "operate",
  "GET /v1/vms/:ref/ports": "read",
  "POST /v1/vms/:ref/ports": "operate",
  "DELETE /v1/vms/:ref/ports/:hostPort": "operate",
  "POST /v1/vms/:ref/probe": "operate",
  "POST /v1/vms/:ref/clone": "operate",
  "POST /v1/vms/:ref/migrate": "operate",
  "POST /v1/vms/:ref/resize": "operate",
  "GET /v1/vms/:ref/snapshots": "read",
  "POST /v1/vms/:ref/snapshots": "operate",
  "POST /v1/vms/:ref/snapshots/:name/restore": "operate",
  "DELETE /v1/vms/:ref/snapshots/:name": "operate",
  "POST /v1/vms/:ref/backups": "operate",
  "GET /v1/vms/:ref/backup-schedule": "read",
  "PUT /v1/vms/:ref/backup-schedule": "operate",
  "DELETE /v1/vms/:ref/backup-schedule": "operate",
  "GET /v1/vms/:ref/console": "read",
  "GET /v1/backups": "read",
  "GET /v1/backups/:id": "read",
  "POST /v1/backups/:id/verify": "operate",
  "DELETE /v1/backups/:id": "operate",
  "POST /v1/backups/:id/restore": "operate",
  "POST /v1/backups/:id/vms": "operate",
  "GET /v1/networks": "read",
  "POST /v1/networks": "operate",
  "GET /v1/networks/:ref": "read",
  "DELETE /v1/networks/:ref": "operate",
  "GET /v1/images": "read",
  "POST /v1/images": "operate",
  "GET /v1/images/:ref": "read",
  "PATCH /v1/images/:ref": "admin",
  "HEAD /v1/images/:ref/file": "operate",
  "PUT /v1/images/:ref/file": "operate",
  "POST /v1/images/:ref/export": "operate",
  "POST /v1/images/:ref/verify": "operate",
  "DELETE /v1/images/:ref": "operate",
  "GET /v1/exports": "read",
  "GET /v1/exports/:id": "read",
  "GET /v1/exports/:id/file": "read",
  "DELETE /v1/exports/:id": "operate",
  "GET /v1/jobs": "read",
  "GET /v1/jobs/:id": "read",
  "GET /v1/jobs/:id/wait": "read",
  "GET /v1/jobs/:id/events": "read",
  "POST /v1/jobs/:id/cancel": "operate",
  "GET /v1/hosts": "read",
  "POST /v1/hosts/:id/drain": "admin",
  "POST /v1/hosts/:id/undrain": "admin",
  "POST /v1/hosts/:id/evacuate": "admin",
  "GET /v1/projects": "read",
  "POST /v1/projects": "admin",
  "GET /v1/projects/:ref": "read",
  "PUT /v1/projects/:ref/quota": "admin",
  "DELETE /v1/projects/:ref": "admin",
  "GET /v1/tokens": "admin",
  "POST /v1/tokens": "admin",
  "DELETE /v1/tokens/:name": "admin",
  "GET /v1/audit": "admin",
  "GET /v1/whoami": "read",
  "POST /v1/bench/noop": "operate",
};

/** Every route a guardedRouter registered ("METHOD /path"), for the authorization tests. */
export const REGISTERED_ROUTES = new Set<string>();

/** What a route needs; throws (the API does not start) for a route without a rule. */
export function permissionOf(method: string, path: string): Permission {
  const key = `${method.toUpperCase()} ${path}`;
  REGISTERED_ROUTES.add(key);
  const found = ROUTE_PERMISSIONS[key];
  if (found === undefined) throw new Error(`route ${key} has no permission rule: add it to ROUTE_PERMISSIONS in apps/api/src/auth/permissions.ts`);
  return found;
}

/** Refuses (403 FORBIDDEN) a request whose token's role does not allow `permission`. */
export function requirePermission(permission: Permission): RequestHandler {
  const check: RequestHandler = (req, _res, next) => {
    const auth = authOf(req);
    if (!roleAllows(auth.role, permission)) {
      next(new IaasError("FORBIDDEN", `token '${auth.tokenName}' (role ${auth.role}) may not ${req.method} ${req.baseUrl}${req.path}: it needs the ${permission === "operate" ? "operator" : permission === "admin" ? "admin" : "viewer"} role`, {
        hint: "ask an admin for a token with that role (`iaas token create NAME --role ...`)",
      }));
      return;
    }
    if (permission === "admin" && auth.projectId !== null) {
      next(new IaasError("FORBIDDEN", `token '${auth.tokenName}' is scoped to one project: it may not manage hosts, projects, tokens or the audit trail`, {
        hint: "use an admin token without --project",
      }));
      return;
    }
    next();
  };
  return check;
}

type Method = "get" | "post" | "put" | "patch" | "delete" | "head";

/**
 * A Router whose every route first checks the permission ROUTE_PERMISSIONS gives it (looked up at
 * registration from `base` + the route's path).
 */
export function guardedRouter(base: string): Router {
  const router = Router();
  for (const method of ["get", "post", "put", "patch", "delete", "head"] as Method[]) {
    const register = router[method].bind(router) as (path: string, ...handlers: RequestHandler[]) => Router;
    (router as unknown as Record<Method, unknown>)[method] = (path: string, ...handlers: RequestHandler[]) =>
      register(path, requirePermission(permissionOf(method, path === "/" ? base : `${base}${path}`)), ...handlers);
  }
  return router;
}
