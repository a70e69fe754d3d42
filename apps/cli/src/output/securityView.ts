import { formatSize, type ApiToken, type AuditEvent, type Project, type QuotaName, type Role } from "@iaas/contracts";
import { formatAge, shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

/** What each role may do, in a few words. */
export const ROLE_SUMMARY: Record<Role, string> = {
  viewer: "reads its projects",
  operator: "reads, and creates and changes VMs, images, networks and backups in its projects",
  admin: "everything: also hosts, projects, quotas, tokens and the audit trail",
};

/** A token's state: revoked, expired (at `now`), or active. */
export function tokenState(token: ApiToken, now: Date): "active" | "revoked" | "expired" {
  if (token.revokedAt !== null) return "revoked";
  if (token.expiresAt !== null && Date.parse(token.expiresAt) <= now.getTime()) return "expired";
  return "active";
}

/** `iaas token list`: NAME ROLE PROJECT CREATED LAST-USED EXPIRES STATE ("*": every project). */
export function tokenTable(tokens: readonly ApiToken[], now: Date): string {
  return formatTable(
    ["NAME", "ROLE", "PROJECT", "CREATED", "LAST-USED", "EXPIRES", "STATE"],
    tokens.map((t) => [
      t.name,
      t.role,
      t.project ?? "*",
      formatAge(t.createdAt, now),
      t.lastUsedAt === null ? "never" : formatAge(t.lastUsedAt, now),
      t.expiresAt === null ? "never" : formatAge(t.expiresAt, now),
      tokenState(t, now),
    ]),
  );
}

/** `iaas token create`'s summary line: role, scope and expiry of the new token. */
export function tokenSummary(token: ApiToken): string {
  const scope = token.project === null ? "every project" : `project ${token.project}`;
  const expires = token.expiresAt === null ? "never expires" : `expires ${token.expiresAt}`;
  return `token ${token.name} created: role ${token.role}, ${scope}, ${expires}`;
}

/** The lines of `project show`, in order: label, quota member, and whether it is a size. */
const QUOTA_LINES: readonly { label: string; key: QuotaName; size: boolean }[] = [
  { label: "vms", key: "vms", size: false },
  { label: "vcpus", key: "vcpus", size: false },
  { label: "memory", key: "memoryBytes", size: true },
  { label: "disk", key: "diskBytes", size: true },
  { label: "images", key: "images", size: false },
  { label: "image-bytes", key: "imageBytes", size: true },
  { label: "networks", key: "networks", size: false },
  { label: "backups", key: "backups", size: false },
];

/** The compact "used/limit" of `project list` ("-": no limit). */
function usedOf(project: Project, key: QuotaName, size: boolean): string {
  const used = project.usage[key];
  const limit = project.quota[key];
  const show = (n: number | undefined): string => (n === undefined ? "-" : size ? formatSize(n) : String(n));
  return `${show(used)}/${show(limit)}`;
}

/** `iaas project list`: NAME VMS VCPUS MEMORY DISK NETWORKS CREATED DESCRIPTION, usage as used/limit. */
export function projectTable(projects: readonly Project[], now: Date): string {
  return formatTable(
    ["NAME", "VMS", "VCPUS", "MEMORY", "DISK", "NETWORKS", "CREATED", "DESCRIPTION"],
    projects.map((p) => [
      p.name,
      usedOf(p, "vms", false),
      usedOf(p, "vcpus", false),
      usedOf(p, "memoryBytes", true),
      usedOf(p, "diskBytes", true),
      usedOf(p, "networks", false),
      formatAge(p.createdAt, now),
      p.description ?? "-",
    ]),
  );
}

/**
 * `iaas project show` (and create, set-quota): the project, then a line per quota with what the
 * project uses against its limit: `vms         3 / 10`, `networks    1 / unlimited`.
 */
export function projectDetails(project: Project): string {
  const fields = formatFields([
    ["name", project.name],
    ["id", project.id],
    ["description", project.description],
    ["created", project.createdAt],
  ]);
  const lines = QUOTA_LINES.map(({ label, key, size }) => {
    const used = project.usage[key];
    const limit = project.quota[key];
    const show = (n: number): string => (size ? formatSize(n) : String(n));
    const over = used !== undefined && limit !== undefined && used > limit ? "  (over the limit)" : "";
    return `${label.padEnd(12)}${used === undefined ? "-" : show(used)} / ${limit === undefined ? "unlimited" : show(limit)}${over}`;
  });
  return `${fields}\n\nusage / quota:\n${lines.join("\n")}`;
}

/** `iaas audit list`: TIME ACTOR PROJECT OUTCOME STATUS ACTION PATH SOURCE, and JOB when any event started one. */
export function auditTable(events: readonly AuditEvent[]): string {
  const withJobs = events.some((e) => e.jobId !== null);
  const headers = ["TIME", "ACTOR", "PROJECT", "OUTCOME", "STATUS", "ACTION", "PATH", "SOURCE"];
  return formatTable(
    withJobs ? [...headers, "JOB"] : headers,
    events.map((e) => {
      const row = [e.at.replace(/\.\d+Z$/, "Z"), e.actorName, e.project ?? "-", e.outcome, String(e.status), e.action, `${e.method} ${e.path}`, e.sourceAddress ?? "-"];
      return withJobs ? [...row, e.jobId === null ? "-" : shortId(e.jobId)] : row;
    }),
  );
}
