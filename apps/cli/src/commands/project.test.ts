import { afterEach, describe, expect, it } from "vitest";
import { makeProject, PROJECT_ID } from "../testing/fixtures.js";
import { bodyOf, json, noContent, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const ADMIN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;
const GIB = 1024 ** 3;

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table));
  return server;
}

const env = { IAAS_TOKEN: ADMIN };

const busy = makeProject({
  description: "Team A's lab",
  quota: { vms: 10, vcpus: 16, memoryBytes: 32 * GIB, diskBytes: 500 * GIB, imageBytes: 100 * GIB, backups: 2 },
  usage: { vms: 3, vcpus: 6, memoryBytes: 1.5 * GIB, diskBytes: 40 * GIB, images: 2, imageBytes: 3 * GIB, networks: 1, backups: 4 },
});

describe("project show", () => {
  it("prints what the project uses against each quota, one line each", async () => {
    const s = await serve({ "GET /v1/projects/team-a": json(busy) });
    const run = await runIaas(["project", "show", "team-a"], s.url, { env });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${ADMIN}`);
    expect(run.stdout).toBe(
      [
        "name:        team-a",
        `id:          ${PROJECT_ID}`,
        "description: Team A's lab",
        "created:     2025-01-01T00:00:00.000Z",
        "",
        "usage / quota:",
        "vms         3 / 10",
        "vcpus       6 / 16",
        "memory      1.5 GiB / 32 GiB",
        "disk        40 GiB / 500 GiB",
        "images      2 / unlimited",
        "image-bytes 3 GiB / 100 GiB",
        "networks    1 / unlimited",
        "backups     4 / 2  (over the limit)",
        "",
      ].join("\n"),
    );
    expect(JSON.parse((await runIaas(["project", "show", "team-a", "-o", "json"], s.url, { env })).stdout)).toEqual(busy);
  });

  it("exits 3 when the project does not exist", async () => {
    const s = await serve({ "GET /v1/projects/nope": problem(404, "NOT_FOUND", "project 'nope' not found", "run `iaas project list`") });
    const run = await runIaas(["project", "show", "nope"], s.url, { env });
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: project 'nope' not found\nhint: run `iaas project list`\n" });
  });
});

describe("project create, list, delete", () => {
  it("creates a project with a description and shows it", async () => {
    const s = await serve({ "POST /v1/projects": json(makeProject({ description: "lab" }), 201) });
    const run = await runIaas(["project", "create", "team-a", "--description", "lab"], s.url, { env: { ...env, IAAS_PROJECT: "ops" } });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.method).toBe("POST");
    expect(bodyOf(s.requests[0])).toEqual({ name: "team-a", description: "lab" });
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("ops");
    expect(run.stdout).toContain("name:        team-a\n");
    expect(run.stdout).toContain("vms         0 / unlimited\n");
  });

  it("refuses a bad project name with exit 2, and exits 3 when the name is taken", async () => {
    const s = await serve({ "POST /v1/projects": problem(409, "NAME_TAKEN", "a project named 'team-a' already exists") });
    for (const name of ["Team-A", "-a", "a_b", "x".repeat(64)]) {
      expect((await runIaas(["project", "create", name], s.url, { env })).code, name).toBe(2);
    }
    expect(s.requests).toHaveLength(0);
    const taken = await runIaas(["project", "create", "team-a"], s.url, { env });
    expect(taken.code).toBe(3);
    expect(bodyOf(s.requests[0])).toEqual({ name: "team-a" });
  });

  it("lists projects with used/limit per resource", async () => {
    const s = await serve({ "GET /v1/projects": json({ items: [makeProject({ name: "default", id: "p0" }), busy] }) });
    const run = await runIaas(["project", "list"], s.url, { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        "NAME     VMS   VCPUS  MEMORY          DISK            NETWORKS  CREATED  DESCRIPTION",
        "default  0/-   0/-    0 B/-           0 B/-           0/-       1m ago   -",
        "team-a   3/10  6/16   1.5 GiB/32 GiB  40 GiB/500 GiB  1/-       1m ago   Team A's lab",
        "",
      ].join("\n"),
    );
  });

  it("deletes a project (204), and exits 3 while it still holds things", async () => {
    const s = await serve({
      "DELETE /v1/projects/team-a": noContent(),
      "DELETE /v1/projects/team-b": problem(409, "INVALID_STATE", "project 'team-b' still has 2 VMs", "delete them (and revoke its tokens) first"),
    });
    expect(await runIaas(["project", "delete", "team-a"], s.url, { env })).toEqual({ code: 0, stdout: "project team-a deleted\n", stderr: "" });
    expect(s.requests[0]?.method).toBe("DELETE");
    expect(s.requests[0]?.headers["idempotency-key"]).toBeDefined();
    const held = await runIaas(["project", "rm", "team-b"], s.url, { env });
    expect(held).toEqual({ code: 3, stdout: "", stderr: "error: project 'team-b' still has 2 VMs\nhint: delete them (and revoke its tokens) first\n" });
  });

  it("exits 5 when the role may not manage projects (403)", async () => {
    const s = await serve({ "POST /v1/projects": problem(403, "FORBIDDEN", "role viewer may not do this", "ask an admin") });
    const run = await runIaas(["project", "create", "team-a"], s.url, { env });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("refused the request (403): role viewer may not do this\nhint: ask an admin\n");
  });
});

describe("project set-quota", () => {
  it("sends the limits given as PUT /quota, sizes as written and none as null", async () => {
    const s = await serve({ "PUT /v1/projects/team-a/quota": json(busy) });
    const run = await runIaas(
      [
        "project",
        "set-quota",
        "team-a",
        "--vms",
        "10",
        "--vcpus",
        "16",
        "--memory",
        "32G",
        "--disk",
        "500G",
        "--images",
        "none",
        "--image-bytes",
        "100G",
        "--networks",
        "NONE",
        "--backups",
        "0",
      ],
      s.url,
      { env },
    );
    expect(run.code).toBe(0);
    expect(s.requests[0]?.method).toBe("PUT");
    expect(bodyOf(s.requests[0])).toEqual({ vms: 10, vcpus: 16, memory: "32G", disk: "500G", images: null, imageBytes: "100G", networks: null, backups: 0 });
    expect(run.stdout).toContain("vms         3 / 10\n");
    expect(run.stdout).toContain("memory      1.5 GiB / 32 GiB\n");
  });

  it("sends only the limits given", async () => {
    const s = await serve({ "PUT /v1/projects/team-a/quota": json(busy) });
    expect((await runIaas(["project", "set-quota", "team-a", "--memory", "none"], s.url, { env })).code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ memory: null });
  });

  it("refuses no limits, bad numbers and bad sizes with exit 2 before calling the API", async () => {
    const s = await serve({});
    for (const argv of [
      ["project", "set-quota", "team-a"],
      ["project", "set-quota", "team-a", "--vms", "-1"],
      ["project", "set-quota", "team-a", "--vms", "ten"],
      ["project", "set-quota", "team-a", "--vcpus", "1.5"],
      ["project", "set-quota", "team-a", "--memory", "lots"],
      ["project", "set-quota", "team-a", "--disk", "5Q"],
      ["project", "set-quota"],
    ]) {
      expect((await runIaas(argv, s.url, { env })).code, argv.join(" ")).toBe(2);
    }
    expect((await runIaas(["project", "set-quota", "team-a"], s.url, { env })).stderr).toContain("error: set-quota needs at least one limit\n");
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 on a quota the API refuses as exceeded elsewhere (QUOTA_EXCEEDED is a conflict)", async () => {
    const s = await serve({
      "POST /v1/vms": problem(409, "QUOTA_EXCEEDED", "project 'team-a' would use 11 VMs, its quota is 10", "raise it with `iaas project set-quota team-a --vms N`"),
    });
    const run = await runIaas(["--project", "team-a", "vm", "create", "web1", "--image", "deb12"], s.url, { env });
    expect(run.code).toBe(3);
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("team-a");
    expect(run.stderr).toBe("error: project 'team-a' would use 11 VMs, its quota is 10\nhint: raise it with `iaas project set-quota team-a --vms N`\n");
  });
});
