import { describe, expect, it } from "vitest";
import { configFilePath, contextsOf, DEFAULT_API_URL, migrateToContexts, resolveConfig, withLogin } from "./config.js";

const HOME = "/home/ada";
const DEFAULT_FILE = "/home/ada/.config/iaas/config.json";

function files(entries: Record<string, string>): (file: string) => string | null {
  return (file) => entries[file] ?? null;
}

describe("resolveConfig", () => {
  it("falls back to the default URL and no token when nothing is configured", () => {
    const config = resolveConfig({ flagUrl: undefined, env: {}, homedir: HOME, readFile: files({}) });
    expect(config).toMatchObject({ url: DEFAULT_API_URL, urlSource: "default", token: null, tokenSource: null, configFound: false });
    expect(config.configPath).toBe(DEFAULT_FILE);
  });

  it("prefers --url over IAAS_URL over the config file", () => {
    const readFile = files({ [DEFAULT_FILE]: JSON.stringify({ url: "http://file:1", token: "file-token" }) });
    const env = { IAAS_URL: "http://env:2" };
    expect(resolveConfig({ flagUrl: "http://flag:3/", env, homedir: HOME, readFile })).toMatchObject({ url: "http://flag:3", urlSource: "--url" });
    expect(resolveConfig({ flagUrl: undefined, env, homedir: HOME, readFile })).toMatchObject({ url: "http://env:2", urlSource: "IAAS_URL" });
    expect(resolveConfig({ flagUrl: undefined, env: {}, homedir: HOME, readFile })).toMatchObject({ url: "http://file:1", urlSource: "config file" });
  });

  it("prefers IAAS_TOKEN over the config file's token, and ignores empty variables", () => {
    const readFile = files({ [DEFAULT_FILE]: JSON.stringify({ token: "file-token" }) });
    expect(resolveConfig({ flagUrl: undefined, env: { IAAS_TOKEN: "env-token" }, homedir: HOME, readFile })).toMatchObject({
      token: "env-token",
      tokenSource: "IAAS_TOKEN",
    });
    expect(resolveConfig({ flagUrl: undefined, env: { IAAS_TOKEN: "", IAAS_URL: " " }, homedir: HOME, readFile })).toMatchObject({
      token: "file-token",
      tokenSource: "config file",
      urlSource: "default",
    });
  });

  it("prefers --project over IAAS_PROJECT over the config file's project, and has none by default", () => {
    const readFile = files({ [DEFAULT_FILE]: JSON.stringify({ project: "team-a" }) });
    const env = { IAAS_PROJECT: "team-b" };
    expect(resolveConfig({ flagUrl: undefined, flagProject: "team-c", env, homedir: HOME, readFile })).toMatchObject({ project: "team-c", projectSource: "--project" });
    expect(resolveConfig({ flagUrl: undefined, env, homedir: HOME, readFile })).toMatchObject({ project: "team-b", projectSource: "IAAS_PROJECT" });
    expect(resolveConfig({ flagUrl: undefined, env: { IAAS_PROJECT: " " }, homedir: HOME, readFile })).toMatchObject({ project: "team-a", projectSource: "config file" });
    expect(resolveConfig({ flagUrl: undefined, env: {}, homedir: HOME, readFile: files({}) })).toMatchObject({ project: null, projectSource: null });
    const id = "5a6b7c8d-0000-4000-8000-00000000000c";
    expect(resolveConfig({ flagUrl: undefined, flagProject: id, env: {}, homedir: HOME, readFile: files({}) })).toMatchObject({ project: id });
  });

  it("refuses a project that is neither a project name nor an id, naming where it came from (exit 2)", () => {
    const readFile = files({ [DEFAULT_FILE]: JSON.stringify({ project: "Team A" }) });
    expect(() => resolveConfig({ flagUrl: undefined, env: {}, homedir: HOME, readFile })).toThrow(`invalid project 'Team A' (from ${DEFAULT_FILE})`);
    expect(() => resolveConfig({ flagUrl: undefined, env: { IAAS_PROJECT: "a\r\nx: y" }, homedir: HOME, readFile: files({}) })).toThrow(/\(from IAAS_PROJECT\)/);
    expect(() => resolveConfig({ flagUrl: undefined, flagProject: "-a", env: {}, homedir: HOME, readFile: files({}) })).toThrow(/\(from --project\)/);
  });

  it("reads the config file named by IAAS_CONFIG", () => {
    const env = { IAAS_CONFIG: "/etc/iaas.json" };
    expect(configFilePath(env, HOME)).toBe("/etc/iaas.json");
    const readFile = files({ "/etc/iaas.json": '{"url":"https://api.example:8443"}', [DEFAULT_FILE]: '{"url":"http://ignored"}' });
    expect(resolveConfig({ flagUrl: undefined, env, homedir: HOME, readFile })).toMatchObject({ url: "https://api.example:8443", configFound: true });
  });

  it("refuses a missing IAAS_CONFIG file, bad JSON, a bad shape and a bad URL with exit code 2", () => {
    const cases = [
      { env: { IAAS_CONFIG: "/nope.json" }, readFile: files({}), message: /\/nope\.json \(from IAAS_CONFIG\) does not exist/ },
      { env: {}, readFile: files({ [DEFAULT_FILE]: "{url:" }), message: /is not valid JSON/ },
      { env: {}, readFile: files({ [DEFAULT_FILE]: '{"url": 8080}' }), message: /config\.json is invalid: url:/ },
      { env: { IAAS_URL: "ftp://x" }, readFile: files({}), message: /only http and https/ },
      { env: { IAAS_URL: "not a url" }, readFile: files({}), message: /invalid API URL 'not a url' \(from IAAS_URL\)/ },
    ];
    for (const c of cases) {
      expect(() => resolveConfig({ flagUrl: undefined, env: c.env, homedir: HOME, readFile: c.readFile })).toThrow(c.message);
      try {
        resolveConfig({ flagUrl: undefined, env: c.env, homedir: HOME, readFile: c.readFile });
      } catch (err) {
        expect(err).toMatchObject({ exitCode: 2 });
      }
    }
  });
});

describe("contexts in the config file", () => {
  const CFG = configFilePath({}, HOME);
  const withContexts = JSON.stringify({
    contexts: { a: { url: "http://a:8080", token: "ta", project: "pa" }, b: { url: "http://b:8080" } },
    currentContext: "a",
  });

  it("takes each setting from the flag, then the environment, then the chosen context", () => {
    const read = files({ [CFG]: withContexts });
    expect(resolveConfig({ flagUrl: undefined, env: {}, homedir: HOME, readFile: read })).toMatchObject({ context: "a", url: "http://a:8080", token: "ta", project: "pa" });
    expect(resolveConfig({ flagUrl: undefined, env: { IAAS_CONTEXT: "b" }, homedir: HOME, readFile: read })).toMatchObject({ context: "b", url: "http://b:8080", token: null });
    expect(resolveConfig({ flagUrl: undefined, flagContext: "a", env: { IAAS_CONTEXT: "b" }, homedir: HOME, readFile: read })).toMatchObject({ context: "a" });
    expect(resolveConfig({ flagUrl: "http://c:1", env: { IAAS_URL: "http://d:1", IAAS_TOKEN: "te" }, homedir: HOME, readFile: read })).toMatchObject({ url: "http://c:1", token: "te", project: "pa" });
    expect(() => resolveConfig({ flagUrl: undefined, flagContext: "zz", env: {}, homedir: HOME, readFile: read })).toThrow("context 'zz' (from --context) does not exist (known: a, b)");
  });

  it("reads a single-API file as the context 'default', and a login into it converts the file", () => {
    const legacy = { url: "http://old:8080", token: "t0" };
    expect(contextsOf(legacy)).toEqual({ default: { url: "http://old:8080", token: "t0", project: undefined } });
    expect(resolveConfig({ flagUrl: undefined, flagContext: "default", env: {}, homedir: HOME, readFile: files({ [CFG]: JSON.stringify(legacy) }) })).toMatchObject({ url: "http://old:8080", token: "t0" });
    expect(withLogin(legacy, null, { url: "http://new:8080", token: "t1" })).toEqual({ url: "http://new:8080", token: "t1" });
    expect(withLogin(legacy, "lab", { url: "http://lab:8080", token: "t2" })).toEqual({
      contexts: { default: { url: "http://old:8080", token: "t0", project: undefined }, lab: { url: "http://lab:8080", token: "t2" } },
      currentContext: "default",
    });
    expect(migrateToContexts({})).toEqual({ contexts: {} });
  });
});
