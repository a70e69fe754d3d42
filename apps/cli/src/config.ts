import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { usageError } from "./CliError.js";

export const DEFAULT_API_URL = "http://127.0.0.1:8080";

/** `~/.config/iaas/config.json` (or `$IAAS_CONFIG`): both members optional. */
export const ConfigFile = z.object({
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

export type UrlSource = "--url" | "IAAS_URL" | "config file" | "default";
export type TokenSource = "IAAS_TOKEN" | "config file";

export interface ResolvedConfig {
  /** Base URL of the API, without a trailing slash. */
  url: string;
  urlSource: UrlSource;
  token: string | null;
  tokenSource: TokenSource | null;
  /** The config file consulted (whether or not it exists). */
  configPath: string;
  configFound: boolean;
}

export interface ConfigInputs {
  flagUrl: string | undefined;
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
 * Resolves the API URL and token. URL: `--url`, then `IAAS_URL`, then the config file, then
 * http://127.0.0.1:8080. Token: `IAAS_TOKEN`, then the config file.
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

  return {
    url: normalizeApiUrl(url, urlSource === "config file" ? `${configPath}` : urlSource),
    urlSource,
    token,
    tokenSource,
    configPath,
    configFound: text !== null,
  };
}

/** Checks that `raw` is an http(s) URL and drops a trailing slash. */
export function normalizeApiUrl(raw: string, source: string): string {
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
    throw usageError(`config file ${file} is invalid: ${issues}`, 'expected {"url": "http://…", "token": "…"}');
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
