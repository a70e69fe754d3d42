import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether a scrape may read `/metrics`: always when no IAAS_METRICS_TOKEN is set (Prometheus'
 * usual unauthenticated scrape, on an address the operator keeps private), else only with
 * `Authorization: Bearer <token>` (Prometheus `authorization: { credentials: ... }`), compared in
 * constant time.
 */
export function metricsScrapeAllowed(authorization: string | undefined, token: string | undefined): boolean {
  if (token === undefined || token === "") return true;
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
  if (presented === undefined) return false;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(presented), digest(token));
}
