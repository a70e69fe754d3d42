import { afterEach, describe, expect, it } from "vitest";
import { JOB_ID, makeAuditEvent } from "../testing/fixtures.js";
import { json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const ADMIN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;

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

describe("audit list", () => {
  it("lists events newest first as a table", async () => {
    const s = await serve({
      "GET /v1/audit": json({
        items: [
          makeAuditEvent({ id: "2", at: "2025-01-01T00:00:40.000Z", actorName: "bob", project: null, outcome: "denied", status: 403, action: "token.create", method: "POST", path: "/v1/tokens" }),
          makeAuditEvent({ sourceAddress: null }),
        ],
      }),
    });
    const run = await runIaas(["audit", "list"], s.url, { env });
    expect(run.code).toBe(0);
    expect(s.requests[0]?.url).toBe("/v1/audit");
    expect(s.requests[0]?.headers.authorization).toBe(`Bearer ${ADMIN}`);
    expect(run.stdout).toBe(
      [
        "TIME                  ACTOR  PROJECT  OUTCOME  STATUS  ACTION        PATH             SOURCE",
        "2025-01-01T00:00:40Z  bob    -        denied   403     token.create  POST /v1/tokens  192.0.2.10",
        "2025-01-01T00:00:30Z  ci     team-a   allowed  200     vm.list       GET /v1/vms      -",
        "",
      ].join("\n"),
    );
  });

  it("adds a JOB column when an event started a job", async () => {
    const s = await serve({
      "GET /v1/audit": json({
        items: [makeAuditEvent({ method: "POST", path: "/v1/vms", status: 202, action: "vm.create", jobId: JOB_ID }), makeAuditEvent()],
      }),
    });
    const run = await runIaas(["audit", "ls"], s.url, { env });
    const [header, first, second] = run.stdout.split("\n");
    expect(header).toMatch(/\sSOURCE\s+JOB$/);
    expect(first).toMatch(/POST \/v1\/vms\s+192\.0\.2\.10\s+1a2b3c4d$/);
    expect(second).toMatch(/192\.0\.2\.10\s+-$/);
  });

  it("sends the filters as query parameters (its --project filters; the acting project comes from before the subcommand)", async () => {
    const s = await serve({ "GET /v1/audit": json({ items: [] }) });
    const run = await runIaas(
      ["--project", "ops", "audit", "list", "--actor", "ci", "--project", "team-a", "--since", "1h", "--outcome", "denied", "--limit", "20"],
      s.url,
      { env },
    );
    expect(run.code).toBe(0);
    const q = s.requests[0]?.query;
    expect(Object.fromEntries(q ?? [])).toEqual({ actor: "ci", project: "team-a", since: "1h", outcome: "denied", limit: "20" });
    expect(s.requests[0]?.headers["x-iaas-project"]).toBe("ops");
    expect(run.stdout).toBe("TIME  ACTOR  PROJECT  OUTCOME  STATUS  ACTION  PATH  SOURCE\n");
    await runIaas(["audit", "list", "--since", "2026-12-01T00:00:00Z", "-o", "json"], s.url, { env });
    expect(s.requests[1]?.query.get("since")).toBe("2026-12-01T00:00:00Z");
  });

  it("prints the events as JSON with -o json", async () => {
    const event = makeAuditEvent({ detail: "ok" });
    const s = await serve({ "GET /v1/audit": json({ items: [event] }) });
    const run = await runIaas(["audit", "list", "-o", "json"], s.url, { env });
    expect(JSON.parse(run.stdout)).toEqual({ items: [event] });
  });

  it("refuses a bad --since, --outcome or --limit with exit 2 before calling the API", async () => {
    const s = await serve({});
    for (const argv of [
      ["audit", "list", "--since", "yesterday"],
      ["audit", "list", "--since", "2026-13-45"],
      ["audit", "list", "--outcome", "ok"],
      ["audit", "list", "--limit", "0"],
      ["audit", "list", "--limit", "1001"],
    ]) {
      expect((await runIaas(argv, s.url, { env })).code, argv.join(" ")).toBe(2);
    }
    expect(s.requests).toHaveLength(0);
  });

  it("exits 5 for a token whose role may not read the audit trail (403)", async () => {
    const s = await serve({ "GET /v1/audit": problem(403, "FORBIDDEN", "role operator may not read the audit trail", "ask an admin") });
    const run = await runIaas(["audit", "list"], s.url, { env });
    expect(run).toEqual({
      code: 5,
      stdout: "",
      stderr: `error: the IaaS API at ${s.url} refused the request (403): role operator may not read the audit trail\nhint: ask an admin\n`,
    });
  });
});
