import type { Command } from "commander";
import { ExitCode, type Host } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { hostDetails, hostTable } from "../output/hostView.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { EVACUATE_HELP, evacuateHost } from "./hostEvacuate.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

const HOST_HELP = `
A drained host takes no new VMs or jobs; the VMs on it keep running. Drain a host before
maintenance, move or stop its VMs, and undrain it afterwards (admin). A host is offline after
IAAS_HOST_OFFLINE_SECONDS without a heartbeat, and lost after IAAS_HOST_LOST_SECONDS: its VMs then
show as unknown; evacuate it, or delete them with \`iaas vm delete NAME --force\`.

Examples:
  iaas host list
  iaas host drain hv2
  iaas host undrain hv2
  iaas host evacuate hv2 --dry-run
  iaas host evacuate hv2 --wait
`;

/** `iaas host list`, `iaas host show`, `iaas host drain`, `iaas host undrain`. */
export function registerHostCommands(program: Command, ctxOf: ContextFactory): void {
  const host = program.command("host").description("list, inspect and drain hypervisor hosts").addHelpText("after", HOST_HELP);

  addPagingOptions(host.command("list").alias("ls").description("list hosts: state, accelerator, allocated/total CPUs, memory and disk, VMs, networking (mode and underlay address), last heartbeat"), "hosts")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.hosts(), pagingOf(opts));
      printPage(ctx, page, (hosts) => hostTable(hosts, ctx.now()));
    });

  host
    .command("show")
    .description("show a host: resources, and its networking: mode (bridge or user), underlay address, capabilities and notes")
    .argument("<name>", "host name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await findHost(ctx, name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(hostDetails(found, ctx.now()));
    });

  host
    .command("drain")
    .description("drain a host: it takes no new VMs or jobs; its VMs keep running (admin)")
    .argument("<name>", "host name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      await drain(ctxOf(command), name, true);
    });

  host
    .command("evacuate")
    .description("drain a host and move its VMs to other hosts: stopped VMs of an online host migrate, the VMs of a lost host are recreated from their newest backups (admin)")
    .argument("<name>", "host name or id")
    .option("--dry-run", "show what would happen; drain nothing, move nothing")
    .option("--wait", "follow every job until it finishes (bounded by --timeout)")
    .addHelpText("after", EVACUATE_HELP)
    .action(async (name: string, opts: { dryRun?: boolean; wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const hosts = await ctx.client.listHosts();
      await evacuateHost(ctx, findIn(hosts, name), opts, hosts);
    });

  host
    .command("undrain")
    .description("undrain a host: it takes new VMs again (admin)")
    .argument("<name>", "host name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      await drain(ctxOf(command), name, false);
    });
}

/** A host by name or id (exit 3 when there is none). */
async function findHost(ctx: CommandContext, name: string): Promise<Host> {
  return findIn(await ctx.client.listHosts(), name);
}

function findIn(hosts: readonly Host[], name: string): Host {
  const found = hosts.find((h) => h.name === name) ?? hosts.find((h) => h.id === name);
  if (found === undefined) {
    throw new CliError(`host '${name}' not found`, { exitCode: ExitCode.NOT_FOUND_OR_CONFLICT, hint: "list hosts with `iaas host list`" });
  }
  return found;
}

/** POST /v1/hosts/:id/drain or /undrain, for a host named by name or id. */
async function drain(ctx: CommandContext, name: string, drained: boolean): Promise<void> {
  const found = await findHost(ctx, name);
  const answer = await ctx.client.drainHost(found.id, drained);
  if (ctx.out.json) ctx.out.printJson({ ...answer, name: found.name });
  else if (answer.drained) ctx.out.line(`host ${found.name} drained: it takes no new VMs; the VMs on it keep running`);
  else ctx.out.line(`host ${found.name} undrained: it takes new VMs again`);
}
