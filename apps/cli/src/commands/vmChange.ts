import type { Command } from "commander";
import { VmName } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import { vmDetails } from "../output/vmView.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { intBetween, size } from "./optionParsers.js";
import { vmHostNames } from "./vmHostNames.js";

/**
 * `iaas vm clone` (a new VM from a stopped VM or a snapshot), `iaas vm resize` (grow the disk, live
 * or stopped) and `iaas vm set` (CPUs and memory of a stopped VM).
 */
export function registerVmChangeCommands(vm: Command, ctxOf: ContextFactory): void {
  vm.command("clone")
    .description("make a new VM from a stopped VM's disk, or from one of its snapshots (new MACs, addresses and cloud-init identity)")
    .argument("<source>", "the VM to clone (name or id)")
    .argument("<name>", "the new VM's name")
    .option("--snapshot <snap>", "clone this snapshot of the source (needed while the source runs)")
    .option("--host <host>", "make the clone on another host (its disk goes through the shared store; default: the source's host)")
    .option("--start", "start the clone once it is made")
    .option("--wait", "follow the job until it finishes (bounded by --timeout)")
    .action(async (source: string, name: string, opts: { snapshot?: string; host?: string; start?: boolean; wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const checked = VmName.safeParse(name);
      if (!checked.success) throw usageError(`invalid VM name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      const req = { name, start: opts.start === true, ...(opts.snapshot !== undefined ? { snapshot: opts.snapshot } : {}), ...(opts.host !== undefined ? { host: opts.host } : {}) };
      await reportAcceptedJob(ctx, await ctx.client.cloneVm(source, req), opts.wait === true);
    });

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
      else ctx.out.line(vmDetails(changed, await vmHostNames(ctx.client, [changed]), ctx.now()));
    });
}
