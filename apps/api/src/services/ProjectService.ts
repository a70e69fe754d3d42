import {
  DEFAULT_PROJECT_ID,
  formatSize,
  IaasError,
  looksLikeUuid,
  parseSize,
  ProjectQuota,
  QUOTA_NAMES,
  type ProjectCreateRequest,
  type ProjectQuotaRequest,
  type ProjectUsage,
  type QuotaName,
} from "@iaas/contracts";
import { isUniqueViolation, type Prisma, type PrismaClient, type Project } from "@iaas/db";
import { currentScope } from "../auth/scope.js";

type Db = PrismaClient | Prisma.TransactionClient;

const BYTES: ReadonlySet<QuotaName> = new Set(["memoryBytes", "diskBytes", "imageBytes"]);
const LABEL: Record<QuotaName, string> = {
  vms: "VMs",
  vcpus: "vCPUs",
  memoryBytes: "memory",
  diskBytes: "disk",
  images: "images",
  imageBytes: "image bytes",
  networks: "networks",
  backups: "backups",
};
const show = (q: QuotaName, n: number) => (BYTES.has(q) ? formatSize(n) : String(n));

/** What a project uses now, in its quotas' units. */
export async function projectUsage(db: Db, projectId: string): Promise<ProjectUsage> {
  const [vms, images, networks, backups] = await Promise.all([
    db.vm.aggregate({ where: { projectId }, _count: { _all: true }, _sum: { cpus: true, memoryBytes: true, diskBytes: true } }),
    db.image.aggregate({ where: { projectId }, _count: { _all: true }, _sum: { storedSize: true } }),
    db.network.count({ where: { projectId } }),
    db.backup.count({ where: { projectId } }),
  ]);
  return {
    vms: vms._count._all,
    vcpus: vms._sum.cpus ?? 0,
    memoryBytes: Number(vms._sum.memoryBytes ?? 0n),
    diskBytes: Number(vms._sum.diskBytes ?? 0n),
    images: images._count._all,
    imageBytes: Number(images._sum.storedSize ?? 0n),
    networks,
    backups,
  };
}

/** Why `demand` more would pass the project's quotas (empty when it fits). */
export function quotaProblems(projectName: string, quota: ProjectQuota, usage: ProjectUsage, demand: Partial<ProjectUsage>): string[] {
  const problems: string[] = [];
  for (const name of QUOTA_NAMES) {
    const limit = quota[name];
    const more = demand[name] ?? 0;
    if (limit === undefined || more <= 0) continue;
    if (usage[name] + more > limit) {
      problems.push(`quota ${name} (${LABEL[name]}) of project '${projectName}' is ${show(name, limit)}: ${show(name, usage[name])} in use, this needs ${show(name, more)} more`);
    }
  }
  return problems;
}

/**
 * Checks a demand against the quotas of the project, in the submitting transaction: the project
 * row is locked (FOR UPDATE) first, so two requests of one project are judged one after the other
 * and cannot both take the last unit. QUOTA_EXCEEDED names the quota, its limit and the use.
 */
export async function enforceQuota(tx: Prisma.TransactionClient, projectId: string, demand: Partial<ProjectUsage>): Promise<void> {
  if (!QUOTA_NAMES.some((n) => (demand[n] ?? 0) > 0)) return;
  await tx.$queryRaw`SELECT id::text FROM "Project" WHERE id = ${projectId}::uuid FOR UPDATE`;
  const project = await tx.project.findUniqueOrThrow({ where: { id: projectId } });
  const quota = ProjectQuota.parse(project.quota);
  if (!QUOTA_NAMES.some((n) => quota[n] !== undefined && (demand[n] ?? 0) > 0)) return;
  const problems = quotaProblems(project.name, quota, await projectUsage(tx, projectId), demand);
  if (problems.length > 0) {
    throw new IaasError("QUOTA_EXCEEDED", problems.join("; "), { hint: `free resources in project '${project.name}', or ask an admin to raise it (\`iaas project set-quota ${project.name} ...\`)` });
  }
}

/** The quota verdict for a dry run (empty: it fits). */
export async function quotaVerdict(db: Db, projectId: string, demand: Partial<ProjectUsage>): Promise<string[]> {
  const project = await db.project.findUniqueOrThrow({ where: { id: projectId } });
  return quotaProblems(project.name, ProjectQuota.parse(project.quota), await projectUsage(db, projectId), demand);
}

/** Projects: create, list, show (with usage against quota), set quotas, delete. */
export class ProjectService {
  constructor(private readonly db: PrismaClient) {}

  /** A project by name or id; a project-scoped token only ever finds its own. */
  async find(ref: string): Promise<Project> {
    const found = looksLikeUuid(ref) ? await this.db.project.findUnique({ where: { id: ref.toLowerCase() } }) : await this.db.project.findUnique({ where: { name: ref } });
    const scoped = currentScope()?.auth.projectId ?? null;
    if (!found || (scoped !== null && found.id !== scoped)) throw new IaasError("NOT_FOUND", `project '${ref}' not found`, { hint: "run `iaas project list`" });
    return found;
  }

  /** The projects the caller sees; `page` adds ordering and paging to the filter. */
  async list(page: (where: Prisma.ProjectWhereInput) => Prisma.ProjectFindManyArgs): Promise<Project[]> {
    const scoped = currentScope()?.auth.projectId ?? null;
    return this.db.project.findMany(page(scoped ? { id: scoped } : {}));
  }

  async create(req: ProjectCreateRequest): Promise<Project> {
    try {
      return await this.db.project.create({ data: { name: req.name, description: req.description ?? null } });
    } catch (err) {
      if (isUniqueViolation(err, "name")) throw new IaasError("NAME_TAKEN", `a project named '${req.name}' already exists`, { hint: "choose another name" });
      throw err;
    }
  }

  async setQuota(ref: string, req: ProjectQuotaRequest): Promise<Project> {
    const project = await this.find(ref);
    const quota: ProjectQuota = { ...ProjectQuota.parse(project.quota) };
    const size = (v: string | number, what: string) => {
      try {
        return typeof v === "number" ? v : parseSize(v, "G");
      } catch (err) {
        throw new IaasError("VALIDATION_FAILED", `invalid --${what}: ${(err as Error).message}`, { hint: "give a size like 32G" });
      }
    };
    const set = (name: QuotaName, value: number | null | undefined) => {
      if (value === undefined) return;
      if (value === null) delete quota[name];
      else quota[name] = value;
    };
    set("vms", req.vms);
    set("vcpus", req.vcpus);
    set("memoryBytes", req.memory === undefined || req.memory === null ? req.memory : size(req.memory, "memory"));
    set("diskBytes", req.disk === undefined || req.disk === null ? req.disk : size(req.disk, "disk"));
    set("images", req.images);
    set("imageBytes", req.imageBytes === undefined || req.imageBytes === null ? req.imageBytes : size(req.imageBytes, "image-bytes"));
    set("networks", req.networks);
    set("backups", req.backups);
    return this.db.project.update({ where: { id: project.id }, data: { quota } });
  }

  async remove(ref: string): Promise<void> {
    const project = await this.find(ref);
    if (project.id === DEFAULT_PROJECT_ID) throw new IaasError("INVALID_STATE", "the default project cannot be deleted", { hint: "delete other projects only" });
    const usage = await projectUsage(this.db, project.id);
    const tokens = await this.db.apiToken.count({ where: { projectId: project.id, revokedAt: null } });
    const held = [...QUOTA_NAMES.filter((n) => n !== "vcpus" && n !== "memoryBytes" && n !== "diskBytes" && n !== "imageBytes" && usage[n] > 0).map((n) => `${usage[n]} ${LABEL[n]}`), ...(tokens > 0 ? [`${tokens} tokens`] : [])];
    if (held.length > 0) {
      throw new IaasError("INVALID_STATE", `project '${project.name}' still has ${held.join(", ")}`, { hint: "delete them (and revoke its tokens) first" });
    }
    const [, removed] = await this.db.$transaction([this.db.apiToken.deleteMany({ where: { projectId: project.id } }), this.db.project.deleteMany({ where: { id: project.id } })]);
    if (removed.count === 0) throw new IaasError("NOT_FOUND", `project '${ref}' not found`, { hint: "it was deleted meanwhile" });
  }
}
