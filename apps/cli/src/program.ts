import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { ExitCode } from "@iaas/contracts";
import { CliError } from "./CliError.js";
import { DEFAULT_API_URL } from "./defaults.js";
import type { CliDeps } from "./commands/CommandContext.js";
import { globalOptions, repeatGlobalOptions } from "./commands/globalOptions.js";
import { commandModulesFor, loadCommands } from "./commands/commandModules.js";
import { colourEnabled } from "./output/colour.js";
import { Output } from "./output/Output.js";

const HELP_AFTER = `
Environment:
  IAAS_URL      API base URL (--url wins; then IAAS_URL, the config file, ${DEFAULT_API_URL})
  IAAS_TOKEN    API token, sent as "Authorization: Bearer <token>" (wins over the config file)
  IAAS_PROJECT  project to act in, sent as "X-Iaas-Project: <name>" (--project wins; then
                IAAS_PROJECT, the config file; else the token's project, or "default")
  IAAS_CONTEXT  the saved API to use (--context wins; else the config file's current context);
                each setting then comes from its flag, its variable, then the context
  IAAS_CONFIG   config file (default ~/.config/iaas/config.json, mode 0600), written by
                \`iaas login\` and \`iaas context add|use|remove\`:
                {"contexts": {"NAME": {"url": "...", "token": "...", "project": "..."}},
                 "currentContext": "NAME"}  (an older {"url", "token", "project"} is "default")
  NO_COLOR      set (non-empty): no colour even on a terminal

Output:
  -o table (default), -o json or -o yaml (the same data as json). Lists take --limit N and --all
  (every page). Tab completion: source <(iaas completion bash) (also zsh, fish).

Security:
  The API wants an API token: \`iaas login --url URL --token T\` checks one and saves it
  (mode 0600); \`iaas whoami\` shows who you are. Roles: viewer reads; operator also creates and
  changes VMs, images, networks and backups; admin also manages hosts, projects, quotas and
  tokens (\`iaas token create NAME --role R [--project P] [--expires 30d]\`; the secret is
  shown once) and reads the audit trail (\`iaas audit list\`). Everything lives in a project
  ("default" unless --project/IAAS_PROJECT says otherwise); a token scoped to a project sees only
  it. Projects may have quotas (\`iaas project set-quota\`); public images (\`iaas image
  set-public\`) are shared by every project.

Jobs:
  Every change is a job. Without --wait a command prints the job id and returns; with --wait it
  follows the job live (progress on stderr) and prints the result. Re-attach to any job with
  \`iaas job wait <id>\`; --timeout bounds the wait, not the job. \`image export\` and
  \`vm export\` always wait for their job, then download the file.

Networks:
  VMs get NICs on networks (\`iaas network list\`; "default" unless --network/--no-network).
  Reach a guest through a port forward of its host: \`iaas vm port add web1 2222:22\`, then
  \`iaas vm ssh web1\`. \`iaas vm wait\` waits for running/stopped, a DHCP lease (ip), a console
  pattern or a guest port.

Snapshots:
  \`iaas vm snapshot create|list|restore|delete\` (alias snap). A snapshot keeps a running or
  stopped VM's disk; with --memory it also keeps a running VM's RAM and device state, and
  restoring it returns the VM to that running instant. A disk-only snapshot is restored on a
  stopped VM, or with --restart (stop, restore, start again).

Backups:
  \`iaas vm backup VM [--incremental] [--keep-last N] [--as-image NAME]\` copies a running or
  stopped VM's disk and configuration to the backup store (incremental: what changed since its
  last backup). \`iaas backup list|show|verify|restore|delete\` work with them; \`iaas vm create
  NEW --from-backup ID\` makes a new VM from one. \`iaas vm backup-schedule set|show|remove\`
  backs a VM up --every 24h or by --cron "0 3 * * *" (UTC), keeping the newest --keep-last N.

Transfers:
  Uploads (image import --file) and downloads (image export, vm export, export download) resume
  after a dropped connection, and resume when the same command is run again after it failed or
  was interrupted. Downloads are verified against the API's sha256 before they are renamed into
  place.

Exit codes:
  0    success
  1    the job failed or was cancelled
  2    usage or validation error
  3    not found, or conflict (name taken, VM busy, image or network in use, address or port
       taken, project quota exceeded, ...)
  4    --timeout passed while waiting; the job is still running (iaas job wait <id>), or the
       condition of \`vm wait\` did not hold in time
  5    the API is unreachable, or refused the credentials (401: no valid token) or the request
       (403 forbidden: the token's role or project does not allow it)
  130  interrupted (Ctrl-C); jobs keep running

Examples:
  iaas login --url https://iaas.example.org --token iaas_1a2b3c4d_… --project team-a
  iaas token create ci --role operator --project team-a --expires 90d
  iaas project set-quota team-a --vms 10 --memory 32G --disk 500G
  iaas --project team-a vm list
  iaas image import deb12 --file debian-12.qcow2 --wait
  iaas image import alpine --url https://example.org/alpine.qcow2 --dedupe --wait
  iaas image export deb12 --format vmdk --to deb12.vmdk
  iaas vm export web1 --format qcow2 --compress --to web1-backup.qcow2
  iaas vm create web1 --image deb12 --cpus 2 --memory 1G --start --wait
  iaas vm create web2 --image deb12 --dry-run
  iaas network create backend --subnet 10.20.0.0/24
  iaas vm create db1 --image deb12 --network backend,ip=10.20.0.10 --ssh-key ~/.ssh/id_ed25519.pub
  iaas vm port add web1 2222:22 --wait && iaas vm wait web1 --for port=22 && iaas vm ssh web1
  iaas vm snapshot create web1 before-upgrade --wait
  iaas vm snapshot restore web1 before-upgrade --restart --wait
  iaas vm backup web1 --incremental --keep-last 7 --wait
  iaas backup restore 3f1c2a9e web1 --discard-snapshots --wait
  iaas vm backup-schedule set web1 --every 24h --keep-last 7 --incremental
  iaas job logs 3f1c2a9e --follow
`;

/** The version in the CLI's package.json: beside src/ and dist/, or two up from the bundle (dist/bundle/). */
function cliVersion(): string {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8"));
      if (typeof pkg === "object" && pkg !== null && "name" in pkg && pkg.name === "@iaas/cli" && "version" in pkg && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not there: try the next place
    }
  }
  return "unknown";
}

/**
 * The `iaas` command tree. Commander errors are thrown (exitOverride), not exited on. With `argv`,
 * only the command modules that `argv` names are loaded (a CLI start pays for the command it
 * runs, not for all of them); without it, or for help and unknown commands, all are.
 */
export async function buildProgram(deps: CliDeps, argv?: readonly string[]): Promise<Command> {
  const program = new Command("iaas")
    .description("Minimal IaaS Manager: run QEMU virtual machines through durable jobs")
    .version(cliVersion(), "-V, --version", "print the CLI version")
    .helpOption("-h, --help", "show help for a command")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void deps.stdout.write(text),
      writeErr: (text) => void deps.stderr.write(text),
    })
    .showHelpAfterError("(add --help for usage)")
    .enablePositionalOptions()
    .addHelpText("after", HELP_AFTER);
  for (const option of globalOptions()) program.addOption(option.long === "--output" ? option.default("table") : option);
  await loadCommands(program, deps, commandModulesFor(argv));
  repeatGlobalOptions(program);
  return program;
}

/**
 * Runs `iaas` with `argv` (without the node and script paths) and returns the exit code:
 * errors are printed as `error: …` / `hint: …`; commander's usage errors are exit 2.
 */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  try {
    const program = await buildProgram(deps, argv);
    await program.parseAsync([...argv], { from: "user" });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    const out = new Output(deps.stdout, deps.stderr, "table", undefined, colourEnabled(deps.stderr, deps.env));
    if (err instanceof CliError) {
      if (!err.silent) out.error(err);
      return err.exitCode;
    }
    out.error(err instanceof Error ? err : new Error(String(err)));
    return ExitCode.JOB_FAILED;
  }
}
