import { access, constants } from "node:fs/promises";
import type { Command } from "commander";
import { ExitCode, type PortForward } from "@iaas/contracts";
import { CliError, silentExit, usageError } from "../CliError.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";

export const DEFAULT_SSH_USER = "debian";

const SSH_HELP = `
ssh goes through a port forward of the VM's host to the guest's port 22 (add one with
\`iaas vm port add NAME 2222:22\`). The address is --address, else the forward's listen address,
else the host's underlay address (\`iaas host list\`), else 127.0.0.1. Arguments after -- go to
ssh (options, or a command to run). Exits with ssh's exit code.

Examples:
  iaas vm ssh web1
  iaas vm ssh web1 --user root -i ~/.ssh/id_ed25519
  iaas vm ssh web1 -- uptime
  iaas vm ssh web1 -- -L 8080:localhost:80 -N
`;

export interface SshTarget {
  user: string;
  address: string;
  port: number;
  identity?: string;
  extra: readonly string[];
}

/** ssh's argv: `-p PORT [-i KEY] -o StrictHostKeyChecking=accept-new USER@ADDR [extra...]`. */
export function sshArgv(target: SshTarget): string[] {
  return [
    "-p",
    String(target.port),
    ...(target.identity === undefined ? [] : ["-i", target.identity]),
    "-o",
    "StrictHostKeyChecking=accept-new",
    `${target.user}@${target.address}`,
    ...target.extra,
  ];
}

/** The forward to the guest's ssh port (tcp 22), preferring the first NIC's. */
export function sshForward(forwards: readonly PortForward[]): PortForward | undefined {
  const candidates = forwards.filter((f) => f.guestPort === 22 && f.protocol === "tcp");
  return candidates.find((f) => f.nicIndex === 0) ?? candidates[0];
}

interface VmSshOptions {
  user: string;
  address?: string;
  identity?: string;
}

/** `iaas vm ssh NAME [--user U] [--address A] [-i KEY] [-- ssh args...]`. */
export function registerVmSshCommand(vm: Command, ctxOf: ContextFactory): void {
  vm.command("ssh")
    .description("ssh into a VM through its port forward to guest port 22")
    .argument("<name>", "VM name or id")
    .argument("[ssh-args...]", "after --: more ssh options, or a command to run in the guest")
    .option("--user <user>", "the guest user", DEFAULT_SSH_USER)
    .option("--address <address>", "connect to this address instead of the forward's or the host's")
    .option("-i, --identity <file>", "the private key file to use (ssh -i)")
    .addHelpText("after", SSH_HELP)
    .action(async (name: string, extra: string[], opts: VmSshOptions, command: Command) => {
      await sshIntoVm(ctxOf(command), name, extra, opts);
    });
}

async function sshIntoVm(ctx: CommandContext, ref: string, extra: readonly string[], opts: VmSshOptions): Promise<void> {
  if (opts.identity !== undefined) {
    try {
      await access(opts.identity, constants.R_OK);
    } catch {
      throw usageError(`cannot read the identity file ${opts.identity}`);
    }
  }
  const [vm, forwards] = await Promise.all([ctx.client.getVm(ref), ctx.client.listPorts(ref)]);
  const forward = sshForward(forwards);
  if (forward === undefined) {
    throw new CliError(`vm ${vm.name} has no port forward to its port 22 (tcp)`, {
      exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
      hint: `add one with: iaas vm port add ${vm.name} 2222:22 --wait`,
    });
  }
  if (vm.state !== "running") {
    throw new CliError(`vm ${vm.name} is ${vm.state}, not running`, {
      exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
      hint: `start it with: iaas vm start ${vm.name} --wait`,
    });
  }
  const address = opts.address ?? forwardAddress(forward) ?? (await hostAddress(ctx, forward.hostId || vm.hostId)) ?? "127.0.0.1";
  const argv = sshArgv({ user: opts.user, address, port: forward.hostPort, identity: opts.identity, extra });
  if (ctx.deps.stderr.isTTY === true) ctx.out.note(`ssh ${argv.join(" ")}  (vm ${vm.name} port 22)`);
  let code: number;
  try {
    code = await ctx.runProcess("ssh", argv);
  } catch (err) {
    throw new CliError(`cannot run ssh: ${err instanceof Error ? err.message : String(err)}`, {
      exitCode: ExitCode.JOB_FAILED,
      hint: "install an OpenSSH client (e.g. apt-get install openssh-client) and make sure `ssh` is on PATH",
    });
  }
  if (code !== 0) throw silentExit(code);
}

/** The forward's listen address, unless it listens on every address. */
function forwardAddress(forward: PortForward): string | null {
  return forward.address === null || forward.address === "0.0.0.0" ? null : forward.address;
}

/** The underlay address of the host the forward is on, as its worker reported it. */
async function hostAddress(ctx: CommandContext, hostId: string): Promise<string | null> {
  const hosts = await ctx.client.listHosts().catch(() => []);
  return hosts.find((h) => h.id === hostId)?.network?.address ?? null;
}
