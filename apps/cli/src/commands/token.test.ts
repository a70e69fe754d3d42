import { afterEach, describe, expect, it } from "vitest";
import { makeToken } from "../testing/fixtures.js";
import { bodyOf, json, noContent, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const ADMIN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;
const SECRET = `iaas_1a2b3c4d_${"s".repeat(43)}`;

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

describe("token create", () => {
  it("sends name, role, project and expiry, prints the secret alone on stdout and warns that it is shown once", async () => {
    const created = makeToken({ expiresAt: "2025-03-01T00:01:00.000Z" });
    const s = await serve({ "POST /v1/tokens": json({ token: created, secret: SECRET }, 201) });
    const run = await runIaas(["token", "create", "ci", "--role", "operator", "--project", "team-a", "--expires", "90d"], s.url, { env });
    expect(run.code).toBe(0);
    const req = s.requests[0];
    expect(req?.method).toBe("POST");
    expect(bodyOf(req)).toEqual({ name: "ci", role: "operator", project: "team-a", expires: "90d" });
    expect(req?.headers.authorization).toBe(`Bearer ${ADMIN}`);
    // --project here scopes the token: it is not the project the request acts in.
    expect(req?.headers["x-iaas-project"]).toBeUndefined();
    expect(req?.headers["idempotency-key"]).toBeDefined();
    expect(run.stdout).toBe(`${SECRET}\n`);
    expect(run.stderr).toBe(
      [
        "token ci created: role operator, project team-a, expires 2025-03-01T00:01:00.000Z",
        "warning: this secret is shown only once: store it now (the API keeps only its hash); use it with `iaas login --token` or IAAS_TOKEN",
        "",
      ].join("\n"),
    );
  });

  it("sends only what is given, with the acting project from before the subcommand, and prints {token, secret} with -o json", async () => {
    const created = makeToken({ name: "alice", role: "admin", project: null });
    const s = await serve({ "POST /v1/tokens": json({ token: created, secret: SECRET }, 201) });
    const run = await runIaas(["--project", "ops", "token", "create", "alice", "--role", "admin", "-o", "json"], s.url, { env });
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ name: "alice", role: "admin" });
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("ops");
    expect(JSON.parse(run.stdout)).toEqual({ token: created, secret: SECRET });
    expect(run.stderr).toBe("");
  });

  it("refuses a bad name, a missing or unknown role, a bad project and a bad expiry with exit 2 before calling the API", async () => {
    const s = await serve({});
    for (const argv of [
      ["token", "create", "ci"],
      ["token", "create", "ci", "--role", "root"],
      ["token", "create", "-bad", "--role", "viewer"],
      ["token", "create", "has space", "--role", "viewer"],
      ["token", "create", "ci", "--role", "viewer", "--project", "Team_A"],
      ["token", "create", "ci", "--role", "viewer", "--expires", "soon"],
      ["token", "create", "ci", "--role", "viewer", "--expires", "0d"],
    ]) {
      const run = await runIaas(argv, s.url, { env });
      expect(run.code, argv.join(" ")).toBe(2);
    }
    expect((await runIaas(["token", "create", "ci", "--role", "viewer", "--expires", "soon"], s.url, { env })).stderr).toContain("error: invalid --expires 'soon'");
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 when the name is taken, and 5 when the token may not create tokens (403)", async () => {
    const s = await serve({
      "POST /v1/tokens": problem(409, "NAME_TAKEN", "a token named 'ci' already exists", "choose another name, or revoke the old one (`iaas token revoke NAME`)"),
    });
    const taken = await runIaas(["token", "create", "ci", "--role", "viewer"], s.url, { env });
    expect(taken).toEqual({
      code: 3,
      stdout: "",
      stderr: "error: a token named 'ci' already exists\nhint: choose another name, or revoke the old one (`iaas token revoke NAME`)\n",
    });
    await server?.close();
    const s2 = await serve({ "POST /v1/tokens": problem(403, "FORBIDDEN", "role operator may not manage tokens", "ask an admin") });
    const forbidden = await runIaas(["token", "create", "ci", "--role", "viewer"], s2.url, { env });
    expect(forbidden.code).toBe(5);
    expect(forbidden.stderr).toBe(`error: the IaaS API at ${s2.url} refused the request (403): role operator may not manage tokens\nhint: ask an admin\n`);
  });
});

describe("token list and revoke", () => {
  it("lists tokens with their project, ages and state (active, revoked, expired)", async () => {
    const s = await serve({
      "GET /v1/tokens": json({
        items: [
          makeToken({ name: "alice", role: "admin", project: null, lastUsedAt: "2025-01-01T00:00:50.000Z" }),
          makeToken({ name: "ci", expiresAt: "2025-01-31T00:01:00.000Z" }),
          makeToken({ name: "old", role: "viewer", revokedAt: "2025-01-01T00:00:10.000Z" }),
          makeToken({ name: "temp", role: "viewer", expiresAt: "2025-01-01T00:00:30.000Z" }),
        ],
      }),
    });
    const run = await runIaas(["token", "list"], s.url, { env });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.method).toBe("GET");
    expect(run.stdout).toBe(
      [
        "NAME   ROLE      PROJECT  CREATED  LAST-USED  EXPIRES  STATE",
        "alice  admin     *        1m ago   10s ago    never    active",
        "ci     operator  team-a   1m ago   never      in 30d   active",
        "old    viewer    team-a   1m ago   never      never    revoked",
        "temp   viewer    team-a   1m ago   never      30s ago  expired",
        "",
      ].join("\n"),
    );
    const asJson = await runIaas(["token", "ls", "-o", "json"], s.url, { env });
    expect(JSON.parse(asJson.stdout).items).toHaveLength(4);
  });

  it("revokes a token by name (DELETE, 204)", async () => {
    const s = await serve({ "DELETE /v1/tokens/ci": noContent() });
    expect(await runIaas(["token", "revoke", "ci"], s.url, { env })).toEqual({ code: 0, stdout: "token ci revoked\n", stderr: "" });
    expect(s.requests[0]?.method).toBe("DELETE");
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${ADMIN}`);
    expect(JSON.parse((await runIaas(["token", "revoke", "ci", "-o", "json"], s.url, { env })).stdout)).toEqual({ name: "ci", revoked: true });
  });

  it("exits 3 for a token that does not exist, 2 without a name", async () => {
    const s = await serve({ "DELETE /v1/tokens/nope": problem(404, "NOT_FOUND", "token 'nope' not found", "run `iaas token list`") });
    const run = await runIaas(["token", "revoke", "nope"], s.url, { env });
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: token 'nope' not found\nhint: run `iaas token list`\n" });
    expect((await runIaas(["token", "revoke"], s.url, { env })).code).toBe(2);
  });

  it("exits 5 when the token is not valid (401)", async () => {
    const s = await serve({ "GET /v1/tokens": problem(401, "UNAUTHORIZED", "token 'old' was revoked at 2025-01-01T00:00:10.000Z", "ask an admin for a new token (`iaas token create`)") });
    const run = await runIaas(["token", "list"], s.url, { env });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("hint: ask an admin for a new token (`iaas token create`)\n");
  });
});
