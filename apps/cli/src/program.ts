import { createRequire } from "node:module";
import { Command, CommanderError, Option } from "commander";
import { z } from "zod";
import { ExitCode } from "@iaas/contracts";
import { CliError } from "./CliError.js";
import { DEFAULT_API_URL } from "./config.js";
import { CommandContext, type CliDeps } from "./commands/CommandContext.js";
import { registerHostCommands } from "./commands/host.js";
import { registerImageCommands } from "./commands/image.js";
import { registerJobCommands } from "./commands/job.js";
import { seconds } from "./commands/optionParsers.js";
import { registerVmCommands } from "./commands/vm.js";
import { Output } from "./output/Output.js";

const HELP_AFTER = `
Environment:
  IAAS_URL      API base URL (--url wins; then IAAS_URL, the config file, ${DEFAULT_API_URL})
  IAAS_TOKEN    API token, sent as "Authorization: Bearer <token>" (wins over the config file)
  IAAS_CONFIG   config file (default ~/.config/iaas/config.json): {"url": "...", "token": "..."}

Jobs:
  Every change is a job. Without --wait a command prints the job id and returns; with --wait it
  follows the job live (progress on stderr) and prints the result. Re-attach to any job with
  \`iaas job wait <id>\`; --timeout bounds the wait, not the job.

Exit codes:
  0    success
  1    the job failed or was cancelled
  2    usage or validation error
  3    not found, or conflict (name taken, VM busy, image in use, ...)
  4    --timeout passed while waiting; the job is still running (iaas job wait <id>)
  5    the API is unreachable, or refused the credentials (401/403)
  130  interrupted (Ctrl-C); jobs keep running

Examples:
  iaas image import deb12 --file debian-12.qcow2 --wait
  iaas vm create web1 --image deb12 --cpus 2 --memory 1G --start --wait
  iaas vm create web2 --image deb12 --dry-run
  iaas job logs 3f1c2a9e --follow
`;

function cliVersion(): string {
  const pkg = z.object({ version: z.string() }).safeParse(createRequire(import.meta.url)("../package.json"));
  return pkg.success ? pkg.data.version : "unknown";
}

/** The `iaas` command tree. Commander errors are thrown (exitOverride), not exited on. */
export function buildProgram(deps: CliDeps): Command {
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
    .option("--url <url>", `API base URL (default: IAAS_URL, the config file, or ${DEFAULT_API_URL})`)
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"))
    .option("--timeout <seconds>", "stop waiting for a job after this long (exit 4; the job keeps running)", seconds)
    .option("--idempotency-key <key>", "Idempotency-Key for the request (default: a random one per invocation)")
    .addHelpText("after", HELP_AFTER);

  const ctxOf = (command: Command): CommandContext => new CommandContext(deps, command);
  registerVmCommands(program, ctxOf);
  registerImageCommands(program, ctxOf);
  registerJobCommands(program, ctxOf);
  registerHostCommands(program, ctxOf);
  return program;
}

/**
 * Runs `iaas` with `argv` (without the node and script paths) and returns the exit code:
 * errors are printed as `error: …` / `hint: …`; commander's usage errors are exit 2.
 */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    const out = new Output(deps.stdout, deps.stderr, "table");
    if (err instanceof CliError) {
      out.error(err);
      return err.exitCode;
    }
    out.error(err instanceof Error ? err : new Error(String(err)));
    return ExitCode.JOB_FAILED;
  }
}
