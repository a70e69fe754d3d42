import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent } from "@iaas/contracts";
import { guestImages, ROOT, Stack } from "./harness.js";

const execFileP = promisify(execFile);

// The "done when" through the real processes and the CLI: an API with authentication on,
// its first admin token made as `npm run up` makes it, then tokens of each role and two projects.
describe("security through the CLI", () => {
  let stack: Stack;
  let configFile: string;
  const secrets: Record<string, string> = {};

  beforeAll(async () => {
    stack = await Stack.start(["host-sec"], { apiEnv: { IAAS_AUTH: "token" }, defaultNetwork: false, hostEnv: { "host-sec": { IAAS_HOST_CPUS: "16" } } });
    configFile = path.join(stack.dir, "cli", "config.json");
    const boot = await execFileP(process.execPath, [path.join(ROOT, "apps/api/dist/bootstrap.js"), stack.url], {
      env: { PATH: process.env.PATH, HOME: stack.dir, DATABASE_URL: stack.database.url, IAAS_CONFIG: configFile },
    });
    expect(boot.stdout).toMatch(/created admin token 'admin'/);
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  /** The CLI as the bootstrap admin (the config file), or with another token. */
  const as = (who: string | null, args: string[]) => stack.cli(args, { env: { IAAS_CONFIG: configFile, ...(who ? { IAAS_TOKEN: secrets[who] ?? "" } : {}) } });
  const ok = async (who: string | null, args: string[]) => {
    const r = await as(who, args);
    expect(r.code, `iaas ${args.join(" ")}: ${r.stderr}`).toBe(0);
    return r;
  };

  it("has written the first admin token to a 0600 config, and answers 401 without a token", async () => {
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect((await ok(null, ["whoami"])).stdout).toMatch(/admin/);
    expect((await fetch(`${stack.url}/v1/vms`)).status).toBe(401);
    // HOME has no CLI config: no token is sent.
    const anonymous = await stack.cli(["vm", "list"]);
    expect(anonymous.code, anonymous.stderr).toBe(5);
  });

  it("gives each role its rights, each project its own things, and a quota its limit; the audit trail says who", async () => {
    const images = await guestImages(["linux"]);
    await ok(null, ["image", "import", "linux", "--file", images.linux, "--wait"]);
    await ok(null, ["image", "set-public", "linux"]);
    for (const p of ["team-a", "team-b"]) await ok(null, ["project", "create", p]);
    await ok(null, ["project", "set-quota", "team-a", "--vms", "5"]);
    for (const [name, role, project] of [
      ["watcher", "viewer", null],
      ["a-op", "operator", "team-a"],
      ["b-op", "operator", "team-b"],
    ] as const) {
      const made = await ok(null, ["token", "create", name, "--role", role, ...(project ? ["--project", project] : [])]);
      secrets[name] = made.stdout.trim();
    }
    const viewer = await as("watcher", ["vm", "create", "nope", "--image", "linux", "--no-network"]);
    expect(viewer.code).toBe(5);
    expect(viewer.stderr).toMatch(/403|operator role/);
    await ok("b-op", ["vm", "create", "b-secret", "--image", "linux", "--memory", "64M", "--no-network"]);
    const peek = await as("a-op", ["vm", "show", "b-secret"]);
    expect(peek.code).toBe(3);
    expect(peek.stderr).toMatch(/not found/);
    for (let i = 1; i <= 5; i++) await ok("a-op", ["vm", "create", `a${i}`, "--image", "linux", "--memory", "64M", "--no-network"]);
    const sixth = await as("a-op", ["vm", "create", "a6", "--image", "linux", "--memory", "64M", "--no-network"]);
    expect(sixth.code).toBe(3);
    expect(sixth.stderr).toMatch(/quota vms \(VMs\) of project 'team-a' is 5: 5 in use/);
    const rows = (JSON.parse((await ok(null, ["audit", "list", "--limit", "200", "-o", "json"])).stdout) as { items: AuditEvent[] }).items;
    expect(rows.some((a) => a.actorName === "watcher" && a.outcome === "denied" && a.status === 403)).toBe(true);
    expect(rows.some((a) => a.actorName === "a-op" && a.outcome === "failed" && a.status === 409 && (a.detail ?? "").includes("QUOTA_EXCEEDED"))).toBe(true);
    expect(rows.filter((a) => a.actorName === "a-op" && a.action === "vm.create" && a.project === "team-a")).toHaveLength(5);
    expect(rows.some((a) => a.actorName === "anonymous" && a.status === 401)).toBe(true);
  }, 240_000);
});
