import { Option, type Command } from "commander";
import { DEFAULT_API_URL } from "../defaults.js";
import { seconds } from "./numberParsers.js";

/** The options every command takes: `iaas --url U vm list` and `iaas vm list --url U` alike. */
export function globalOptions(): Option[] {
  return [
    new Option("--context <name>", "the saved API (url, token, project) to use (default: IAAS_CONTEXT, else the config file's current context; `iaas context list`)"),
    new Option("--url <url>", `API base URL (default: IAAS_URL, the context, or ${DEFAULT_API_URL})`),
    new Option("--project <name>", "project to act in, sent as X-Iaas-Project (default: IAAS_PROJECT, the config file, or the token's project / default)"),
    new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]),
    new Option("--timeout <seconds>", "stop waiting for a job after this long (exit 4; the job keeps running)").argParser(seconds),
    new Option("--idempotency-key <key>", "Idempotency-Key for the request (default: a random one per invocation)"),
  ];
}

/**
 * The program parses its options only before the subcommand (positional options), so that a
 * command may give a global flag a meaning of its own (`image import --url`: the image's source).
 * To keep global options working after the subcommand too, every leaf command gets hidden copies
 * of those it does not define itself.
 */
export function repeatGlobalOptions(command: Command): void {
  for (const sub of command.commands) {
    if (sub.commands.length > 0) {
      repeatGlobalOptions(sub);
      continue;
    }
    for (const option of globalOptions()) {
      if (sub.options.some((own) => own.long === option.long || (option.short !== undefined && own.short === option.short))) continue;
      sub.addOption(option.hideHelp());
    }
  }
}

/** Global options a command may define with a meaning of its own. */
const OWN_MEANING: readonly { long: string; key: string }[] = [
  { long: "--url", key: "url" },
  { long: "--project", key: "project" },
];

/**
 * The global options as given, before or after the subcommand (the command's value wins over the
 * program's). A command's own `--url` (visible, e.g. `image import`'s source) is not the API URL,
 * and its own `--project` (e.g. `token create`'s scope, `audit list`'s filter) is not the project
 * to act in: those come from before the subcommand.
 */
export function globalOptionValues(command: Command): Record<string, unknown> {
  const chain: Command[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) chain.unshift(c);
  const values: Record<string, unknown> = {};
  for (const c of chain) Object.assign(values, c.opts());
  for (const { long, key } of OWN_MEANING) {
    const own = command.options.some((option) => option.long === long && !option.hidden);
    if (own) values[key] = chain[0]?.opts()[key];
  }
  return values;
}
