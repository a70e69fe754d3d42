import type { Command } from "commander";
import { usageError } from "../CliError.js";
import { checkProjectRef, configFilePath, contextsOf, migrateToContexts, normalizeApiUrl, readConfigFile, readConfigObject, writeConfigFile } from "../config.js";
import { stringify as yamlStringify } from "yaml";
import { formatTable } from "../output/formatTable.js";
import { Output, type OutputFormat } from "../output/Output.js";
import type { CliDeps, ContextFactory } from "./CommandContext.js";
import { globalOptionValues } from "./globalOptions.js";

const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const CONTEXT_HELP = `
A context is a saved API: its URL, and optionally a token and a project. Commands use the one
named by --context, else IAAS_CONTEXT, else the current one (\`iaas context use NAME\`). Each
setting is taken from the flag first, then the environment, then the context: --url / IAAS_URL
win over the context's URL, IAAS_TOKEN over its token, --project / IAAS_PROJECT over its project.
Contexts live in the config file (mode 0600); a file written by an older \`iaas login\` (one API
at the top level) is read as the context "default" and converted on the first change.

Examples:
  iaas context add prod --url https://iaas.example.org --token iaas_… --project web
  iaas context add lab --url http://10.0.0.5:8080 --use
  iaas context list
  iaas --context lab vm list
  IAAS_CONTEXT=prod iaas vm list
`;

/** `iaas context add|use|list|remove`: several APIs in one config file. */
export function registerContextCommands(program: Command, _ctxOf: ContextFactory, deps: CliDeps): void {
  const context = program.command("context").description("save several APIs (URL, token, project) and switch between them").addHelpText("after", CONTEXT_HELP);

  context
    .command("add")
    .description("save an API as a context")
    .argument("<name>", "context name (letters, digits, '.', '_', '-')")
    .requiredOption("--url <url>", "the API's base URL")
    .option("--token <token>", "API token to send (else IAAS_TOKEN, or none)")
    .option("--project <name>", "project to act in")
    .option("--use", "make it the current context")
    .action((name: string, opts: { url: string; token?: string; project?: string; use?: boolean }, command: Command) => {
      if (!CONTEXT_NAME.test(name)) throw usageError(`invalid context name '${name}'`, "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit");
      const url = normalizeApiUrl(opts.url, "--url");
      const project = opts.project === undefined ? undefined : checkProjectRef(opts.project.trim(), "--project");
      if (opts.token !== undefined && /\s/.test(opts.token)) throw usageError("the token contains white space", "copy the token exactly as `iaas token create` printed it");
      const file = configFilePath(deps.env, deps.homedir);
      const config = migrateToContexts(readConfigObject(file, deps.readFile));
      if (config.contexts[name] !== undefined) throw usageError(`context '${name}' already exists`, `remove it first (\`iaas context remove ${name}\`), or choose another name`);
      config.contexts[name] = { url, ...(opts.token === undefined ? {} : { token: opts.token }), ...(project === undefined ? {} : { project }) };
      if (opts.use === true || config.currentContext === undefined) config.currentContext = name;
      writeConfigFile(file, config);
      outputOf(command, deps).note(`context '${name}' saved in ${file}${config.currentContext === name ? " (current)" : ""}`);
    });

  context
    .command("use")
    .description("make a context the current one")
    .argument("<name>", "context name (`iaas context list`)")
    .action((name: string, _opts: object, command: Command) => {
      const file = configFilePath(deps.env, deps.homedir);
      const config = migrateToContexts(readConfigObject(file, deps.readFile));
      if (config.contexts[name] === undefined) throw missing(name, Object.keys(config.contexts));
      config.currentContext = name;
      writeConfigFile(file, config);
      outputOf(command, deps).note(`now using context '${name}' (${config.contexts[name]?.url ?? "default URL"})`);
    });

  context
    .command("list")
    .alias("ls")
    .description("list the contexts (* marks the current one; tokens are not shown)")
    .action((_opts: object, command: Command) => {
      const file = configFilePath(deps.env, deps.homedir);
      const config = readConfigFile(file, deps.readFile);
      const current = config.currentContext ?? (config.contexts === undefined && contextsOf(config)["default"] !== undefined ? "default" : null);
      const items = Object.entries(contextsOf(config)).map(([name, c]) => ({ name, current: name === current, url: c.url ?? null, project: c.project ?? null, token: c.token !== undefined }));
      const out = outputOf(command, deps);
      if (out.json) out.printJson({ items, configPath: file });
      else out.line(formatTable(["CURRENT", "NAME", "URL", "PROJECT", "TOKEN"], items.map((c) => [c.current ? "*" : "", c.name, c.url ?? "-", c.project ?? "-", c.token ? "yes" : "no"])));
    });

  context
    .command("remove")
    .alias("rm")
    .description("forget a context (and its token)")
    .argument("<name>", "context name (`iaas context list`)")
    .action((name: string, _opts: object, command: Command) => {
      const file = configFilePath(deps.env, deps.homedir);
      const config = migrateToContexts(readConfigObject(file, deps.readFile));
      if (config.contexts[name] === undefined) throw missing(name, Object.keys(config.contexts));
      delete config.contexts[name];
      if (config.currentContext === name) delete config.currentContext;
      writeConfigFile(file, config);
      outputOf(command, deps).note(`context '${name}' removed`);
    });
}

function missing(name: string, known: readonly string[]): Error {
  return usageError(`context '${name}' does not exist${known.length > 0 ? ` (known: ${known.join(", ")})` : ""}`, "list them with `iaas context list`");
}

/** These commands need no API: only the output format of the global options. */
function outputOf(command: Command, deps: CliDeps): Output {
  const format = globalOptionValues(command).output;
  return new Output(deps.stdout, deps.stderr, format === "json" || format === "yaml" ? (format as OutputFormat) : "table", yamlOf);
}

function yamlOf(value: unknown): string {
  return yamlStringify(value);
}
