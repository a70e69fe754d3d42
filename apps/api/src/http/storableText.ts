import type { RequestHandler } from "express";
import { IaasError } from "@iaas/contracts";

/** How deep a JSON body may nest: every request body of this API is a few levels deep. */
export const MAX_BODY_DEPTH = 32;

function refuse(where: string, why: string): IaasError {
  return new IaasError("VALIDATION_FAILED", `${where} ${why}`, { hint: "send text without NUL characters or unpaired UTF-16 surrogates, and JSON nested at most 32 levels" });
}

/** Why a string cannot be stored (Postgres text has no NUL; JSON columns refuse lone surrogates), or null. */
function unstorable(s: string): string | null {
  if (s.includes("\u0000")) return "contains a NUL character";
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) return "contains an unpaired UTF-16 surrogate";
  return null;
}

function checkValue(value: unknown, where: string, depth: number): void {
  if (depth > MAX_BODY_DEPTH) throw refuse(where, `is nested deeper than ${MAX_BODY_DEPTH} levels`);
  if (typeof value === "string") {
    const why = unstorable(value);
    if (why) throw refuse(where, why);
  } else if (Array.isArray(value)) {
    for (const item of value) checkValue(item, where, depth + 1);
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const why = unstorable(key);
      if (why) throw refuse(where, `has a key that ${why}`);
      checkValue(item, where, depth + 1);
    }
  }
}

/**
 * Refuses (400) text no layer below can take before any route sees it: a NUL or an unpaired
 * surrogate in the path, the query or a JSON body, and bodies nested absurdly deep (which would
 * overflow the stack of whatever walks them).
 */
export function storableText(): RequestHandler {
  return (req, _res, next) => {
    let path: string;
    try {
      path = decodeURIComponent(req.path);
    } catch {
      next(new IaasError("VALIDATION_FAILED", "the path has a malformed %-escape", { hint: "escape '%' as %25" }));
      return;
    }
    try {
      const why = unstorable(path);
      if (why) throw refuse("the path", why);
      checkValue(req.query, "the query", 0);
      if (req.body !== undefined) checkValue(req.body, "the request body", 0);
      next();
    } catch (err) {
      next(err);
    }
  };
}
