import type { Command } from "commander";
import { usageError } from "../CliError.js";
import { checkProjectRef, configFilePath, normalizeApiUrl, readConfigObject, savedContext, withLogin, writeConfigFile, type ResolvedConfig } from "../config.js";
import type { Whoami } from "@iaas/contracts";
import { formatFields } from "../output/formatTable.js";
import { ROLE_SUMMARY } from "../output/securityView.js";
import type { CliDeps, CommandContext, ContextFactory } from "./CommandContext.js";
import { globalOptionValues } from "./globalOptions.js";

interface LoginOptions {
  url?: string;
  token?: string;
  project?: string;
}

const LOGIN_HELP = `
The token is checked first (GET /v1/whoami); only a token the API accepts is saved. The config
file ($IAAS_CONFIG, default ~/.config/iaas/config.json) gets "url", "token" and "project"
(without --project a saved project is dropped) and keeps its other members; it is written
readable by you only (0600, its directory 0700). IAAS_URL, IAAS_TOKEN and IAAS_PROJECT still win
over the file. Leave --token out to take the token from IAAS_TOKEN (keeps it out of your shell
history).

Examples:
  iaas login --url https://iaas.example.org --token iaas_1a2b3c4d_…
  iaas login --url http://127.0.0.1:8080 --token "$TOKEN" --project team-a
  iaas whoami
`;

/** `iaas login`, `iaas whoami`. */
export function registerAuthCommands(program: Command, ctxOf: ContextFactory, deps: CliDeps): void {
  program
    .command("login")
    .description("check an API token and save it, with the API's URL (and a project), in the config file")
    .option("--url <url>", "the API's base URL (default: IAAS_URL, or the URL in the config file)")
    .option("--token <token>", "the API token, as `iaas token create` printed it (default: IAAS_TOKEN)")
    .option("--project <name>", "the project to act in from now on (default: the token's project, or default)")
    .addHelpText("after", LOGIN_HELP)
    .action(async (opts: LoginOptions, command: Command) => {
      await login(ctxOf, deps, command, opts);
    });

  program
    .command("whoami")
    .description("show the token the CLI uses: its name, role, and the project commands act in")
    .action(async (_opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const me = await ctx.client.whoami();
      if (ctx.out.json) ctx.out.printJson({ ...me, url: ctx.config.url });
      else ctx.out.line(whoamiView(me, ctx.config));
    });
}

/**
 * Checks the token against the API, then saves URL, token and project. Everything but the API's
 * answer is checked first, so a bad config file or option sends nothing.
 */
async function login(ctxOf: ContextFactory, deps: CliDeps, command: Command, opts: LoginOptions): Promise<void> {
  const env = deps.env;
  const configPath = configFilePath(env, deps.homedir);
  const saved = readConfigObject(configPath, deps.readFile);
  // Given before the subcommand (`iaas --url U --project P login`), these count too.
  const outer = globalOptionValues(command);

  const contextName = nonEmpty(stringOf(outer.context)) ?? nonEmpty(env.IAAS_CONTEXT) ?? null;
  const urlGiven = nonEmpty(opts.url) ?? nonEmpty(stringOf(outer.url)) ?? nonEmpty(env.IAAS_URL) ?? nonEmpty(savedContext(saved, contextName).url);
  if (urlGiven === undefined) throw usageError("login needs the API's URL", "give it with --url, e.g. iaas login --url http://127.0.0.1:8080 --token T");
  const url = normalizeApiUrl(urlGiven, "--url");

  const fromFlag = nonEmpty(opts.token);
  const token = fromFlag ?? nonEmpty(env.IAAS_TOKEN);
  if (token === undefined) throw usageError("login needs a token", "give it with --token T (or in IAAS_TOKEN); an admin makes one with `iaas token create`");
  if (/\s/.test(token)) throw usageError("the token contains white space", "copy the token exactly as `iaas token create` printed it");

  const projectGiven = nonEmpty(opts.project) ?? nonEmpty(stringOf(outer.project));
  const project = projectGiven === undefined ? null : checkProjectRef(projectGiven, "--project");

  const ctx = ctxOf(command, { url, token, tokenSource: fromFlag === undefined ? "IAAS_TOKEN" : "--token", project });
  const me = await ctx.client.whoami();

  writeConfigFile(configPath, withLogin(saved, contextName, project === null ? { url, token } : { url, token, project }));

  const shownProject = (project !== null || me.scopedToProject) && me.project !== null ? me.project : null;
  if (ctx.out.json) ctx.out.printJson({ url, token: me.token, role: me.role, project: shownProject, scopedToProject: me.scopedToProject, configPath });
  else ctx.out.line(`logged in to ${url} as ${me.token} (role ${me.role}${shownProject === null ? "" : `, project ${shownProject}`})`);
  ctx.out.note(`saved in ${configPath}`);
  warnAboutLogin(ctx, env, { IAAS_URL: url, IAAS_TOKEN: token, IAAS_PROJECT: project });
}

/** Remarks after a login: variables that override what was saved, and a token sent in clear text. */
function warnAboutLogin(ctx: CommandContext, vars: Readonly<Record<string, string | undefined>>, saved: { IAAS_URL: string; IAAS_TOKEN: string; IAAS_PROJECT: string | null }): void {
  const url = saved.IAAS_URL;
  const overriding = (Object.keys(saved) as (keyof typeof saved)[]).filter((name) => {
    const value = nonEmpty(vars[name]);
    if (value === undefined) return false;
    if (name !== "IAAS_URL") return value !== saved[name];
    try {
      return normalizeApiUrl(value, name) !== url;
    } catch {
      return true;
    }
  });
  if (overriding.length > 0) {
    ctx.out.note(`note: ${overriding.join(", ")} ${overriding.length === 1 ? "is" : "are"} set and ${overriding.length === 1 ? "wins" : "win"} over the saved login; unset ${overriding.length === 1 ? "it" : "them"} to use it`);
  }
  const parsed = new URL(url);
  if (parsed.protocol === "http:" && !isLoopback(parsed.hostname)) {
    ctx.out.note(`warning: ${url} is plain http: the token crosses the network unencrypted; prefer https`);
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** `iaas whoami`: token, role (and what it may do), the project commands act in and why, the API. */
export function whoamiView(me: Whoami, config: ResolvedConfig): string {
  let why: string;
  if (me.scopedToProject) why = "the token is scoped to it";
  else if (config.projectSource === null) why = "the default; choose another with --project or IAAS_PROJECT";
  else why = config.projectSource === "config file" ? `from ${config.configPath}` : `from ${config.projectSource}`;
  const tokenFrom = config.tokenSource === "config file" ? config.configPath : config.tokenSource;
  return formatFields([
    ["token", me.token],
    ["role", `${me.role} (${ROLE_SUMMARY[me.role]})`],
    ["project", me.project === null ? null : `${me.project} (${why})`],
    ["api", config.url],
    ["token from", tokenFrom],
  ]);
}

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
