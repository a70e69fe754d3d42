import { z } from "zod";
import { SizeInput } from "./resources.js";
import { PageCursor, PageLimit } from "./pagination.js";

/** The project everything belongs to unless told otherwise; it always exists. */
export const DEFAULT_PROJECT_ID = "00000000-0000-4000-8000-000000000001";
export const DEFAULT_PROJECT = "default";

/** Request header naming the project an unscoped (admin) token acts in; default `default`. */
export const PROJECT_HEADER = "x-iaas-project";

export const Role = z.enum(["viewer", "operator", "admin"]);
export type Role = z.infer<typeof Role>;

/** What a route needs: `read` (every role), `operate` (operator, admin), `admin`. */
export const Permission = z.enum(["read", "operate", "admin"]);
export type Permission = z.infer<typeof Permission>;

/** Whether a role may do what a permission guards. */
export function roleAllows(role: Role, permission: Permission): boolean {
  if (permission === "read") return true;
  if (permission === "operate") return role === "operator" || role === "admin";
  return role === "admin";
}

/** Project and token names: DNS-label-like, safe in tables and logs. */
export const ProjectName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "a project name is 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit");
export const TokenName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/, "a token name is 1-63 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");

/** Limits of a project; a missing one is unlimited. Sizes in bytes. */
export const ProjectQuota = z.object({
  vms: z.number().int().nonnegative().optional(),
  vcpus: z.number().int().nonnegative().optional(),
  memoryBytes: z.number().int().nonnegative().optional(),
  diskBytes: z.number().int().nonnegative().optional(),
  images: z.number().int().nonnegative().optional(),
  imageBytes: z.number().int().nonnegative().optional(),
  networks: z.number().int().nonnegative().optional(),
  backups: z.number().int().nonnegative().optional(),
});
export type ProjectQuota = z.infer<typeof ProjectQuota>;
export type QuotaName = keyof ProjectQuota;
export const QUOTA_NAMES: QuotaName[] = ["vms", "vcpus", "memoryBytes", "diskBytes", "images", "imageBytes", "networks", "backups"];

/** What a project uses now, in the quota's units. */
export type ProjectUsage = Record<QuotaName, number>;

/** `iaas project set-quota P --vms 10 --memory 32G …`: sizes as "32G"; `null` removes a limit. */
export const ProjectQuotaRequest = z.object({
  vms: z.number().int().nonnegative().nullable().optional(),
  vcpus: z.number().int().nonnegative().nullable().optional(),
  memory: SizeInput.nullable().optional(),
  disk: SizeInput.nullable().optional(),
  images: z.number().int().nonnegative().nullable().optional(),
  imageBytes: SizeInput.nullable().optional(),
  networks: z.number().int().nonnegative().nullable().optional(),
  backups: z.number().int().nonnegative().nullable().optional(),
});
export type ProjectQuotaRequest = z.infer<typeof ProjectQuotaRequest>;

export const ProjectCreateRequest = z.object({ name: ProjectName, description: z.string().max(1000).optional() });
export type ProjectCreateRequest = z.infer<typeof ProjectCreateRequest>;

export const Project = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  quota: ProjectQuota,
  usage: z.record(z.string(), z.number()),
  createdAt: z.string(),
});
export type Project = z.infer<typeof Project>;

export const TokenCreateRequest = z.object({
  name: TokenName,
  role: Role,
  /** Scope the token to one project (it sees nothing else); left out: every project (admin tokens). */
  project: z.string().min(1).optional(),
  /** "30d", "12h" … from now; left out: never expires. */
  expires: z.string().min(1).optional(),
});
export type TokenCreateRequest = z.infer<typeof TokenCreateRequest>;

export const ApiToken = z.object({
  id: z.string(),
  name: z.string(),
  /** The non-secret start of the token (`iaas_<prefix>_…`). */
  prefix: z.string(),
  role: Role,
  project: z.string().nullable(),
  createdBy: z.string().nullable(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export type ApiToken = z.infer<typeof ApiToken>;

/** The `201` of `POST /v1/tokens`: the only time the secret is shown. */
export const TokenCreated = z.object({ token: ApiToken, secret: z.string() });
export type TokenCreated = z.infer<typeof TokenCreated>;

export const AuditEvent = z.object({
  id: z.string(),
  at: z.string(),
  actorTokenId: z.string().nullable(),
  actorName: z.string(),
  project: z.string().nullable(),
  requestId: z.string().nullable(),
  sourceAddress: z.string().nullable(),
  userAgent: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  outcome: z.enum(["allowed", "denied", "failed"]),
  status: z.number().int(),
  action: z.string(),
  jobId: z.string().nullable(),
  detail: z.string().nullable(),
});
export type AuditEvent = z.infer<typeof AuditEvent>;

export const AuditListQuery = z.object({
  actor: z.string().min(1).optional(),
  project: z.string().min(1).optional(),
  /** ISO time, or a duration back from now ("1h", "7d"). */
  since: z.string().min(1).optional(),
  outcome: z.enum(["allowed", "denied", "failed"]).optional(),
  limit: PageLimit.default(100),
  cursor: PageCursor.optional(),
});
export type AuditListQuery = z.infer<typeof AuditListQuery>;

/** Tokens look like `iaas_<8 hex prefix>_<43 base64url secret>`; the prefix finds the row. */
export const TOKEN_PATTERN = /^iaas_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;
