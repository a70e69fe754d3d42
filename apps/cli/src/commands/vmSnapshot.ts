import type { Command } from "commander";
import { SnapshotCreateRequest, SnapshotName } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import { snapshotTable } from "../output/snapshotView.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

const SNAPSHOT_HELP = `
A snapshot keeps the VM's disk as it is at that moment. A disk-only snapshot (the default) is
restored on a stopped VM (or with --restart: stop, restore, start again). A memory snapshot
(--memory, of a running VM) also keeps its RAM and device state: restoring it returns the VM to
that running instant.

Examples:
  iaas vm snapshot create web1 before-upgrade --wait
  iaas vm snapshot create web1 live-1 --memory --description "before the schema migration"
  iaas vm snapshot list web1
  iaas vm snapshot restore web1 before-upgrade --restart --wait
  iaas vm snapshot delete web1 before-upgrade
`;

interface SnapshotCreateOptions {
  memory?: boolean;
  description?: string;
  wait?: boolean;
}

interface SnapshotRestoreOptions {
  restart?: boolean;
  wait?: boolean;
}

/** Refuses (exit 2) a name the API would refuse, before calling it. */
function checkSnapshotName(name: string, vm: string, existing: boolean): void {
  const checked = SnapshotName.safeParse(name);
  if (checked.success) return;
  const rule = checked.error.issues.map((i) => i.message).join("; ");
  throw usageError(`invalid snapshot name '${name}': ${rule}`, existing ? `see the VM's snapshots with: iaas vm snapshot list ${vm}` : undefined);
}

/** `iaas vm snapshot create|list|restore|delete` (alias `snap`). */
export function registerVmSnapshotCommands(vm: Command, ctxOf: ContextFactory): void {
  const snapshot = vm
    .command("snapshot")
    .alias("snap")
    .description("take, list, restore and delete snapshots of a VM (its disk, optionally its running state)")
    .addHelpText("after", SNAPSHOT_HELP);

  snapshot
    .command("create")
    .description("take a snapshot of a running or stopped VM's disk; with --memory also of its RAM and device state")
    .argument("<name>", "VM name or id")
    .argument("<snapshot>", "snapshot name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    .option("--memory", "also save the RAM and device state of the running VM: restoring returns it to this running instant")
    .option("--description <text>", "a note kept with the snapshot (at most 1000 characters)")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", SNAPSHOT_HELP)
    .action(async (name: string, snap: string, opts: SnapshotCreateOptions, command: Command) => {
      const ctx = ctxOf(command);
      checkSnapshotName(snap, name, false);
      const description = SnapshotCreateRequest.shape.description.safeParse(opts.description);
      if (!description.success) throw usageError(`invalid --description: ${description.error.issues.map((i) => i.message).join("; ")}`);
      const accepted = await ctx.client.createSnapshot(name, { name: snap, memory: opts.memory === true, description: opts.description });
      const taken = accepted.snapshot;
      if (!ctx.out.json && taken !== null && taken !== undefined) {
        ctx.out.line(`snapshot ${taken.name} (${taken.kind === "memory" ? "disk and memory" : "disk only"}) of vm ${accepted.vm?.name ?? name}`);
      }
      await reportAcceptedJob(ctx, accepted, opts.wait === true);
    });

  addPagingOptions(snapshot.command("list").alias("ls").description("list the VM's snapshots, oldest first (SIZE: the saved memory state of a memory snapshot)"), "snapshots")
    .argument("<name>", "VM name or id")
    .action(async (name: string, opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.snapshots(name), pagingOf(opts));
      printPage(ctx, page, (snapshots) => snapshotTable(snapshots, ctx.now()));
    });

  snapshot
    .command("restore")
    .description("return the VM to a snapshot: its disk, and for a memory snapshot its running state (what was written since is lost)")
    .argument("<name>", "VM name or id")
    .argument("<snapshot>", "snapshot name (see `iaas vm snapshot list`)")
    .option("--restart", "for a disk-only snapshot of a running VM: stop it, restore, and start it again")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", SNAPSHOT_HELP)
    .action(async (name: string, snap: string, opts: SnapshotRestoreOptions, command: Command) => {
      const ctx = ctxOf(command);
      checkSnapshotName(snap, name, true);
      await reportAcceptedJob(ctx, await ctx.client.restoreSnapshot(name, snap, { restart: opts.restart === true }), opts.wait === true);
    });

  snapshot
    .command("delete")
    .alias("rm")
    .description("delete a snapshot (the VM itself is not changed)")
    .argument("<name>", "VM name or id")
    .argument("<snapshot>", "snapshot name (see `iaas vm snapshot list`)")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, snap: string, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      checkSnapshotName(snap, name, true);
      await reportAcceptedJob(ctx, await ctx.client.deleteSnapshot(name, snap), opts.wait === true);
    });
}
