import type { Command } from "commander";
import { backupDetails, backupTable } from "../output/backupView.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

/** What backups are and how they are used; shown under `iaas backup --help`, `iaas vm backup --help` and their commands. */
export const BACKUP_HELP = `
A backup copies a VM's disk (running or stopped) to the backup store, together with the VM's
configuration (CPUs, memory, disk size, image, NICs, cloud-init). A full backup holds the whole
disk; an incremental one (--incremental) holds what changed since the VM's previous backup and
needs the chain of backups it builds on (PARENT) to be restored. Backups outlive their VM.
An ID may be given as a unique prefix of the backup's id.

Examples:
  iaas vm backup web1 --wait
  iaas vm backup web1 --incremental --keep-last 7
  iaas vm backup web1 --as-image web1-golden --wait
  iaas backup list --vm web1
  iaas backup show 3f1c2a9e
  iaas backup verify 3f1c2a9e --wait
  iaas backup restore 3f1c2a9e web1 --discard-snapshots --start --wait
  iaas vm create web1-copy --from-backup 3f1c2a9e --start --wait
  iaas backup delete 3f1c2a9e
  iaas vm backup-schedule set web1 --every 24h --keep-last 7 --incremental
`;

interface BackupRestoreOptions {
  discardSnapshots?: boolean;
  start?: boolean;
  wait?: boolean;
}

/** `iaas backup list|show|verify|delete|restore` (backups are made with `iaas vm backup`). */
export function registerBackupCommands(program: Command, ctxOf: ContextFactory): void {
  const backup = program
    .command("backup")
    .description("list, show, verify, restore and delete VM backups (make them with `iaas vm backup`)")
    .addHelpText("after", BACKUP_HELP);

  addPagingOptions(backup.command("list").alias("ls").description("list backups, newest first (MODE: live for a backup of a running VM; PARENT: what an incremental builds on)"), "backups")
    .option("--vm <vm>", "only the backups of this VM (name or id; a deleted VM by the name it had)")
    .action(async (opts: { vm?: string; limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.backups(opts.vm), pagingOf(opts));
      printPage(ctx, page, (backups) => backupTable(backups, ctx.now()));
    });

  backup
    .command("show")
    .description("show a backup: its VM, kind and chain parent, size, sha256, and the VM configuration it recorded")
    .argument("<id>", "backup id or a unique prefix of it (see `iaas backup list`)")
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getBackup(id);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(backupDetails(found, ctx.now()));
    });

  backup
    .command("verify")
    .description("read the backup (and the backups it builds on) back and check them against their recorded sha256")
    .argument("<id>", "backup id or a unique prefix of it")
    .option("--wait", WAIT_HELP)
    .action(async (id: string, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.verifyBackup(id), opts.wait === true);
    });

  backup
    .command("restore")
    .description("replace a stopped VM's disk (and its CPUs and memory) by the backup's; what was written since is lost")
    .argument("<id>", "backup id or a unique prefix of it")
    .argument("<vm>", "the VM to restore into (name or id), stopped")
    .option("--discard-snapshots", "agree to lose the VM's snapshots: they live in the disk being replaced")
    .option("--start", "start the VM once it is restored")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", BACKUP_HELP)
    .action(async (id: string, vm: string, opts: BackupRestoreOptions, command: Command) => {
      const ctx = ctxOf(command);
      const req = { vm, discardSnapshots: opts.discardSnapshots === true, start: opts.start === true };
      await reportAcceptedJob(ctx, await ctx.client.restoreBackup(id, req), opts.wait === true);
    });

  backup
    .command("delete")
    .alias("rm")
    .description("delete a backup from the backup store")
    .argument("<id>", "backup id or a unique prefix of it")
    .option("--wait", WAIT_HELP)
    .action(async (id: string, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.deleteBackup(id), opts.wait === true);
    });
}
