import type { Command } from "commander";
import { usageError } from "../CliError.js";
import { hostNames, vmDetails } from "../output/vmView.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { intBetween, size } from "./optionParsers.js";

/** `iaas vm resize` (grow the disk, live or stopped) and `iaas vm set` (CPUs and memory of a stopped VM). */
export function registerVmChangeCommands(vm: Command, ctxOf: ContextFactory): void {
  vm.command("resize")
    .description("grow a VM's disk (never shrinks); a running VM's guest sees the new size at once")
    .argument("<name>", "VM name or id")
    .requiredOption("--disk <size>", "the new disk size, larger than now, e.g. 20G", size)
    .option("--wait", "follow the job until it finishes (bounded by --timeout)")
    .action(async (name: string, opts: { disk: string; wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.resizeVm(name, opts.disk), opts.wait === true);
    });

  vm.command("set")
    .description("change a stopped VM's CPUs and memory (checked against its host's room; used from its next start)")
    .argument("<name>", "VM name or id")
    .option("--cpus <n>", "virtual CPUs (1-64)", intBetween(1, 64))
    .option("--memory <size>", "memory, e.g. 1G", size)
    .action(async (name: string, opts: { cpus?: number; memory?: string }, command: Command) => {
      const ctx = ctxOf(command);
      if (opts.cpus === undefined && opts.memory === undefined) throw usageError("give --cpus or --memory (or both)", `e.g. iaas vm set ${name} --cpus 2 --memory 1G`);
      const changed = await ctx.client.setVm(name, { ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}), ...(opts.memory !== undefined ? { memory: opts.memory } : {}) });
      if (ctx.out.json) ctx.out.printJson(changed);
      else ctx.out.line(vmDetails(changed, hostNames(await ctx.client.listHosts().catch(() => [])), ctx.now()));
    });
}
