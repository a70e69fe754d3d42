import type { Command } from "commander";
import { ExitCode, VmName, type NicRequest } from "@iaas/contracts";
import { CliError, usageError } from "../CliError.js";
import type { BackupVmCreateInput, VmCreateInput } from "../client/ApiClient.js";
import { ConsoleSanitizer } from "../output/sanitize.js";
import { hostNames, dryRunView, vmDetails, vmTable } from "../output/vmView.js";
import { readSshKeys, readUserData } from "./cloudInitFiles.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { addExportOptions, exportAndDownload, type ExportOptions } from "./export.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { hostnameLabel, NIC_SPEC_HELP, nicSpecInto } from "./networkSpecs.js";
import { intBetween, size } from "./optionParsers.js";
import { registerVmBackupCommands } from "./vmBackup.js";
import { registerVmNetworkCommands } from "./vmNetwork.js";
import { registerVmSnapshotCommands } from "./vmSnapshot.js";
import { registerVmChangeCommands } from "./vmChange.js";
import { registerVmMigrateCommand } from "./vmMigrate.js";
import { registerVmSshCommand } from "./vmSsh.js";
import { registerVmWaitCommand } from "./vmWait.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { vmHostNames } from "./vmHostNames.js";

interface WaitOption {
  wait?: boolean;
}

interface VmCreateOptions extends WaitOption {
  /** Required, except with --from-backup (where it replaces the backup's image). */
  image?: string;
  fromBackup?: string;
  cpus?: number;
  memory?: string;
  disk?: string;
  host?: string;
  start?: boolean;
  dryRun?: boolean;
  /** The NICs given with --network; false after --no-network. */
  network?: NicRequest[] | false;
  sshKey?: string[];
  userData?: string;
  hostname?: string;
}

interface VmStopOptions extends WaitOption {
  force?: boolean;
  stopTimeout?: number;
}

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

const CREATE_HELP = `
Networking:
  Without --network or --no-network the VM gets one NIC on the network named "default".
  --network ${NIC_SPEC_HELP}
      one NIC per option, in order (nic 0 first): a network name or id, optionally a fixed
      address in its subnet (ip=) and a fixed unicast MAC (mac=)
  --no-network
      no NIC at all (reach the VM through its serial console only)

cloud-init:
  --ssh-key takes an authorized_keys-style file (e.g. ~/.ssh/id_ed25519.pub): every line that is
  neither blank nor a # comment is one key. --user-data is sent as it is (at most 64 KiB).

From a backup:
  --from-backup ID makes the VM's disk from a backup (see \`iaas backup list\`) instead of an
  image. CPUs, memory and NICs default to the backup's (its MACs and addresses where they are
  free); --cpus, --memory, --disk (to grow it), --host and --network/--no-network override them,
  and --image bases the disk on another image (needed when the backup's image was deleted). The
  cloud-init options (--ssh-key, --user-data, --hostname) and --dry-run do not apply.

Examples:
  iaas vm create web1 --image deb12 --ssh-key ~/.ssh/id_ed25519.pub --start --wait
  iaas vm create db1 --image deb12 --network default --network backend,ip=10.20.0.10 --start
  iaas vm create lab1 --image deb12 --no-network --user-data init.yaml
  iaas vm create web1-copy --from-backup 3f1c2a9e --start --wait
`;

/** `iaas vm …`: create, list, show, start, stop, reboot, delete, console, export, ip, nic, port, snapshot, backup, backup-schedule, wait, ssh. */
export function registerVmCommands(program: Command, ctxOf: ContextFactory): void {
  const vm = program.command("vm").description("create and manage virtual machines");

  // `--network` and `--no-network` set the same option; remember which were given to refuse both.
  const networkFlags = new Set<string>();
  const create = vm.command("create");
  create.on("option:network", () => networkFlags.add("--network"));
  create.on("option:no-network", () => networkFlags.add("--no-network"));
  create
    .description("create a VM from an image (a qcow2 overlay on it) or from a backup, optionally start it")
    .argument("<name>", "VM name: lower-case letters, digits and '-'")
    .option("--image <image>", "image name or id (see `iaas image list`); required unless --from-backup is given")
    .option("--from-backup <id>", "make the VM from this backup (id or unique prefix; see `iaas backup list`) instead of from an image")
    .option("--cpus <n>", "virtual CPUs (1-64; default 1)", intBetween(1, 64))
    .option("--memory <size>", "memory, e.g. 512M or 2G (default 512M)", size)
    .option("--disk <size>", "disk size, e.g. 10G (default: the image's virtual size)", size)
    .option("--host <host>", "place the VM on this host instead of letting the scheduler choose")
    .option("--network <spec>", `a NIC: ${NIC_SPEC_HELP} (repeatable; default: one NIC on "default")`, nicSpecInto)
    .option("--no-network", "create the VM without any NIC")
    .option("--ssh-key <file>", "a public key file for the guest's default user (repeatable)", (value: string, previous: string[] = []) => [...previous, value])
    .option("--user-data <file>", "cloud-init user-data: a #cloud-config document or a script (at most 64 KiB)")
    .option("--hostname <name>", "the guest's host name (default: the VM name)", hostnameLabel)
    .option("--start", "start the VM once it is created")
    .option("--dry-run", "show where the VM would be placed, and why; create nothing")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", CREATE_HELP)
    .action(async (name: string, opts: VmCreateOptions, command: Command) => {
      const ctx = ctxOf(command);
      const checked = VmName.safeParse(name);
      if (!checked.success) throw usageError(`invalid VM name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      if (networkFlags.size > 1) throw usageError("--network and --no-network contradict each other; give one of them");
      if (opts.fromBackup !== undefined) {
        await createFromBackup(ctx, name, opts.fromBackup, opts);
        return;
      }
      if (opts.image === undefined) {
        throw usageError("required option '--image <image>' not specified", "name the image to base the VM on (see `iaas image list`), or make it from a backup with --from-backup ID");
      }
      const input: VmCreateInput = {
        name,
        image: opts.image,
        cpus: opts.cpus,
        memory: opts.memory,
        disk: opts.disk,
        host: opts.host,
        start: opts.start === true,
        networks: opts.network === false ? [] : opts.network,
        sshKeys: opts.sshKey === undefined ? undefined : await readSshKeys(opts.sshKey),
        userData: opts.userData === undefined ? undefined : await readUserData(opts.userData),
        hostname: opts.hostname,
      };
      if (opts.dryRun === true) {
        const [plan, hosts] = await Promise.all([ctx.client.planVm(input), ctx.client.listHosts().catch(() => [])]);
        if (ctx.out.json) ctx.out.printJson(plan);
        else ctx.out.line(dryRunView(plan, hostNames(hosts)));
        return;
      }
      await reportAcceptedJob(ctx, await ctx.client.createVm(input), opts.wait === true);
    });

  addPagingOptions(vm.command("list").alias("ls").description("list VMs: state, host, address (of the first NIC), resources, image"), "VMs")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.vms(), pagingOf(opts));
      const names = ctx.out.json ? new Map<string, string>() : await vmHostNames(ctx.client, page.items);
      printPage(ctx, page, (vms) => vmTable(vms, names));
    });

  vm.command("show")
    .description("show a VM: state, host, resources, last error, and its NICs with addresses, DHCP leases and port forwards")
    .argument("<name>", "VM name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getVm(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(vmDetails(found, await vmHostNames(ctx.client, [found]), ctx.now()));
    });

  vm.command("start")
    .description("start a stopped VM")
    .argument("<name>", "VM name or id")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: WaitOption, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.startVm(name), opts.wait === true);
    });

  vm.command("stop")
    .description("stop a VM: ACPI power-down, then quit QEMU after --stop-timeout")
    .argument("<name>", "VM name or id")
    .option("--force", "quit QEMU at once, without asking the guest to power down")
    .option("--stop-timeout <seconds>", "seconds the guest gets to power down (0-3600; default 60)", intBetween(0, 3600))
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: VmStopOptions, command: Command) => {
      const ctx = ctxOf(command);
      const body = { force: opts.force === true, ...(opts.stopTimeout === undefined ? {} : { timeoutSeconds: opts.stopTimeout }) };
      await reportAcceptedJob(ctx, await ctx.client.stopVm(name, body), opts.wait === true);
    });

  vm.command("reboot")
    .description("reboot a running VM")
    .argument("<name>", "VM name or id")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: WaitOption, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.rebootVm(name), opts.wait === true);
    });

  vm.command("delete")
    .alias("rm")
    .description("delete a VM and its disk (stops it first if it runs)")
    .argument("<name>", "VM name or id")
    .option("--force", "only for a VM whose host is lost: remove its records now (its files go when the host's worker comes back)")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: WaitOption & { force?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.deleteVm(name, { force: opts.force === true }), opts.wait === true);
    });

  addExportOptions(
    vm
      .command("export")
      .description("save a stopped VM's disk as one file (a backup): follows the export job, then downloads resumably")
      .argument("<name>", "VM name or id"),
  ).action(async (name: string, opts: ExportOptions, command: Command) => {
    await exportAndDownload(ctxOf(command), "vm", name, opts);
  });

  vm.command("console")
    .description("print the VM's serial console output (the last 1 MiB)")
    .argument("<name>", "VM name or id")
    .option("-f, --follow", "keep printing new output until Ctrl-C")
    .action(async (name: string, opts: { follow?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await printConsole(ctx, name, opts.follow === true);
    });

  registerVmNetworkCommands(vm, ctxOf);
  registerVmSnapshotCommands(vm, ctxOf);
  registerVmBackupCommands(vm, ctxOf);
  registerVmChangeCommands(vm, ctxOf);
  registerVmMigrateCommand(vm, ctxOf);
  registerVmWaitCommand(vm, ctxOf);
  registerVmSshCommand(vm, ctxOf);
}

/**
 * `iaas vm create NAME --from-backup ID`: POST /v1/backups/:id/vms with only what the user gave
 * (the backup supplies the rest); the cloud-init options and --dry-run are refused (exit 2).
 */
async function createFromBackup(ctx: CommandContext, name: string, backup: string, opts: VmCreateOptions): Promise<void> {
  const example = `iaas vm create ${name} --from-backup ${backup}`;
  if (opts.dryRun === true) throw usageError("--dry-run cannot be combined with --from-backup: only a VM from an image can be planned", `leave it out: ${example}`);
  const refused = [opts.sshKey !== undefined ? "--ssh-key" : null, opts.userData !== undefined ? "--user-data" : null, opts.hostname !== undefined ? "--hostname" : null].filter(
    (flag) => flag !== null,
  );
  if (refused.length > 0) {
    throw usageError(
      `${refused.join(", ")} cannot be combined with --from-backup: the VM takes its cloud-init settings from the backup`,
      `leave ${refused.length === 1 ? "it" : "them"} out: ${example}`,
    );
  }
  const req: BackupVmCreateInput = {
    name,
    cpus: opts.cpus,
    memory: opts.memory,
    disk: opts.disk,
    image: opts.image,
    host: opts.host,
    networks: opts.network === false ? [] : opts.network,
    start: opts.start === true ? true : undefined,
  };
  await reportAcceptedJob(ctx, await ctx.client.createVmFromBackup(backup, req), opts.wait === true);
}

/**
 * Copies the console stream to stdout, terminal-safe (the guest wrote it: its escape sequences and
 * other control characters are dropped, see ConsoleSanitizer); Ctrl-C ends a followed stream normally.
 */
async function printConsole(ctx: CommandContext, name: string, follow: boolean): Promise<void> {
  const body = await ctx.client.openConsole(name, follow);
  const reader = body.getReader();
  const sanitizer = new ConsoleSanitizer();
  const write = (text: string) => {
    if (text !== "") ctx.out.stdout.write(text);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        write(sanitizer.end());
        return;
      }
      write(sanitizer.push(value));
    }
  } catch (err) {
    if (ctx.interrupted) return;
    throw new CliError(`the console stream of vm ${name} broke off: ${err instanceof Error ? err.message : String(err)}`, {
      exitCode: ExitCode.UNREACHABLE,
      hint: `run \`iaas vm console ${name}${follow ? " --follow" : ""}\` again`,
      retryable: true,
    });
  } finally {
    reader.releaseLock();
  }
}
