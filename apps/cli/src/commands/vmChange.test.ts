import { afterEach, describe, expect, it } from "vitest";
import { makeJob, makeVm } from "../testing/fixtures.js";
import { bodyOf, json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table));
  return server;
}

describe("vm clone", () => {
  it("sends the new name, the snapshot and --start", async () => {
    const s = await serve({ "POST /v1/vms/web1/clone": json({ job: makeJob({ type: "vm.clone" }), vm: makeVm({ name: "web2" }) }, 202) });
    const run = await runIaas(["vm", "clone", "web1", "web2", "--snapshot", "s1", "--start"], s.url);
    expect(run.code, run.stderr).toBe(0);
    expect(bodyOf(s.requests.find((r) => r.method === "POST"))).toEqual({ name: "web2", start: true, snapshot: "s1" });
  });

  it("exits 2 for a clone name that is not a VM name, before calling the API", async () => {
    const s = await serve({});
    const run = await runIaas(["vm", "clone", "web1", "Bad_Name"], s.url);
    expect(run.code).toBe(2);
    expect(s.requests).toEqual([]);
  });
});

describe("vm resize", () => {
  it("asks the API to grow the disk to the size given", async () => {
    const s = await serve({ "POST /v1/vms/web1/resize": json({ job: makeJob({ type: "vm.resize" }), vm: makeVm() }, 202) });
    const run = await runIaas(["vm", "resize", "web1", "--disk", "20G"], s.url);
    expect(run.code, run.stderr).toBe(0);
    expect(bodyOf(s.requests.find((r) => r.method === "POST"))).toEqual({ disk: "20G" });
  });

  it("exits 2 with the API's words for a size that would shrink the disk", async () => {
    const s = await serve({
      "POST /v1/vms/web1/resize": problem(400, "VALIDATION_FAILED", "disk 1 GiB is not larger than VM 'web1''s 2 GiB: disks only grow", "give a size above 2 GiB"),
    });
    const run = await runIaas(["vm", "resize", "web1", "--disk", "1G"], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/disks only grow/);
  });
});

describe("vm set", () => {
  it("sends only what was given and prints the changed VM", async () => {
    const s = await serve({ "PATCH /v1/vms/web1": json(makeVm({ cpus: 2 })), "GET /v1/hosts": json({ items: [] }) });
    const run = await runIaas(["vm", "set", "web1", "--cpus", "2", "-o", "json"], s.url);
    expect(run.code, run.stderr).toBe(0);
    expect(bodyOf(s.requests.find((r) => r.method === "PATCH"))).toEqual({ cpus: 2 });
    expect((JSON.parse(run.stdout) as { cpus: number }).cpus).toBe(2);
  });

  it("exits 2 without --cpus or --memory, before calling the API", async () => {
    const s = await serve({});
    const run = await runIaas(["vm", "set", "web1"], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/give --cpus or --memory/);
    expect(s.requests).toEqual([]);
  });

  it("exits 3 when the VM runs", async () => {
    const s = await serve({ "PATCH /v1/vms/web1": problem(409, "INVALID_STATE", "cannot change VM 'web1': it is running, not stopped", "stop it first") });
    const run = await runIaas(["vm", "set", "web1", "--memory", "1G"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/stop it first/);
  });
});
