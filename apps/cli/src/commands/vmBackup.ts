import type { Command } from "commander";
import { ImageName, MAX_KEEP_LAST, MIN_SCHEDULE_EVERY_MS, parseDuration } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import type { BackupScheduleInput } from "../client/ApiClient.js";
import { scheduleDetails } from "../output/backupView.js";
import { BACKUP_HELP } from "./backup.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { intBetween } from "./optionParsers.js";

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

const SCHEDULE_HELP = `
A VM has at most one backup schedule: a backup every interval (--every 90m, 24h, 7d; at least 10s)
or at the times of a 5-field cron pattern in UTC (--cron "0 3 * * *": daily at 03:00). After each
backup the newest --keep-last backups of the VM are kept (and the full backups they build on);
older ones are deleted. A backup that cannot run when due shows in \`iaas job list\` as a failed
backup.missed job.

Examples:
  iaas vm backup-schedule set web1 --every 24h --keep-last 7 --incremental
  iaas vm backup-schedule set db1 --cron "0 3 * * *" --keep-last 14
  iaas vm backup-schedule show web1
  iaas vm backup-schedule remove web1
`;

/** Shortest interval a schedule accepts. */
const MIN_EVERY_MS = MIN_SCHEDULE_EVERY_MS;

interface VmBackupOptions {
  incremental?: boolean;
  keepLast?: number;
  asImage?: string;
  bwlimit?: string;
  wait?: boolean;
}

interface ScheduleSetOptions {
  every?: string;
  cron?: string;
  keepLast: number;
  incremental?: boolean;
}

const keepLast = intBetween(1, MAX_KEEP_LAST);

/** Checks `--every` / `--cron` (exactly one, well-formed) and answers the request's timing part. */
function scheduleTiming(opts: ScheduleSetOptions, vm: string): Pick<BackupScheduleInput, "every" | "cron"> {
  const example = `e.g. iaas vm backup-schedule set ${vm} --every 24h --keep-last ${opts.keepLast}`;
  if (opts.every !== undefined && opts.cron !== undefined) throw usageError("--every and --cron contradict each other; give one of them", example);
  if (opts.every !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(opts.every);
    } catch (err) {
      throw usageError(`invalid --every: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (ms < MIN_EVERY_MS) throw usageError(`invalid --every: '${opts.every}' is shorter than the shortest interval, 10s`);
    return { every: opts.every.trim() };
  }
  if (opts.cron !== undefined) {
    const fields = opts.cron.trim().split(/\s+/);
    if (fields.length !== 5 || fields[0] === "") {
      throw usageError(`invalid --cron '${opts.cron}': a cron pattern has 5 fields (minute hour day-of-month month day-of-week), in UTC`, 'e.g. --cron "0 3 * * *" (daily at 03:00 UTC)');
    }
    return { cron: fields.join(" ") };
  }
  throw usageError("give --every INTERVAL or --cron PATTERN: when the backups run", example);
}

/** `iaas vm backup` and `iaas vm backup-schedule set|show|remove`. */
export function registerVmBackupCommands(vm: Command, ctxOf: ContextFactory): void {
  vm.command("backup")
    .description("back up a VM's disk, running or stopped (full, or incremental on its previous backup), or save it as a new image")
    .argument("<name>", "VM name or id")
    .option("--incremental", "copy only what changed since the VM's last backup (a full backup when there is none to build on)")
    .option("--keep-last <n>", `after this backup keep the VM's newest N backups (and the full ones they build on), delete the rest (1-${MAX_KEEP_LAST})`, keepLast)
    .option("--as-image <image>", "save the disk as a new image with this name instead of as a backup")
    .option("--bwlimit <rate>", "copy at most this many bytes per second, e.g. 50M, to leave disk bandwidth to the VMs")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", BACKUP_HELP)
    .action(async (name: string, opts: VmBackupOptions, command: Command) => {
      const ctx = ctxOf(command);
      if (opts.asImage !== undefined) {
        if (opts.incremental === true || opts.keepLast !== undefined) {
          throw usageError("--as-image makes an image, not a backup: it cannot be combined with --incremental or --keep-last", `leave them out, or back up without --as-image: iaas vm backup ${name} --incremental`);
        }
        const checked = ImageName.safeParse(opts.asImage);
        if (!checked.success) throw usageError(`invalid image name '${opts.asImage}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      }
      const accepted = await ctx.client.backupVm(name, {
        incremental: opts.incremental === true,
        ...(opts.keepLast !== undefined ? { keepLast: opts.keepLast } : {}),
        ...(opts.asImage !== undefined ? { asImage: opts.asImage } : {}),
        ...(opts.bwlimit !== undefined ? { bwlimit: opts.bwlimit } : {}),
      });
      const vmName = accepted.vm?.name ?? name;
      if (!ctx.out.json) {
        const backup = accepted.backup;
        if (opts.asImage !== undefined) ctx.out.line(`image ${accepted.image?.name ?? opts.asImage} from vm ${vmName}`);
        else if (backup !== null && backup !== undefined) ctx.out.line(`backup ${backup.id} (${backup.kind}${backup.live ? ", live" : ""}) of vm ${vmName}`);
      }
      await reportAcceptedJob(ctx, accepted, opts.wait === true);
    });

  const schedule = vm
    .command("backup-schedule")
    .description("back up a VM regularly: set, show or remove its backup schedule")
    .addHelpText("after", SCHEDULE_HELP);

  schedule
    .command("set")
    .description("set the VM's backup schedule (replacing the one it has): every interval or by cron, with a retention")
    .argument("<name>", "VM name or id")
    .option("--every <interval>", "back up every interval: a number and a unit s, m, h, d or w, e.g. 90m, 24h, 7d (at least 10s)")
    .option("--cron <pattern>", 'back up at the times of a 5-field cron pattern, in UTC, e.g. "0 3 * * *"')
    .requiredOption("--keep-last <n>", `keep the VM's newest N backups (and the full ones they build on) after each backup (1-${MAX_KEEP_LAST})`, keepLast)
    .option("--incremental", "make incremental backups (a full one when there is none to build on)")
    .addHelpText("after", SCHEDULE_HELP)
    .action(async (name: string, opts: ScheduleSetOptions, command: Command) => {
      const ctx = ctxOf(command);
      const timing = scheduleTiming(opts, name);
      const stored = await ctx.client.setBackupSchedule(name, { ...timing, keepLast: opts.keepLast, incremental: opts.incremental === true });
      if (ctx.out.json) ctx.out.printJson(stored);
      else ctx.out.line(scheduleDetails(stored, ctx.now()));
    });

  schedule
    .command("show")
    .description("show the VM's backup schedule: when it runs, the retention, its last and next run")
    .argument("<name>", "VM name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getBackupSchedule(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(scheduleDetails(found, ctx.now()));
    });

  schedule
    .command("remove")
    .alias("rm")
    .description("remove the VM's backup schedule (its backups are kept)")
    .argument("<name>", "VM name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      await ctx.client.deleteBackupSchedule(name);
      if (ctx.out.json) ctx.out.printJson({ vm: name, removed: true });
      else ctx.out.line(`backup schedule of vm ${name} removed`);
    });
}
