import { AsyncLocalStorage } from "node:async_hooks";
import { DEFAULT_PROJECT_ID } from "@iaas/contracts";
import type { AuthContext } from "./AuthContext.js";

/** Who a request acts as and in which project, for every query the request makes. */
export interface RequestScope {
  auth: AuthContext;
  projectId: string;
  projectName: string;
  requestId: string | null;
  sourceAddress: string | null;
  userAgent: string | null;
}

const storage = new AsyncLocalStorage<RequestScope>();

/** Runs `fn` (and everything it awaits) inside a request's scope. */
export function runInScope<T>(scope: RequestScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The current request's scope; undefined in background work (maintenance, schedules). */
export function currentScope(): RequestScope | undefined {
  return storage.getStore();
}

/** The project new rows belong to: the request's, else `default`. */
export function currentProjectId(): string {
  return storage.getStore()?.projectId ?? DEFAULT_PROJECT_ID;
}

/**
 * A Prisma `where` fragment limiting rows to the request's project (nothing outside it is ever
 * found, so it is 404, never a hint that it exists); empty in background work.
 */
export function inProject(): { projectId?: string } {
  const scope = storage.getStore();
  return scope ? { projectId: scope.projectId } : {};
}
