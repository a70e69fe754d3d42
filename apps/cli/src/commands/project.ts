import { InvalidArgumentError, type Command } from "commander";
import { ProjectName } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import type { ProjectQuotaInput } from "../client/ApiClient.js";
import { projectDetails, projectTable } from "../output/securityView.js";
import type { ContextFactory } from "./CommandContext.js";
import { size } from "./optionParsers.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

/** What a quota option's parser answers for "none" (commander turns a parser's null into ""). */
const NONE = { none: true } as const;
type None = typeof NONE;

interface QuotaOptions {
  vms?: number | None;
  vcpus?: number | None;
  memory?: string | None;
  disk?: string | None;
  images?: number | None;
  imageBytes?: string | None;
  networks?: number | None;
  backups?: number | None;
}

const PROJECT_HELP = `
Every VM, image, network and backup belongs to a project; "default" always exists. A token
scoped to a project sees only it; an unscoped token acts in the project named by --project,
IAAS_PROJECT or "project" in the config file (default: "default"). A project may have quotas;
a request that would exceed one is refused (exit 3, QUOTA_EXCEEDED), and \`vm create --dry-run\`
reports it.

Examples:
  iaas project create team-a --description "Team A's lab"
  iaas project set-quota team-a --vms 10 --vcpus 16 --memory 32G --disk 500G
  iaas project show team-a
  iaas --project team-a vm list
`;

const QUOTA_HELP = `
Each option sets one limit; "none" removes it (unlimited); limits not given are kept. A limit
below what the project uses already refuses only new requests.

Examples:
  iaas project set-quota team-a --vms 10 --vcpus 16 --memory 32G --disk 500G
  iaas project set-quota team-a --networks none --backups 50
`;

/** A whole number, or `none` (no limit: sent as null). */
function countOrNone(value: string): number | None {
  const text = value.trim().toLowerCase();
  if (text === "none") return NONE;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new InvalidArgumentError('expected a whole number, or "none" to remove the limit.');
  return Number(text);
}

/** A size such as 32G, or `none` (no limit: sent as null). */
function sizeOrNone(value: string): string | None {
  return value.trim().toLowerCase() === "none" ? NONE : size(value);
}

/** `iaas project …`: create, list, show, delete, set-quota (admin; show and list for everyone). */
export function registerProjectCommands(program: Command, ctxOf: ContextFactory): void {
  const project = program.command("project").description("create and manage projects (tenants) and their quotas").addHelpText("after", PROJECT_HELP);

  project
    .command("create")
    .description("create a project (admin)")
    .argument("<name>", "project name: lower-case letters, digits and '-'")
    .option("--description <text>", "what the project is for")
    .action(async (name: string, opts: { description?: string }, command: Command) => {
      const checked = ProjectName.safeParse(name);
      if (!checked.success) throw usageError(`invalid project name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      const ctx = ctxOf(command);
      const created = await ctx.client.createProject({ name, description: opts.description });
      if (ctx.out.json) ctx.out.printJson(created);
      else ctx.out.line(projectDetails(created));
    });

  addPagingOptions(project.command("list").alias("ls").description("list projects with their usage against their quotas (used/limit; - : no limit)"), "projects")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.projects(), pagingOf(opts));
      printPage(ctx, page, (projects) => projectTable(projects, ctx.now()));
    });

  project
    .command("show")
    .description("show a project: what it uses against each quota")
    .argument("<name>", "project name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getProject(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(projectDetails(found));
    });

  project
    .command("delete")
    .alias("rm")
    .description("delete a project (admin; refused while it holds VMs, images, networks, backups or active tokens, and for default: exit 3)")
    .argument("<name>", "project name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      await ctx.client.deleteProject(name);
      if (ctx.out.json) ctx.out.printJson({ name, deleted: true });
      else ctx.out.line(`project ${name} deleted`);
    });

  project
    .command("set-quota")
    .description("set a project's limits (admin); \"none\" removes one")
    .argument("<name>", "project name or id")
    .option("--vms <n>", "VMs", countOrNone)
    .option("--vcpus <n>", "virtual CPUs of all its VMs", countOrNone)
    .option("--memory <size>", "memory of all its VMs, e.g. 32G", sizeOrNone)
    .option("--disk <size>", "disk of all its VMs, e.g. 500G", sizeOrNone)
    .option("--images <n>", "images", countOrNone)
    .option("--image-bytes <size>", "stored size of all its images, e.g. 100G", sizeOrNone)
    .option("--networks <n>", "networks", countOrNone)
    .option("--backups <n>", "backups", countOrNone)
    .addHelpText("after", QUOTA_HELP)
    .action(async (name: string, opts: QuotaOptions, command: Command) => {
      const request: ProjectQuotaInput = {};
      for (const key of ["vms", "vcpus", "memory", "disk", "images", "imageBytes", "networks", "backups"] as const) {
        const value = opts[key];
        if (value !== undefined) Object.assign(request, { [key]: value === NONE ? null : value });
      }
      if (Object.keys(request).length === 0) {
        throw usageError("set-quota needs at least one limit", "e.g. iaas project set-quota team-a --vms 10 --memory 32G (\"none\" removes a limit)");
      }
      const ctx = ctxOf(command);
      const updated = await ctx.client.setProjectQuota(name, request);
      if (ctx.out.json) ctx.out.printJson(updated);
      else ctx.out.line(projectDetails(updated));
    });
}
