import type { Command } from "commander";
import { ExitCode } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { hostDetails, hostTable } from "../output/hostView.js";
import type { ContextFactory } from "./CommandContext.js";

/** `iaas host list`, `iaas host show`. */
export function registerHostCommands(program: Command, ctxOf: ContextFactory): void {
  const host = program.command("host").description("list and inspect hypervisor hosts");

  host
    .command("list")
    .alias("ls")
    .description("list hosts: state, accelerator, allocated/total CPUs, memory and disk, VMs, networking (mode and underlay address), last heartbeat")
    .action(async (_opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const hosts = await ctx.client.listHosts();
      if (ctx.out.json) ctx.out.printJson({ items: hosts });
      else ctx.out.line(hostTable(hosts, ctx.now()));
    });

  host
    .command("show")
    .description("show a host: resources, and its networking: mode (bridge or user), underlay address, capabilities and notes")
    .argument("<name>", "host name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const hosts = await ctx.client.listHosts();
      const found = hosts.find((h) => h.name === name) ?? hosts.find((h) => h.id === name);
      if (found === undefined) {
        throw new CliError(`host '${name}' not found`, { exitCode: ExitCode.NOT_FOUND_OR_CONFLICT, hint: "list hosts with `iaas host list`" });
      }
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(hostDetails(found, ctx.now()));
    });
}
