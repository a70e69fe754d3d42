import type { Command } from "commander";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";

const MIGRATE_HELP = `
A stopped VM keeps its id, name, MACs and addresses. Its host copies the disk (with its snapshots)
into the shared image store, and the new host takes it over (two jobs; --wait follows both).
A VM whose host is lost is recreated from its newest ready backup instead: what it wrote after
that backup is lost with the host. The old host's copy is removed when its worker next runs.

Examples:
  iaas vm migrate web1 --wait
  iaas vm migrate web1 --host hv2 --wait
`;

/** `iaas vm migrate NAME [--host H]`: POST /v1/vms/:ref/migrate. */
export function registerVmMigrateCommand(vm: Command, ctxOf: ContextFactory): void {
  vm.command("migrate")
    .description("move a stopped VM to another host (from its newest backup when its host is lost)")
    .argument("<name>", "VM name or id")
    .option("--host <host>", "the host to move it to (name or id; default: the scheduler's choice)")
    .option("--wait", "follow the jobs until the VM is on its new host (bounded by --timeout)")
    .addHelpText("after", MIGRATE_HELP)
    .action(async (name: string, opts: { host?: string; wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.migrateVm(name, opts.host === undefined ? {} : { host: opts.host }), opts.wait === true);
    });
}
