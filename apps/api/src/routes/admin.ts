import type { Router } from "express";
import {
  AuditListQuery,
  IaasError,
  ImagePublicRequest,
  parseDuration,
  ProjectCreateRequest,
  ProjectQuota,
  ProjectQuotaRequest,
  TokenCreateRequest,
  type ApiToken as ApiTokenDto,
  type AuditEvent as AuditEventDto,
  type Project as ProjectDto,
  type ApiTokenList,
  type AuditEventList,
  type HostDrained,
  type ProjectList,
  type TokenCreated,
  type Whoami,
} from "@iaas/contracts";
import { isUniqueViolation, type ApiToken, type AuditEvent, type Prisma, type PrismaClient, type Project } from "@iaas/db";
import { authOf } from "../auth/AuthContext.js";
import { guardedRouter } from "../auth/permissions.js";
import { currentScope } from "../auth/scope.js";
import { generateToken } from "../auth/tokens.js";
import { validate } from "../http/validate.js";
import { projectUsage, type ProjectService } from "../services/ProjectService.js";
import { findImage } from "../services/resolve.js";
import { toImageDto } from "../services/dto.js";
import { BY_NAME, OLDEST_FIRST, pageArgs, pageOf, pageRequest, pageResult, type SortKey } from "../http/paginate.js";

async function projectDto(db: PrismaClient, p: Project): Promise<ProjectDto> {
  return { id: p.id, name: p.name, description: p.description, quota: ProjectQuota.parse(p.quota), usage: await projectUsage(db, p.id), createdAt: p.createdAt.toISOString() };
}

function tokenDto(t: ApiToken & { project: Project | null }): ApiTokenDto {
  return {
    id: t.id,
    name: t.name,
    prefix: `iaas_${t.prefix}`,
    role: t.role,
    project: t.project?.name ?? null,
    createdBy: t.createdBy,
    createdAt: t.createdAt.toISOString(),
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    expiresAt: t.expiresAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

function auditDto(a: AuditEvent, projects: Map<string, string>): AuditEventDto {
  return {
    id: a.id.toString(),
    at: a.at.toISOString(),
    actorTokenId: a.actorTokenId,
    actorName: a.actorName,
    project: a.projectId ? (projects.get(a.projectId) ?? a.projectId) : null,
    requestId: a.requestId,
    sourceAddress: a.sourceAddress,
    userAgent: a.userAgent,
    method: a.method,
    path: a.path,
    outcome: a.outcome,
    status: a.status,
    action: a.action,
    jobId: a.jobId,
    detail: a.detail,
  };
}

/** When "--since" starts: an ISO time, or a duration back from now ("1h", "7d"). */
function sinceOf(input: string): Date {
  const asDate = new Date(input);
  if (/^\d{4}-\d{2}-\d{2}/.test(input) && !Number.isNaN(asDate.getTime())) return asDate;
  try {
    const back = new Date(Date.now() - parseDuration(input));
    if (Number.isNaN(back.getTime()) || back.getFullYear() < 1970) throw new RangeError("too far back");
    return back;
  } catch {
    throw new IaasError("VALIDATION_FAILED", `--since '${input}' is neither an ISO time nor a duration`, { hint: "e.g. --since 1h, --since 7d or --since 2026-12-01T00:00:00Z" });
  }
}

/** The audit trail, newest first (its ids grow). */
const AUDIT_KEYS: readonly SortKey[] = [{ field: "id", dir: "desc", kind: "bigint" }];

/** Projects, tokens, the audit trail, `whoami`; host drain; making an image public. */
export function adminRoutes(deps: { db: PrismaClient; projects: ProjectService }): { projects: Router; tokens: Router; audit: Router; whoami: Router; hostAdmin: Router; imageAdmin: Router } {
  const { db, projects } = deps;

  const projectRouter = guardedRouter("/v1/projects");
  projectRouter.get("/", async (req, res) => {
    const page = pageRequest(req.query, BY_NAME);
    const { items, nextCursor } = pageResult(await projects.list((where) => pageArgs(where, BY_NAME, page)), BY_NAME, page);
    res.json({ items: await Promise.all(items.map((p) => projectDto(db, p))), nextCursor } satisfies ProjectList);
  });
  projectRouter.post("/", async (req, res) => {
    const created = await projects.create(validate(ProjectCreateRequest, req.body, "project"));
    res.status(201).json(await projectDto(db, created));
  });
  projectRouter.get("/:ref", async (req, res) => {
    res.json(await projectDto(db, await projects.find(req.params.ref)));
  });
  projectRouter.put("/:ref/quota", async (req, res) => {
    res.json(await projectDto(db, await projects.setQuota(req.params.ref, validate(ProjectQuotaRequest, req.body, "quota"))));
  });
  projectRouter.delete("/:ref", async (req, res) => {
    await projects.remove(req.params.ref);
    res.status(204).end();
  });

  const tokenRouter = guardedRouter("/v1/tokens");
  tokenRouter.get("/", async (req, res) => {
    const page = pageRequest(req.query, OLDEST_FIRST);
    const rows = await db.apiToken.findMany({ ...pageArgs<Prisma.ApiTokenWhereInput>({}, OLDEST_FIRST, page), include: { project: true } });
    const { items, nextCursor } = pageResult(rows, OLDEST_FIRST, page);
    res.json({ items: items.map(tokenDto), nextCursor } satisfies ApiTokenList);
  });
  tokenRouter.post("/", async (req, res) => {
    const body = validate(TokenCreateRequest, req.body, "token");
    const project = body.project !== undefined ? await projects.find(body.project) : null;
    let expiresAt: Date | null = null;
    if (body.expires !== undefined) {
      try {
        expiresAt = new Date(Date.now() + parseDuration(body.expires));
      } catch (err) {
        throw new IaasError("VALIDATION_FAILED", `invalid --expires: ${(err as Error).message}`, { hint: "e.g. --expires 30d" });
      }
    }
    const { token, prefix, hash } = generateToken();
    try {
      const created = await db.apiToken.create({
        data: { name: body.name, prefix, hash, role: body.role, projectId: project?.id ?? null, expiresAt, createdBy: authOf(req).tokenName },
        include: { project: true },
      });
      res.status(201).json({ token: tokenDto(created), secret: token } satisfies TokenCreated);
    } catch (err) {
      if (isUniqueViolation(err, "name")) throw new IaasError("NAME_TAKEN", `a token named '${body.name}' already exists`, { hint: "choose another name, or revoke the old one (`iaas token revoke NAME`)" });
      throw err;
    }
  });
  tokenRouter.delete("/:name", async (req, res) => {
    const found = await db.apiToken.findUnique({ where: { name: req.params.name } });
    if (!found) throw new IaasError("NOT_FOUND", `token '${req.params.name}' not found`, { hint: "run `iaas token list`" });
    if (found.revokedAt === null) await db.apiToken.update({ where: { id: found.id }, data: { revokedAt: new Date() } });
    res.status(204).end();
  });

  const auditRouter = guardedRouter("/v1/audit");
  auditRouter.get("/", async (req, res) => {
    const q = validate(AuditListQuery, req.query, "audit query");
    const where: Prisma.AuditEventWhereInput = {};
    if (q.actor) where.actorName = q.actor;
    if (q.project) where.projectId = (await projects.find(q.project)).id;
    if (q.since) where.at = { gte: sinceOf(q.since) };
    if (q.outcome) where.outcome = q.outcome;
    const page = pageOf(q.limit, q.cursor, AUDIT_KEYS);
    const { items, nextCursor } = pageResult(await db.auditEvent.findMany(pageArgs(where, AUDIT_KEYS, page)), AUDIT_KEYS, page);
    const names = new Map((await db.project.findMany({ select: { id: true, name: true } })).map((p) => [p.id, p.name]));
    res.json({ items: items.map((r) => auditDto(r, names)), nextCursor } satisfies AuditEventList);
  });

  const whoami = guardedRouter("/v1/whoami");
  whoami.get("/", (req, res) => {
    const auth = authOf(req);
    const scope = currentScope();
    res.json({ token: auth.tokenName, tokenId: auth.tokenId, role: auth.role, scopedToProject: auth.projectId !== null, project: scope?.projectName ?? null } satisfies Whoami);
  });

  const hostAdmin = guardedRouter("/v1/hosts");
  const drain = (drained: boolean) => async (req: import("express").Request<{ id: string }>, res: import("express").Response) => {
    const { count } = await db.host.updateMany({ where: { id: req.params.id }, data: { drained } });
    if (count === 0) throw new IaasError("NOT_FOUND", `host '${req.params.id}' not found`, { hint: "run `iaas host list`" });
    res.json({ id: req.params.id, drained } satisfies HostDrained);
  };
  hostAdmin.post("/:id/drain", drain(true));
  hostAdmin.post("/:id/undrain", drain(false));

  const imageAdmin = guardedRouter("/v1/images");
  imageAdmin.patch("/:ref", async (req, res) => {
    const body = validate(ImagePublicRequest, req.body, "image change");
    const image = await findImage(db, req.params.ref);
    const updated = await db.image.update({ where: { id: image.id }, data: { public: body.public } });
    res.json(toImageDto(updated));
  });

  return { projects: projectRouter, tokens: tokenRouter, audit: auditRouter, whoami, hostAdmin, imageAdmin };
}
