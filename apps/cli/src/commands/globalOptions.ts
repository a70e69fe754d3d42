import { Option, type Command } from "commander";
import { DEFAULT_API_URL } from "../config.js";
import { seconds } from "./optionParsers.js";

/** The options every command takes: `iaas --url U vm list` and `iaas vm list --url U` alike. */
export function globalOptions(): Option[] {
  return [
    new Option("--url <url>", `API base URL (default: IAAS_URL, the config file, or ${DEFAULT_API_URL})`),
    new Option("-o, --output <format>", "output format").choices(["table", "json"]),
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

/**
 * The global options as given, before or after the subcommand (the command's value wins over the
 * program's). A command's own `--url` (visible, e.g. `image import`'s source) is not the API URL.
 */
export function globalOptionValues(command: Command): Record<string, unknown> {
  const chain: Command[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) chain.unshift(c);
  const values: Record<string, unknown> = {};
  for (const c of chain) Object.assign(values, c.opts());
  const ownUrl = command.options.some((option) => option.long === "--url" && !option.hidden);
  if (ownUrl) values.url = chain[0]?.opts().url;
  return values;
}
