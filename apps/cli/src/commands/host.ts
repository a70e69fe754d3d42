import type { Command } from "commander";
import { hostTable } from "../output/hostView.js";
import type { ContextFactory } from "./CommandContext.js";

/** `iaas host list`. */
export function registerHostCommands(program: Command, ctxOf: ContextFactory): void {
  const host = program.command("host").description("list hypervisor hosts");

  host
    .command("list")
    .alias("ls")
    .description("list hosts: state, accelerator, allocated/total CPUs, memory and disk, VMs, last heartbeat")
    .action(async (_opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const hosts = await ctx.client.listHosts();
      if (ctx.out.json) ctx.out.printJson({ items: hosts });
      else ctx.out.line(hostTable(hosts, ctx.now()));
    });
}
