import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile, chmod, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../../api/src/testing/testApi.js";
import { runIaas } from "./testing/runIaas.js";

const run = promisify(execFile);
const CLI_BIN = path.resolve(import.meta.dirname, "../bin/iaas.mjs");

// Contexts and shell completion against the real API (and, for completion, the built `iaas` in a
// real bash).
describe("contexts and completion", () => {
  let api: TestApi;
  let dir: string;
  let config: string;

  /** `iaas argv` with the config file of this test and no IAAS_URL. */
  const iaas = (argv: string[], env: Record<string, string> = {}) => runIaas(argv, "", { env: { IAAS_URL: "", IAAS_CONFIG: config, ...env } });

  beforeAll(async () => {
    api = await startTestApi();
    await api.reset();
    expect((await api.post("/v1/projects", { name: "team-a" })).status).toBe(201);
    for (const name of ["web1", "web2", "db1"]) expect((await api.post("/v1/vms", { name, image: "deb", memory: "128M", disk: "1G", network: false })).status).toBe(202);
    dir = await mkdtemp(path.join(os.tmpdir(), "iaas-ctx-"));
    config = path.join(dir, "config.json");
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads a single-API config as the context 'default' and converts it on the first change, mode 0600", async () => {
    await writeFile(config, JSON.stringify({ url: api.base, project: "default" }));
    const listed = await iaas(["context", "list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^\*\s+default\s+http:\/\/127\.0\.0\.1:\d+\s+default\s+no$/m);
    expect((await iaas(["vm", "list"])).code).toBe(0);

    const added = await iaas(["context", "add", "down", "--url", "http://127.0.0.1:9", "--token", "iaas_00000000_x"]);
    expect(added.code).toBe(0);
    const saved = JSON.parse(await readFile(config, "utf8")) as Record<string, unknown>;
    expect(saved).toEqual({
      contexts: { default: { url: api.base, project: "default" }, down: { url: "http://127.0.0.1:9", token: "iaas_00000000_x" } },
      currentContext: "default",
    });
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    const json = JSON.parse((await iaas(["context", "list", "-o", "json"])).stdout) as { items: { name: string; token: boolean; current: boolean }[] };
    expect(json.items).toEqual([
      expect.objectContaining({ name: "default", current: true, token: false }),
      expect.objectContaining({ name: "down", current: false, token: true }),
    ]);
    expect(JSON.stringify(json)).not.toContain("iaas_00000000_x");
  });

  it("chooses the context by --context, then IAAS_CONTEXT, then the current one; --url and IAAS_URL win over its URL", async () => {
    expect((await iaas(["context", "add", "main", "--url", api.base, "--project", "team-a"])).code).toBe(0);
    expect((await iaas(["context", "use", "down"])).code).toBe(0);
    expect((await iaas(["vm", "list"])).code).toBe(5);
    expect((await iaas(["--context", "main", "vm", "list"])).code).toBe(0);
    expect((await iaas(["vm", "list", "--context", "main"])).code).toBe(0);
    expect((await iaas(["vm", "list"], { IAAS_CONTEXT: "main" })).code).toBe(0);
    expect((await iaas(["--context", "down", "vm", "list"], { IAAS_CONTEXT: "main" })).code).toBe(5);
    expect((await iaas(["--context", "down", "vm", "list"], { IAAS_URL: api.base })).code).toBe(0);
    const who = await iaas(["--context", "main", "vm", "list", "-o", "json"]);
    expect((JSON.parse(who.stdout) as { items: unknown[] }).items).toEqual([]);
    expect((JSON.parse((await iaas(["--context", "default", "vm", "list", "-o", "json"])).stdout) as { items: unknown[] }).items).toHaveLength(3);
  });

  it("refuses unknown contexts, bad names and duplicates with exit 2 and a hint", async () => {
    const unknown = await iaas(["--context", "nope", "vm", "list"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("context 'nope' (from --context) does not exist");
    expect(unknown.stderr).toContain("iaas context list");
    expect((await iaas(["context", "use", "nope"])).code).toBe(2);
    expect((await iaas(["context", "add", "bad name", "--url", api.base])).code).toBe(2);
    expect((await iaas(["context", "add", "main", "--url", api.base])).stderr).toContain("already exists");
    expect((await iaas(["context", "remove", "down"])).code).toBe(0);
    const after = JSON.parse(await readFile(config, "utf8")) as { contexts: Record<string, unknown>; currentContext?: string };
    expect(Object.keys(after.contexts)).toEqual(["default", "main"]);
    expect(after.currentContext).toBeUndefined();
  });

  it("completes `iaas vm cr` to create and a VM name from the API in a real bash", async () => {
    const bin = path.join(dir, "bin");
    await mkdir(bin, { recursive: true });
    await writeFile(path.join(bin, "iaas"), `#!/bin/sh\nexec "${process.execPath}" "${CLI_BIN}" "$@"\n`);
    await chmod(path.join(bin, "iaas"), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, IAAS_URL: api.base, IAAS_CONFIG: config, IAAS_CONTEXT: "" };
    const script = (await run(process.execPath, [CLI_BIN, "completion", "bash"], { env })).stdout;
    await writeFile(path.join(dir, "iaas.bash"), script);
    const complete = async (words: string[]): Promise<string[]> => {
      const line = `source ${JSON.stringify(path.join(dir, "iaas.bash"))}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _iaas; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await run("bash", ["--norc", "--noprofile", "-c", line], { env })).stdout.split("\n").filter((w) => w !== "");
    };
    expect(await complete(["iaas", "vm", "cr"])).toEqual(["create"]);
    expect(await complete(["iaas", "vm", "start", "we"])).toEqual(["web1", "web2"]);
    expect(await complete(["iaas", "vm", "create", "x", "--image", ""])).toEqual(["deb"]);
    expect(await complete(["iaas", "-o", ""])).toEqual(["table", "json", "yaml"]);
    expect(await complete(["iaas", "context", "use", ""])).toEqual(["default", "main"]);
    expect(await complete(["iaas", "vm", "list", "--l"])).toEqual(["--limit"]);
    // An API that does not answer completes to nothing, quietly.
    expect(await complete(["iaas", "--url", "http://127.0.0.1:9", "vm", "start", ""])).toEqual([]);
  });

  it("prints zsh and fish scripts from the same tree, and refuses other shells", async () => {
    const zsh = await iaas(["completion", "zsh"]);
    expect(zsh.stdout).toContain("bashcompinit");
    expect(zsh.stdout).toContain("['iaas vm']=");
    const fish = await iaas(["completion", "fish"]);
    expect(fish.stdout).toContain("complete -c iaas -n 'test (__iaas_path) = '\\''iaas vm'\\''' -a ");
    expect((await iaas(["completion", "tcsh"])).code).toBe(2);
  });
});
