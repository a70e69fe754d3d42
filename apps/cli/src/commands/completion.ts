import type { Command } from "commander";
import { usageError } from "../CliError.js";
import { configFilePath, contextsOf, readConfigFile } from "../config.js";
import { CommandContext, type CliDeps, type ContextFactory } from "./CommandContext.js";
import { bashScript, COMPLETION_KINDS, completionTree, fishScript, zshScript, type CompletionKind } from "./completionTree.js";

/** How long `iaas __complete` waits for the API before it gives up (and prints nothing). */
const COMPLETE_TIMEOUT_MS = 1500;

const COMPLETION_HELP = `
Load it in the current shell, or install it:
  bash:  source <(iaas completion bash)      # or: iaas completion bash > ~/.local/share/bash-completion/completions/iaas
  zsh:   source <(iaas completion zsh)       # or save it as _iaas in a directory of $fpath
  fish:  iaas completion fish | source       # or: iaas completion fish > ~/.config/fish/completions/iaas.fish
Commands, subcommands and options complete from the script; VM, image, network, host, project
and context names are asked of the API (the context, --url and --project on the command line
count) with a ${COMPLETE_TIMEOUT_MS / 1000} s limit, and complete to nothing when it does not answer.
`;

/** `iaas completion bash|zsh|fish`, and the hidden `iaas __complete KIND` its scripts call. */
export function registerCompletionCommands(program: Command, _ctxOf: ContextFactory, deps: CliDeps): void {
  program
    .command("completion")
    .description("print a shell completion script (bash, zsh or fish)")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText("after", COMPLETION_HELP)
    .action(async (shell: string) => {
      const scripts: Record<string, (nodes: ReturnType<typeof completionTree>) => string> = { bash: bashScript, zsh: zshScript, fish: fishScript };
      const script = scripts[shell];
      if (script === undefined) throw usageError(`unknown shell '${shell}'`, "use bash, zsh or fish");
      // The whole command tree, whichever modules this run loaded.
      const { buildProgram } = await import("../program.js");
      deps.stdout.write(script(completionTree(await buildProgram(deps))));
    });

  program
    .command("__complete", { hidden: true })
    .description("print names for shell completion, one a line (nothing on error)")
    .argument("<kind>", COMPLETION_KINDS.join(", "))
    .action(async (kind: string, _opts: object, command: Command) => {
      const names = await completionNames(kind, deps, command).catch(() => []);
      for (const name of names) deps.stdout.write(`${name}\n`);
    });
}

/** Names of `kind`: contexts from the config file, the rest from the API within the time limit. */
async function completionNames(kind: string, deps: CliDeps, command: Command): Promise<string[]> {
  if (!(COMPLETION_KINDS as readonly string[]).includes(kind)) return [];
  if (kind === "contexts") return Object.keys(contextsOf(readConfigFile(configFilePath(deps.env, deps.homedir), deps.readFile)));
  const baseFetch = deps.fetch ?? fetch;
  const timedFetch: typeof fetch = (input, init) =>
    baseFetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(COMPLETE_TIMEOUT_MS)]) : AbortSignal.timeout(COMPLETE_TIMEOUT_MS) });
  const { client } = new CommandContext({ ...deps, fetch: timedFetch, retryDelaysMs: [] }, command);
  const lists: Record<Exclude<CompletionKind, "contexts">, () => Promise<{ name: string }[]>> = {
    vms: () => client.listVms(),
    images: () => client.listImages(),
    networks: () => client.listNetworks(),
    hosts: () => client.listHosts(),
    projects: () => client.listProjects(),
  };
  return (await lists[kind as Exclude<CompletionKind, "contexts">]()).map((item) => item.name);
}
