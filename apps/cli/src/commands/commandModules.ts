import type { Command } from "commander";
import type { CliDeps, ContextFactory } from "./CommandContext.js";
import { globalOptions } from "./globalOptions.js";

/** Adds a module's commands to the program. */
export type RegisterCommands = (program: Command, ctxOf: ContextFactory, deps: CliDeps) => void;

/** A module of top-level commands, loaded when one of them runs. */
export interface CommandModule {
  /** Its top-level command names and aliases (a test holds this to what `load` registers). */
  commands: readonly string[];
  load: () => Promise<RegisterCommands>;
}

/** Every top-level command, in the order `iaas --help` lists them. */
export const COMMAND_MODULES: readonly CommandModule[] = [
  { commands: ["login", "whoami"], load: async () => (await import("./auth.js")).registerAuthCommands },
  { commands: ["context"], load: async () => (await import("./context.js")).registerContextCommands },
  { commands: ["vm"], load: async () => (await import("./vm.js")).registerVmCommands },
  { commands: ["image"], load: async () => (await import("./image.js")).registerImageCommands },
  { commands: ["network", "net"], load: async () => (await import("./network.js")).registerNetworkCommands },
  { commands: ["backup"], load: async () => (await import("./backup.js")).registerBackupCommands },
  { commands: ["export"], load: async () => (await import("./export.js")).registerExportCommands },
  { commands: ["job"], load: async () => (await import("./job.js")).registerJobCommands },
  { commands: ["host"], load: async () => (await import("./host.js")).registerHostCommands },
  { commands: ["project"], load: async () => (await import("./project.js")).registerProjectCommands },
  { commands: ["token"], load: async () => (await import("./token.js")).registerTokenCommands },
  { commands: ["audit"], load: async () => (await import("./audit.js")).registerAuditCommands },
  { commands: ["completion", "__complete"], load: async () => (await import("./completion.js")).registerCompletionCommands },
];

/**
 * The modules `argv` needs: the one of its command; none for `iaas --version`; all when it names
 * no command or an unknown one (help lists them all, and commander suggests the nearest name).
 */
export function commandModulesFor(argv: readonly string[] | undefined): readonly CommandModule[] {
  if (argv === undefined) return COMMAND_MODULES;
  const word = firstCommandWord(argv);
  if (word === null) return argv.includes("-V") || argv.includes("--version") ? [] : COMMAND_MODULES;
  const own = COMMAND_MODULES.filter((m) => m.commands.includes(word));
  return own.length > 0 ? own : COMMAND_MODULES;
}

/** The first word of `argv` that is not a program option or an option's value; null when none. */
export function firstCommandWord(argv: readonly string[]): string | null {
  const takesValue = new Set<string>();
  for (const option of globalOptions()) {
    if (!option.required && !option.optional) continue;
    takesValue.add(option.long ?? "");
    if (option.short !== undefined) takesValue.add(option.short);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") return argv[i + 1] ?? null;
    if (!arg.startsWith("-")) return arg;
    if (takesValue.has(arg)) i++;
  }
  return null;
}

/** Loads `modules` (and the command context they share) and registers their commands on `program`. */
export async function loadCommands(program: Command, deps: CliDeps, modules: readonly CommandModule[]): Promise<void> {
  if (modules.length === 0) return;
  const [{ CommandContext }, ...registers] = await Promise.all([import("./CommandContext.js"), ...modules.map((m) => m.load())]);
  const ctxOf: ContextFactory = (command, target) => new CommandContext(deps, command, target);
  for (const register of registers) register(program, ctxOf, deps);
}
