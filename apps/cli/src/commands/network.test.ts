import { afterEach, describe, expect, it } from "vitest";
import { makeNetwork, NETWORK_ID, VM_ID } from "../testing/fixtures.js";
import { bodyOf, json, noContent, problem, routeTable, type Route } from "../testing/routes.js";
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

const backend = makeNetwork({ name: "backend", subnet: "10.20.0.0/24", gateway: "10.20.0.1", vni: 101 });

describe("network create", () => {
  it("sends only the options given and shows the network it made", async () => {
    const s = await serve({ "POST /v1/networks": json(backend, 201) });
    const run = await runIaas(["network", "create", "backend", "--subnet", "10.20.0.0/24", "--mtu", "1400", "--dns-domain", "lab.internal"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ name: "backend", subnet: "10.20.0.0/24", mtu: 1400, dnsDomain: "lab.internal" });
    expect(run.stdout).toContain("name:       backend\n");
    expect(run.stdout).toContain("subnet:     10.20.0.0/24\n");
    expect(run.stdout).toContain("mode:       nat (DHCP, DNS, outbound NAT, port forwards)\n");
    expect(run.stdout).toContain("vms:        none");
  });

  it("sends the mode and --allow-public-subnet, and prints JSON with -o json (alias net)", async () => {
    const s = await serve({ "POST /v1/networks": json(makeNetwork({ name: "lab", mode: "private" }), 201) });
    const run = await runIaas(["net", "create", "lab", "--mode", "private", "--subnet", "100.64.0.0/24", "--allow-public-subnet", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ name: "lab", mode: "private", subnet: "100.64.0.0/24", allowPublicSubnet: true });
    expect(JSON.parse(run.stdout)).toMatchObject({ name: "lab", mode: "private" });
  });

  it("refuses a bad name, subnet, mode or MTU with exit 2 before calling the API", async () => {
    const s = await serve({});
    for (const argv of [
      ["network", "create", "Back_end"],
      ["network", "create", "backend", "--subnet", "10.20.0.0"],
      ["network", "create", "backend", "--subnet", "10.0.0.0/8"],
      ["network", "create", "backend", "--mode", "bridged"],
      ["network", "create", "backend", "--mtu", "100"],
      ["network", "create", "backend", "--dns-domain", "Bad_Domain"],
    ]) {
      const run = await runIaas(argv, s.url);
      expect(run.code, argv.join(" ")).toBe(2);
    }
    expect((await runIaas(["network", "create", "backend", "--subnet", "10.0.0.0/8"], s.url)).stderr).toContain("a subnet's prefix must be /16 to /29, not /8.");
    expect(s.requests).toHaveLength(0);
  });

  it("exits 2 on SUBNET_CONFLICT with the API's message and hint", async () => {
    const s = await serve({
      "POST /v1/networks": problem(400, "SUBNET_CONFLICT", "subnet 10.20.0.0/24 overlaps network 'legacy' (10.20.0.0/16)", "choose another subnet with --subnet"),
    });
    const run = await runIaas(["network", "create", "backend", "--subnet", "10.20.0.0/24"], s.url);
    expect(run).toEqual({
      code: 2,
      stdout: "",
      stderr: "error: subnet 10.20.0.0/24 overlaps network 'legacy' (10.20.0.0/16)\nhint: choose another subnet with --subnet\n",
    });
  });
});

describe("network list, show, delete", () => {
  it("lists networks as a table with the number of VMs", async () => {
    const s = await serve({ "GET /v1/networks": json({ items: [makeNetwork({ vms: [{ id: VM_ID, name: "web1", ip: "10.100.0.2" }] }), backend] }) });
    const run = await runIaas(["network", "list"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        "NAME     MODE  SUBNET         GATEWAY     MTU   DOMAIN         VMS",
        "default  nat   10.100.0.0/24  10.100.0.1  1450  iaas.internal  1",
        "backend  nat   10.20.0.0/24   10.20.0.1   1450  iaas.internal  0",
        "",
      ].join("\n"),
    );
  });

  it("shows a network with each VM and its address", async () => {
    const net = makeNetwork({ vms: [{ id: VM_ID, name: "web1", ip: "10.100.0.2" }, { id: "v2", name: "db", ip: "10.100.0.3" }] });
    const s = await serve({ "GET /v1/networks/default": json(net) });
    const run = await runIaas(["network", "show", "default"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`id:         ${NETWORK_ID}\n`);
    expect(run.stdout).toContain("vms:        2\n  NAME  IP          ID\n");
    expect(run.stdout).toContain(`  web1  10.100.0.2  ${VM_ID}\n  db    10.100.0.3  v2\n`);
  });

  it("exits 3 when the network does not exist", async () => {
    const s = await serve({ "GET /v1/networks/nope": problem(404, "NOT_FOUND", "network 'nope' not found", "list networks with `iaas network list`") });
    const run = await runIaas(["network", "show", "nope"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe("error: network 'nope' not found\nhint: list networks with `iaas network list`\n");
  });

  it("deletes a network (204)", async () => {
    const s = await serve({ "DELETE /v1/networks/backend": noContent() });
    expect(await runIaas(["network", "delete", "backend"], s.url)).toEqual({ code: 0, stdout: "network backend deleted\n", stderr: "" });
    expect(JSON.parse((await runIaas(["net", "rm", "backend", "-o", "json"], s.url)).stdout)).toEqual({ name: "backend", deleted: true });
    expect(s.requests[0]?.headers["idempotency-key"]).toBeDefined();
  });

  it("exits 3 with the API's message naming the VMs when the network is in use", async () => {
    const s = await serve({
      "DELETE /v1/networks/backend": problem(409, "NETWORK_IN_USE", "network 'backend' is in use by VMs web1, db", "remove their NICs first: iaas vm nic remove VM --network backend"),
    });
    const run = await runIaas(["network", "delete", "backend"], s.url);
    expect(run).toEqual({
      code: 3,
      stdout: "",
      stderr: "error: network 'backend' is in use by VMs web1, db\nhint: remove their NICs first: iaas vm nic remove VM --network backend\n",
    });
  });
});
