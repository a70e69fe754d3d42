import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeVm } from "../testing/fixtures.js";
import { json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const SECRET = `iaas_1a2b3c4d_${"A".repeat(43)}`;
const OTHER = `iaas_9f8e7d6c_${"B".repeat(43)}`;

let server: ScriptedServer | null = null;
let dir = "";
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "iaas-cli-login-"));
});
afterEach(async () => {
  await server?.close();
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

async function serve(table: Record<string, Route>): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table));
  return server;
}

const adminMe = { token: "alice", tokenId: "t1", role: "admin", scopedToProject: false, project: "default" };

function modeOf(file: string): number {
  return statSync(file).mode & 0o777;
}

describe("iaas login", () => {
  it("checks the token with GET /v1/whoami, then writes the config file 0600 in a new 0700 directory", async () => {
    const s = await serve({ "GET /v1/whoami": json(adminMe) });
    const file = path.join(dir, "conf", "iaas", "config.json");
    const run = await runIaas(["login", "--url", `${s.url}/`, "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`logged in to ${s.url} as alice (role admin)\n`);
    expect(run.stderr).toBe(`saved in ${file}\n`);
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(s.requests[0]?.headers["x-iaas-project"]).toBeUndefined();
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: s.url, token: SECRET });
    expect(modeOf(file)).toBe(0o600);
    expect(modeOf(path.dirname(file))).toBe(0o700);
  });

  it("sends --project as X-Iaas-Project, saves it, keeps the file's other members and tightens its mode", async () => {
    const s = await serve({ "GET /v1/whoami": json({ ...adminMe, project: "team-a" }) });
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ url: "http://old:1", token: OTHER, editor: "vim" }), { mode: 0o644 });
    const run = await runIaas(["login", "--url", s.url, "--token", SECRET, "--project", "team-a"], s.url, { env: { IAAS_CONFIG: file } });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`logged in to ${s.url} as alice (role admin, project team-a)\n`);
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("team-a");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: s.url, token: SECRET, project: "team-a", editor: "vim" });
    expect(modeOf(file)).toBe(0o600);
  });

  it("names the project of a token scoped to one, drops a saved project without --project, and never prints the secret", async () => {
    const s = await serve({ "GET /v1/whoami": json({ token: "ci", tokenId: "t2", role: "operator", scopedToProject: true, project: "team-b" }) });
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ url: s.url, token: OTHER, project: "team-a" }));
    const run = await runIaas(["login", "--url", s.url, "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(run.stdout).toBe(`logged in to ${s.url} as ci (role operator, project team-b)\n`);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: s.url, token: SECRET });

    const asJson = await runIaas(["login", "--url", s.url, "--token", SECRET, "-o", "json"], s.url, { env: { IAAS_CONFIG: file } });
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toEqual({ url: s.url, token: "ci", role: "operator", project: "team-b", scopedToProject: true, configPath: file });
    expect(asJson.stdout + asJson.stderr).not.toContain(SECRET);
  });

  it("logs in to the context named by --context: its saved URL, and the token saved into it", async () => {
    const s = await serve({ "GET /v1/whoami": json(adminMe) });
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ contexts: { lab: { url: s.url }, prod: { url: "http://prod:8080", token: OTHER } }, currentContext: "prod" }));
    const run = await runIaas(["--context", "lab", "login", "--token", SECRET], "", { env: { IAAS_CONFIG: file, IAAS_URL: "" } });
    expect(run.code).toBe(0);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ contexts: { lab: { url: s.url, token: SECRET }, prod: { url: "http://prod:8080", token: OTHER } }, currentContext: "prod" });
  });

  it("takes the token from IAAS_TOKEN when --token is left out, and warns about variables that override the login", async () => {
    const s = await serve({ "GET /v1/whoami": json(adminMe) });
    const file = path.join(dir, "config.json");
    const run = await runIaas(["login", "--url", s.url], "http://other.invalid:1", { env: { IAAS_CONFIG: file, IAAS_TOKEN: SECRET, IAAS_PROJECT: "team-a" } });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(run.stderr).toContain("note: IAAS_URL, IAAS_PROJECT are set and win over the saved login; unset them to use it\n");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: s.url, token: SECRET });
  });

  it("exits 5 with the API's hint on a rejected token (401) and writes nothing", async () => {
    const s = await serve({
      "GET /v1/whoami": problem(401, "UNAUTHORIZED", "the API token is not valid", "check the token (`iaas login`), or ask an admin for a new one (`iaas token create`)"),
    });
    const file = path.join(dir, "new", "config.json");
    const run = await runIaas(["login", "--url", s.url, "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(run).toEqual({
      code: 5,
      stdout: "",
      stderr: `error: the IaaS API at ${s.url} requires a valid token (401): the API token is not valid\nhint: check the token (\`iaas login\`), or ask an admin for a new one (\`iaas token create\`)\n`,
    });
    expect(existsSync(file)).toBe(false);
    expect(existsSync(path.dirname(file))).toBe(false);
  });

  it("leaves the existing file alone when the token is refused (403) or the project does not exist (404: exit 3)", async () => {
    const file = path.join(dir, "config.json");
    const before = JSON.stringify({ url: "http://old:1", token: OTHER });
    writeFileSync(file, before, { mode: 0o600 });
    const s = await serve({ "GET /v1/whoami": problem(403, "FORBIDDEN", "token 'ci' may not do this", "ask an admin") });
    const refused = await runIaas(["login", "--url", s.url, "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toBe(`error: the IaaS API at ${s.url} refused the request (403): token 'ci' may not do this\nhint: ask an admin\n`);
    expect(readFileSync(file, "utf8")).toBe(before);
    await server?.close();

    const s2 = await serve({ "GET /v1/whoami": problem(404, "NOT_FOUND", "project 'nope' not found", "run `iaas project list`") });
    const missing = await runIaas(["login", "--url", s2.url, "--token", SECRET, "--project", "nope"], s2.url, { env: { IAAS_CONFIG: file } });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toBe("error: project 'nope' not found\nhint: run `iaas project list`\n");
    expect(readFileSync(file, "utf8")).toBe(before);
  });

  it("refuses a missing token, a bad project name and an unreadable config file with exit 2, asking nothing", async () => {
    const s = await serve({ "GET /v1/whoami": json(adminMe) });
    const file = path.join(dir, "config.json");
    const noToken = await runIaas(["login", "--url", s.url], s.url, { env: { IAAS_CONFIG: file } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("error: login needs a token\n");
    const badProject = await runIaas(["login", "--url", s.url, "--token", SECRET, "--project", "Team_A"], s.url, { env: { IAAS_CONFIG: file } });
    expect(badProject.code).toBe(2);
    expect(badProject.stderr).toContain("error: invalid project 'Team_A' (from --project)");
    const badUrl = await runIaas(["login", "--url", "ftp://x", "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(badUrl.code).toBe(2);
    const spaced = await runIaas(["login", "--url", s.url, "--token", "iaas_1 2"], s.url, { env: { IAAS_CONFIG: file } });
    expect(spaced.code).toBe(2);
    writeFileSync(file, "{not json");
    const badFile = await runIaas(["login", "--url", s.url, "--token", SECRET], s.url, { env: { IAAS_CONFIG: file } });
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toContain(`error: config file ${file} is not valid JSON`);
    expect(readFileSync(file, "utf8")).toBe("{not json");
    mkdirSync(path.join(dir, "sub"));
    writeFileSync(path.join(dir, "sub", "c.json"), "[1]");
    expect((await runIaas(["login", "--url", s.url, "--token", SECRET], s.url, { env: { IAAS_CONFIG: path.join(dir, "sub", "c.json") } })).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });
});

describe("the saved login and the project to act in", () => {
  it("sends the saved token and project on every request; --project and IAAS_PROJECT win over the file", async () => {
    const s = await serve({ "GET /v1/vms": json({ items: [makeVm()] }) });
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ url: s.url, token: SECRET, project: "team-a" }), { mode: 0o600 });
    const env = { IAAS_CONFIG: file };
    const projectSent = async (argv: string[], extra: Record<string, string> = {}): Promise<unknown> => {
      const from = s.requests.length;
      const run = await runIaas(argv, s.url, { env: { ...env, ...extra } });
      expect(run.code, argv.join(" ")).toBe(0);
      const sent = s.requests.slice(from);
      expect(sent.length).toBeGreaterThan(0);
      for (const req of sent) expect(req.headers.authorization).toBe(`Bearer ${SECRET}`);
      return sent[0]?.headers["x-iaas-project"];
    };
    expect(await projectSent(["vm", "list"])).toBe("team-a");
    expect(await projectSent(["vm", "list"], { IAAS_PROJECT: "team-b" })).toBe("team-b");
    expect(await projectSent(["--project", "team-c", "vm", "list"], { IAAS_PROJECT: "team-b" })).toBe("team-c");
    expect(await projectSent(["vm", "list", "--project", "team-d"])).toBe("team-d");
  });

  it("sends no project header when none is configured", async () => {
    const s = await serve({ "GET /v1/vms": json({ items: [] }) });
    expect((await runIaas(["vm", "list"], s.url)).code).toBe(0);
    expect(s.requests[0]?.headers["x-iaas-project"]).toBeUndefined();
    expect(s.requests[0]?.headers.authorization).toBeUndefined();
  });

  it("refuses an invalid project name from any source with exit 2", async () => {
    const s = await serve({ "GET /v1/vms": json({ items: [] }) });
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ project: "Bad Project" }));
    const fromFile = await runIaas(["vm", "list"], s.url, { env: { IAAS_CONFIG: file } });
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toContain(`error: invalid project 'Bad Project' (from ${file})`);
    expect((await runIaas(["vm", "list"], s.url, { env: { IAAS_PROJECT: "a\nb" } })).code).toBe(2);
    expect((await runIaas(["--project", "-x-", "vm", "list"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });
});

describe("iaas whoami", () => {
  it("prints the token, its role, the project and where they come from", async () => {
    const s = await serve({ "GET /v1/whoami": json({ ...adminMe, project: "team-a" }) });
    const run = await runIaas(["whoami", "--project", "team-a"], s.url, { env: { IAAS_TOKEN: SECRET } });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("team-a");
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(run.stdout).toBe(
      [
        "token:      alice",
        "role:       admin (everything: also hosts, projects, quotas, tokens and the audit trail)",
        "project:    team-a (from --project)",
        `api:        ${s.url}`,
        "token from: IAAS_TOKEN",
        "",
      ].join("\n"),
    );
    const asJson = await runIaas(["whoami", "-o", "json"], s.url, { env: { IAAS_TOKEN: SECRET } });
    expect(JSON.parse(asJson.stdout)).toEqual({ ...adminMe, project: "team-a", url: s.url });
  });

  it("says when the token is scoped to its project", async () => {
    const s = await serve({ "GET /v1/whoami": json({ token: "ci", tokenId: "t2", role: "viewer", scopedToProject: true, project: "team-b" }) });
    const run = await runIaas(["whoami"], s.url, { env: { IAAS_TOKEN: SECRET } });
    expect(run.stdout).toContain("project:    team-b (the token is scoped to it)\n");
    expect(run.stdout).toContain("role:       viewer (reads its projects)\n");
  });

  it("exits 5 without a valid token, with a hint to log in", async () => {
    const s = await serve({ "GET /v1/whoami": problem(401, "UNAUTHORIZED", "this API needs a token") });
    const run = await runIaas(["whoami"], s.url);
    expect(run.code).toBe(5);
    expect(run.stderr).toBe(
      `error: the IaaS API at ${s.url} requires a valid token (401): this API needs a token\nhint: the API needs a token: log in with \`iaas login --url URL --token T\`, or set IAAS_TOKEN\n`,
    );
  });
});
