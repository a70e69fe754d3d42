import { afterEach, describe, expect, it } from "vitest";
import { HOST_ID, makeHost, makeHostNetwork } from "../testing/fixtures.js";
import { json, problem, routeTable } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const userHost = makeHost({
  id: "h2",
  name: "hv2",
  network: makeHostNetwork({
    mode: "user",
    address: null,
    capabilities: { root: false, bridge: false, tap: false, nftables: true, dnsmasq: true, vxlan: false },
    notes: ["not running as root: cannot create bridges or taps", "/dev/net/tun is missing"],
    listening: [{ protocol: "tcp", port: 22 }],
  }),
});

async function serveHosts(): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable({ "GET /v1/hosts": json({ items: [makeHost({ network: makeHostNetwork({ routes: [{ cidr: "192.168.1.0/24", dev: "eth0" }] }) }), userHost] }) }));
  return server;
}

describe("host list and show", () => {
  it("lists hosts with their networking mode and underlay address", async () => {
    const s = await serveHosts();
    const run = await runIaas(["host", "list"], s.url);
    expect(run.code).toBe(0);
    const [header, hv1, hv2] = run.stdout.split("\n");
    expect(header).toMatch(/\sVMS\s+NETWORK\s+HEARTBEAT$/);
    expect(hv1).toMatch(/\s1\s+bridge 192\.168\.1\.10\s+5s ago$/);
    expect(hv2).toMatch(/\s1\s+user\s+5s ago$/);
  });

  it("shows a host's capabilities, routes, listening ports and notes", async () => {
    const s = await serveHosts();
    const run = await runIaas(["host", "show", "hv2"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("network:      user (user-mode NICs: isolated, port forwards only)\n");
    expect(run.stdout).toContain("address:      -\n");
    expect(run.stdout).toContain("capabilities: root no, bridge no, tap no, nftables yes, dnsmasq yes, vxlan no\n");
    expect(run.stdout).toContain("listening:    22/tcp\n");
    expect(run.stdout).toMatch(/notes:\n {2}- not running as root: cannot create bridges or taps\n {2}- \/dev\/net\/tun is missing\n$/);
    const byId = await runIaas(["host", "show", HOST_ID], s.url);
    expect(byId.stdout).toContain("network:      bridge (managed networks)\naddress:      192.168.1.10\n");
    expect(byId.stdout).toContain("routes:       192.168.1.0/24 (eth0)\n");
    expect(byId.stdout).toContain("notes:        none\n");
    expect(JSON.parse((await runIaas(["host", "show", "hv2", "-o", "json"], s.url)).stdout)).toEqual(userHost);
  });

  it("exits 3 for an unknown host", async () => {
    const s = await serveHosts();
    expect(await runIaas(["host", "show", "hv9"], s.url)).toEqual({ code: 3, stdout: "", stderr: "error: host 'hv9' not found\nhint: list hosts with `iaas host list`\n" });
  });

  it("says when a host has not reported its networking yet", async () => {
    server = await startScriptedServer(routeTable({ "GET /v1/hosts": json({ items: [makeHost()] }) }));
    expect((await runIaas(["host", "show", "hv1"], server.url)).stdout).toContain("network:     not reported yet (the worker reports it with its heartbeat)\n");
  });
});

describe("host drain and undrain", () => {
  const TOKEN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;

  it("drains a host named by name: POST /v1/hosts/<id>/drain", async () => {
    server = await startScriptedServer(
      routeTable({ "GET /v1/hosts": json({ items: [makeHost(), userHost] }), "POST /v1/hosts/h2/drain": json({ id: "h2", drained: true }) }),
    );
    const run = await runIaas(["--project", "ops", "host", "drain", "hv2"], server.url, { env: { IAAS_TOKEN: TOKEN } });
    expect(run).toEqual({ code: 0, stdout: "host hv2 drained: it takes no new VMs; the VMs on it keep running\n", stderr: "" });
    const post = server.requests.find((r) => r.method === "POST");
    expect(post?.path).toBe("/v1/hosts/h2/drain");
    expect(post?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(post?.headers["x-iaas-project"]).toBe("ops");
    expect(post?.headers["idempotency-key"]).toBeDefined();
  });

  it("undrains a host named by id, and prints the answer as JSON with -o json", async () => {
    server = await startScriptedServer(
      routeTable({ "GET /v1/hosts": json({ items: [makeHost({ drained: true })] }), [`POST /v1/hosts/${HOST_ID}/undrain`]: json({ id: HOST_ID, drained: false }) }),
    );
    expect((await runIaas(["host", "undrain", HOST_ID], server.url)).stdout).toBe("host hv1 undrained: it takes new VMs again\n");
    const asJson = await runIaas(["host", "undrain", "hv1", "-o", "json"], server.url);
    expect(JSON.parse(asJson.stdout)).toEqual({ id: HOST_ID, drained: false, name: "hv1" });
  });

  it("exits 3 for an unknown host, 2 without one, and 5 for a role that may not drain (403)", async () => {
    server = await startScriptedServer(
      routeTable({ "GET /v1/hosts": json({ items: [makeHost()] }), [`POST /v1/hosts/${HOST_ID}/drain`]: problem(403, "FORBIDDEN", "role operator may not manage hosts", "ask an admin") }),
    );
    expect((await runIaas(["host", "drain", "hv9"], server.url)).code).toBe(3);
    expect((await runIaas(["host", "drain"], server.url)).code).toBe(2);
    const forbidden = await runIaas(["host", "drain", "hv1"], server.url);
    expect(forbidden.code).toBe(5);
    expect(forbidden.stderr).toBe(`error: the IaaS API at ${server.url} refused the request (403): role operator may not manage hosts\nhint: ask an admin\n`);
    expect(server.requests.filter((r) => r.method === "POST")).toHaveLength(1);
  });
});
