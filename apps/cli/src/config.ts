import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { looksLikeUuid, ProjectName } from "@iaas/contracts";
import { usageError } from "./CliError.js";

export const DEFAULT_API_URL = "http://127.0.0.1:8080";

/** `~/.config/iaas/config.json` (or `$IAAS_CONFIG`): every member optional (`iaas login` writes it). */
export const ConfigFile = z.object({
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  /** The project to act in (sent as `X-Iaas-Project`). */
  project: z.string().min(1).optional(),
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
  /** The config file consulted (whether or not it exists). */
  configPath: string;
  configFound: boolean;
}

export interface ConfigInputs {
  flagUrl: string | undefined;
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
 * Resolves the API URL, token and project. URL: `--url`, then `IAAS_URL`, then the config file,
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
  const file = text === null ? {} : parseConfigFile(text, configPath);

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
    throw usageError(`config file ${file} is invalid: ${issues}`, 'expected {"url": "http://…", "token": "…", "project": "…"} (all optional)');
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
