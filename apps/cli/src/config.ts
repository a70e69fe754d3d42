import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { looksLikeUuid, ProjectName } from "@iaas/contracts";
import { usageError } from "./CliError.js";

import { DEFAULT_API_URL } from "./defaults.js";

export { DEFAULT_API_URL };

/** `~/.config/iaas/config.json` (or `$IAAS_CONFIG`): every member optional (`iaas login` writes it). */
export const ContextEntry = z.object({
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  /** The project to act in (sent as `X-Iaas-Project`). */
  project: z.string().min(1).optional(),
});
export type ContextEntry = z.infer<typeof ContextEntry>;

/**
 * The config file. A single API at the top level (as `iaas login` wrote it before contexts), or
 * named contexts (`iaas context add`), one of them current; the top-level members are read as
 * the context "default" while `contexts` is absent.
 */
export const ConfigFile = ContextEntry.extend({
  contexts: z.record(z.string(), ContextEntry).optional(),
  currentContext: z.string().min(1).optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

export type UrlSource = "--url" | "IAAS_URL" | "config file" | "default";
export type TokenSource = "--token" | "IAAS_TOKEN" | "config file";
export type ProjectSource = "--project" | "IAAS_PROJECT" | "config file";

export interface ResolvedConfig {
  /** Base URL of the API, without a trailing slash. */
  url: string;
  urlSource: UrlSource;
  token: string | null;
  tokenSource: TokenSource | null;
  /** The project to act in (name or id), sent as `X-Iaas-Project`; null: none (the token's, or `default`). */
  project: string | null;
  projectSource: ProjectSource | null;
  /** The context used (`--context`, IAAS_CONTEXT, the config file's current one); null: none. */
  context: string | null;
  /** The config file consulted (whether or not it exists). */
  configPath: string;
  configFound: boolean;
}

export interface ConfigInputs {
  flagUrl: string | undefined;
  flagContext?: string | undefined;
  flagProject?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  homedir: string;
  /** Reads a file as UTF-8; null when it does not exist. */
  readFile?: (file: string) => string | null;
}

/** Where the config file is: `$IAAS_CONFIG`, else `~/.config/iaas/config.json`. */
export function configFilePath(env: Readonly<Record<string, string | undefined>>, homedir: string): string {
  const fromEnv = nonEmpty(env.IAAS_CONFIG);
  return fromEnv ?? path.join(homedir, ".config", "iaas", "config.json");
}

/**
 * The context to use: `--context`, then IAAS_CONTEXT, then the file's current one; without any,
 * the file's top-level members. A context that is named but missing is a usage error.
 */
function selectContext(file: ConfigFile, inputs: ConfigInputs, configPath: string): { name: string | null; entry: ContextEntry } {
  const flag = nonEmpty(inputs.flagContext);
  const env = nonEmpty(inputs.env.IAAS_CONTEXT);
  const name = flag ?? env ?? file.currentContext ?? null;
  if (name === null) return { name: null, entry: file };
  const contexts = contextsOf(file);
  const entry = contexts[name];
  if (entry === undefined) {
    const from = flag !== undefined ? "--context" : env !== undefined ? "IAAS_CONTEXT" : configPath;
    const known = Object.keys(contexts);
    throw usageError(
      `context '${name}' (from ${from}) does not exist${known.length > 0 ? ` (known: ${known.join(", ")})` : ""}`,
      "list them with `iaas context list`; add one with `iaas context add NAME --url URL`",
    );
  }
  return { name, entry };
}

/** The file's contexts by name; a file without `contexts` has its top-level members as "default". */
export function contextsOf(file: ConfigFile): Record<string, ContextEntry> {
  if (file.contexts !== undefined) return file.contexts;
  if (file.url === undefined && file.token === undefined && file.project === undefined) return {};
  return { [DEFAULT_CONTEXT]: { url: file.url, token: file.token, project: file.project } };
}

/** The name the top-level (single API) settings of an older config file get as a context. */
export const DEFAULT_CONTEXT = "default";

/** A config file parsed and checked (an empty one when it does not exist). */
export function readConfigFile(file: string, readFile: (file: string) => string | null = readFileIfExists): ConfigFile {
  const text = readFile(file);
  return text === null ? {} : parseConfigFile(text, file);
}

/**
 * Resolves the API URL, token and project, each from the flag, then the environment, then the
 * context chosen by `--context` / IAAS_CONTEXT / the file (see selectContext). URL: `--url`, then `IAAS_URL`, then the config file,
 * then http://127.0.0.1:8080. Token: `IAAS_TOKEN`, then the config file. Project: `--project`,
 * then `IAAS_PROJECT`, then the config file, else none (the API picks the token's, or `default`).
 */
export function resolveConfig(inputs: ConfigInputs): ResolvedConfig {
  const read = inputs.readFile ?? readFileIfExists;
  const configPath = configFilePath(inputs.env, inputs.homedir);
  const explicitPath = nonEmpty(inputs.env.IAAS_CONFIG) !== undefined;
  const text = read(configPath);
  if (text === null && explicitPath) {
    throw usageError(`config file ${configPath} (from IAAS_CONFIG) does not exist`, "create it, or unset IAAS_CONFIG");
  }
  const { name: context, entry: file } = selectContext(text === null ? {} : parseConfigFile(text, configPath), inputs, configPath);

  const flagUrl = nonEmpty(inputs.flagUrl);
  const envUrl = nonEmpty(inputs.env.IAAS_URL);
  let url: string;
  let urlSource: UrlSource;
  if (flagUrl !== undefined) [url, urlSource] = [flagUrl, "--url"];
  else if (envUrl !== undefined) [url, urlSource] = [envUrl, "IAAS_URL"];
  else if (file.url !== undefined) [url, urlSource] = [file.url, "config file"];
  else [url, urlSource] = [DEFAULT_API_URL, "default"];

  const envToken = nonEmpty(inputs.env.IAAS_TOKEN);
  let token: string | null = null;
  let tokenSource: TokenSource | null = null;
  if (envToken !== undefined) [token, tokenSource] = [envToken, "IAAS_TOKEN"];
  else if (file.token !== undefined) [token, tokenSource] = [file.token, "config file"];

  const flagProject = nonEmpty(inputs.flagProject);
  const envProject = nonEmpty(inputs.env.IAAS_PROJECT);
  let project: string | null = null;
  let projectSource: ProjectSource | null = null;
  if (flagProject !== undefined) [project, projectSource] = [flagProject, "--project"];
  else if (envProject !== undefined) [project, projectSource] = [envProject, "IAAS_PROJECT"];
  else if (file.project !== undefined) [project, projectSource] = [file.project.trim(), "config file"];

  return {
    url: normalizeApiUrl(url, urlSource === "config file" ? `${configPath}` : urlSource),
    urlSource,
    token,
    tokenSource,
    project: project === null ? null : checkProjectRef(project, projectSource === "config file" ? configPath : (projectSource ?? "--project")),
    projectSource,
    context,
    configPath,
    configFound: text !== null,
  };
}

/**
 * Checks that `raw` is an http(s) URL and drops a trailing slash. Several API replicas may be
 * given separated by commas (`http://a:8080,http://b:8080`): the CLI tries the next one when one
 * cannot be reached.
 */
export function normalizeApiUrl(raw: string, source: string): string {
  if (raw.includes(",")) {
    const urls = raw.split(",").map((u) => u.trim()).filter((u) => u !== "");
    if (urls.length === 0) throw usageError(`invalid API URL '${raw}' (from ${source})`, "use a URL such as http://127.0.0.1:8080");
    return urls.map((u) => normalizeOneUrl(u, source)).join(",");
  }
  return normalizeOneUrl(raw, source);
}

function normalizeOneUrl(raw: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw usageError(`invalid API URL '${raw}' (from ${source})`, "use a URL such as http://127.0.0.1:8080");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw usageError(`invalid API URL '${raw}' (from ${source}): only http and https are supported`);
  }
  return parsed.toString().replace(/\/+$/, "");
}

/** Checks a project reference (a project name, or a project id) before it goes into a header. */
export function checkProjectRef(ref: string, source: string): string {
  if (ProjectName.safeParse(ref).success || looksLikeUuid(ref)) return ref;
  throw usageError(
    `invalid project '${ref}' (from ${source}): a project name is 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit`,
    "list the projects with `iaas project list`",
  );
}

/**
 * The config file as a JSON object, to update some members and keep the rest ({} when it does not
 * exist). Refuses a file that is not a JSON object rather than overwrite what it holds.
 */
export function readConfigObject(file: string, readFile: (file: string) => string | null = readFileIfExists): Record<string, unknown> {
  const text = readFile(file);
  if (text === null) return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw usageError(`config file ${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, "fix or remove it, then log in again");
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw usageError(`config file ${file} is not a JSON object`, "fix or remove it, then log in again");
  }
  return json as Record<string, unknown>;
}

/**
 * Writes the config file readable by its owner only (mode 0600, its directory 0700 when created):
 * to a temporary file beside it, then renamed into place, so a reader never sees half a file.
 */
export function writeConfigFile(file: string, config: Record<string, unknown>): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    rmSync(temp, { force: true });
    writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    chmodSync(temp, 0o600);
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw usageError(`cannot write config file ${file}: ${err instanceof Error ? err.message : String(err)}`, "set IAAS_CONFIG to a file you can write");
  }
}

function parseConfigFile(text: string, file: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw usageError(`config file ${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = ConfigFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw usageError(`config file ${file} is invalid: ${issues}`, 'expected {"url": "http://…", "token": "…", "project": "…"} or {"contexts": {"NAME": {"url": …}}, "currentContext": "NAME"}');
  }
  return parsed.data;
}

function readFileIfExists(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ENOENT") return null;
    throw usageError(`cannot read config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/**
 * The config object in the contexts form: the top-level url/token/project of an older file become
 * the context "default" (made current); other members are kept.
 */
export function migrateToContexts(saved: Record<string, unknown>): Record<string, unknown> & { contexts: Record<string, ContextEntry> } {
  const parsed = ConfigFile.safeParse(saved);
  if (!parsed.success) throw usageError("the config file is invalid", "fix or remove it, then log in again");
  const { url, token, project, ...rest } = saved;
  const contexts = { ...contextsOf(parsed.data) };
  const migrated: Record<string, unknown> & { contexts: Record<string, ContextEntry> } = { ...rest, contexts };
  if (parsed.data.contexts === undefined && (url !== undefined || token !== undefined || project !== undefined)) migrated.currentContext = DEFAULT_CONTEXT;
  return migrated;
}

/**
 * `saved` with the login `entry` stored: in context `name` (or the current one) when the file has
 * contexts or a name is given; at the top level of a single-API file otherwise.
 */
export function withLogin(saved: Record<string, unknown>, name: string | null, entry: ContextEntry): Record<string, unknown> {
  if (name === null && saved.contexts === undefined) {
    const next: Record<string, unknown> = { ...saved, ...entry };
    if (entry.project === undefined) delete next.project;
    return next;
  }
  const migrated = migrateToContexts(saved);
  const current = typeof migrated.currentContext === "string" ? migrated.currentContext : null;
  const target = name ?? current ?? DEFAULT_CONTEXT;
  migrated.contexts[target] = entry;
  if (current === null) migrated.currentContext = target;
  return migrated;
}

/** The saved settings of context `name` (else the current one, else the top-level ones); {} when none. */
export function savedContext(saved: Record<string, unknown>, name: string | null): ContextEntry {
  const parsed = ConfigFile.safeParse(saved);
  if (!parsed.success) return {};
  const contexts = contextsOf(parsed.data);
  return contexts[name ?? parsed.data.currentContext ?? DEFAULT_CONTEXT] ?? {};
}
