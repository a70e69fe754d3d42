import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { HOST_ID, JOB_ID, makeForward, makeHost, makeJob, makeNic, makeVm, stateEvent, VM_ID } from "../testing/fixtures.js";
import { bodyOf, json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";
import type { JobScript } from "../testing/jobApi.js";

let server: ScriptedServer | null = null;
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "iaas-vmnet-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>, job?: JobScript): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table, job));
  return server;
}

const queued = makeJob();
const accepted = { job: queued, vm: makeVm({ state: "creating" }) };
const posts = (s: ScriptedServer) => s.requests.filter((r) => r.method !== "GET");

/** A job of `type` on web1 that succeeds. */
function jobScript(type: Job["type"]): { job: Job; script: JobScript } {
  const job = makeJob({ type, state: "running", startedAt: "2025-01-01T00:00:01.000Z" });
  const final = { ...job, state: "succeeded" as const, finishedAt: "2025-01-01T00:00:02.000Z" };
  return { job, script: { running: job, events: [stateEvent(1, "running"), stateEvent(2, "succeeded")], final } };
}

describe("vm create networking and cloud-init options", () => {
  it("sends each --network as a NIC, the SSH keys, user-data and host name", async () => {
    await writeFile(path.join(dir, "id.pub"), "# me\nssh-ed25519 AAAAC3 me@laptop\n");
    await writeFile(path.join(dir, "init.yaml"), "#cloud-config\nruncmd: [touch /ok]\n");
    const s = await serve({ "POST /v1/vms": json(accepted, 202) });
    const run = await runIaas(
      [
        "vm", "create", "web1", "--image", "deb12",
        "--network", "default",
        "--network", "backend,ip=10.20.0.10,mac=52:54:00:AA:00:01",
        "--ssh-key", path.join(dir, "id.pub"),
        "--ssh-key", path.join(dir, "id.pub"),
        "--user-data", path.join(dir, "init.yaml"),
        "--hostname", "www",
      ],
      s.url,
    );
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({
      name: "web1",
      image: "deb12",
      start: false,
      dryRun: false,
      networks: [{ network: "default" }, { network: "backend", ip: "10.20.0.10", mac: "52:54:00:aa:00:01" }],
      sshKeys: ["ssh-ed25519 AAAAC3 me@laptop", "ssh-ed25519 AAAAC3 me@laptop"],
      userData: "#cloud-config\nruncmd: [touch /ok]\n",
      hostname: "www",
    });
  });

  it("sends networks: [] with --no-network, and no networks member without either option", async () => {
    const s = await serve({ "POST /v1/vms": json(accepted, 202) });
    expect((await runIaas(["vm", "create", "web1", "--image", "deb12", "--no-network"], s.url)).code).toBe(0);
    expect((await runIaas(["vm", "create", "web1", "--image", "deb12"], s.url)).code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ name: "web1", image: "deb12", start: false, dryRun: false, networks: [] });
    expect(bodyOf(s.requests[1])).toEqual({ name: "web1", image: "deb12", start: false, dryRun: false });
  });

  it("passes the NICs to a dry run too", async () => {
    const s = await serve({ "POST /v1/vms": problem(400, "VALIDATION_FAILED", "invalid request") });
    await runIaas(["vm", "create", "web1", "--image", "deb12", "--network", "backend", "--dry-run"], s.url);
    expect(bodyOf(s.requests.find((r) => r.method === "POST"))).toMatchObject({ dryRun: true, networks: [{ network: "backend" }] });
  });

  it("exits 2 naming the problem, before calling the API, for bad specs and files", async () => {
    await writeFile(path.join(dir, "big.yaml"), "x".repeat(64 * 1024 + 1));
    const s = await serve({ "POST /v1/vms": json(accepted, 202) });
    const cases: [string[], string][] = [
      [["--network", "backend,color=blue"], "unknown key 'color' (known: ip, mac)"],
      [["--network", "backend,ip=10.20.0"], "ip '10.20.0': an IPv4 address looks like 10.20.0.5"],
      [["--network", "default", "--no-network"], "error: --network and --no-network contradict each other; give one of them"],
      [["--no-network", "--network", "default"], "error: --network and --no-network contradict each other"],
      [["--ssh-key", path.join(dir, "nope.pub")], `error: cannot read SSH key file ${path.join(dir, "nope.pub")}: no such file`],
      [["--user-data", path.join(dir, "big.yaml")], `error: user-data file ${path.join(dir, "big.yaml")} is 64.0 KiB (65537 bytes); cloud-init user-data may be at most 64 KiB`],
      [["--hostname", "www_1"], "a host name is 1-63 letters"],
    ];
    for (const [args, message] of cases) {
      const run = await runIaas(["vm", "create", "web1", "--image", "deb12", ...args], s.url);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toContain(message);
    }
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 when the API says the address is taken, and 2 on a subnet conflict", async () => {
    const s = await serve({ "POST /v1/vms": problem(409, "ADDRESS_TAKEN", "10.20.0.10 is taken by vm db1 on network backend", "leave out ip= to get a free address") });
    const run = await runIaas(["vm", "create", "web1", "--image", "deb12", "--network", "backend,ip=10.20.0.10"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: 10.20.0.10 is taken by vm db1 on network backend\nhint: leave out ip= to get a free address\n" });
  });
});

const web1 = makeVm({
  state: "running",
  hostName: "hv1",
  hostname: "www",
  nics: [
    makeNic({ lease: { ip: "10.100.0.2", at: "2025-01-01T00:00:30.000Z" }, forwards: [makeForward(), makeForward({ hostPort: 2222, guestPort: 22, address: "127.0.0.1" })] }),
    makeNic({ index: 1, networkName: "backend", mac: "52:54:00:aa:00:01", ip: "10.20.0.10" }),
  ],
});

describe("vm show and vm ip", () => {
  it("shows the host, the guest's host name and each NIC with lease and forwards", async () => {
    const s = await serve({ "GET /v1/vms/web1": json(web1), "GET /v1/hosts": json({ items: [makeHost()] }) });
    const run = await runIaas(["vm", "show", "web1"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`host:        hv1 (${HOST_ID})\nhostname:    www\n`);
    expect(run.stdout).toContain(
      [
        "nics:        2",
        "  NIC  NETWORK  MAC                IP          LEASE    FORWARDS",
        "  0    default  52:54:00:12:34:56  10.100.0.2  30s ago  8080->80/tcp,127.0.0.1:2222->22/tcp",
        "  1    backend  52:54:00:aa:00:01  10.20.0.10  -        -",
        "",
      ].join("\n"),
    );
  });

  it("says when a VM has no NIC, or uses user-mode networking", async () => {
    const s = await serve({
      "GET /v1/vms/bare": json(makeVm({ name: "bare" })),
      "GET /v1/vms/iso": json(makeVm({ name: "iso", userModeNetworking: true })),
      "GET /v1/hosts": json({ items: [] }),
    });
    expect((await runIaas(["vm", "show", "bare"], s.url)).stdout).toContain("nics:        none\n");
    expect((await runIaas(["vm", "show", "iso"], s.url)).stdout).toContain("networking:  user-mode (the host has no bridge support): isolated, reachable through port forwards only\nnics:        none\n");
    expect((await runIaas(["vm", "ip", "bare"], s.url)).stdout).toBe("vm bare has no NIC; add one with: iaas vm nic add bare --network default\n");
    expect((await runIaas(["vm", "ip", "iso"], s.url)).stdout).toBe("vm iso uses user-mode networking (its host has no bridge support): reach it through port forwards (iaas vm port list iso)\n");
  });

  it("prints the NIC table, or the nics array with -o json", async () => {
    const s = await serve({ "GET /v1/vms/web1": json(web1) });
    const run = await runIaas(["vm", "ip", "web1"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: [
        "NIC  NETWORK  MAC                IP          LEASE    FORWARDS",
        "0    default  52:54:00:12:34:56  10.100.0.2  30s ago  8080->80/tcp,127.0.0.1:2222->22/tcp",
        "1    backend  52:54:00:aa:00:01  10.20.0.10  -        -",
        "",
      ].join("\n"),
      stderr: "",
    });
    const asJson = await runIaas(["vm", "ip", "web1", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual(web1.nics);
  });

  it("shows a lease of another address than the assigned one", async () => {
    const vm = makeVm({ nics: [makeNic({ lease: { ip: "10.100.0.99", at: "2025-01-01T00:00:00.000Z" } })] });
    const s = await serve({ "GET /v1/vms/web1": json(vm) });
    expect((await runIaas(["vm", "ip", "web1"], s.url)).stdout).toContain("10.100.0.2  10.100.0.99 (1m ago)  -\n");
  });
});

describe("vm nic", () => {
  it("adds a NIC from a spec, and says how to follow the job", async () => {
    const s = await serve({ "POST /v1/vms/web1/nics": json({ job: makeJob({ type: "vm.nic.add" }), vm: makeVm() }, 202) });
    const run = await runIaas(["vm", "nic", "add", "web1", "--network", "backend,ip=10.20.0.10"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ network: "backend", ip: "10.20.0.10" });
    expect(run.stdout).toBe(`job ${JOB_ID} queued: add NIC (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`);
  });

  it("adds a NIC with --wait and shows the VM with it", async () => {
    const { job, script } = jobScript("vm.nic.add");
    const s = await serve(
      {
        "POST /v1/vms/web1/nics": json({ job, vm: makeVm() }, 202),
        [`GET /v1/vms/${VM_ID}`]: json(makeVm({ nics: [makeNic({ networkName: "backend", ip: "10.20.0.10" })] })),
        "GET /v1/hosts": json({ items: [makeHost()] }),
      },
      script,
    );
    const run = await runIaas(["vm", "nic", "add", "web1", "--network", "backend", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("  0    backend  52:54:00:12:34:56  10.20.0.10  -      -\n");
    expect(run.stderr).toContain("[job 1a2b3c4d] succeeded");
  });

  it("exits 3 when the VM is running (the API's INVALID_STATE)", async () => {
    const s = await serve({ "POST /v1/vms/web1/nics": problem(409, "INVALID_STATE", "vm web1 is running; NICs change only while it is stopped", "stop it first: iaas vm stop web1 --wait") });
    const run = await runIaas(["vm", "nic", "add", "web1", "--network", "backend"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("hint: stop it first");
  });

  it("refuses a bad spec or a missing --network with exit 2", async () => {
    const s = await serve({});
    expect((await runIaas(["vm", "nic", "add", "web1", "--network", "backend,mtu=9000"], s.url)).code).toBe(2);
    expect((await runIaas(["vm", "nic", "add", "web1"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });

  it("removes a NIC by network or by index", async () => {
    const removed = json({ job: makeJob({ type: "vm.nic.remove" }), vm: makeVm() }, 202);
    const s = await serve({ "DELETE /v1/vms/web1/nics/backend": removed, "DELETE /v1/vms/web1/nics/1": removed });
    expect((await runIaas(["vm", "nic", "remove", "web1", "--network", "backend"], s.url)).code).toBe(0);
    expect((await runIaas(["vm", "nic", "rm", "web1", "--index", "1", "-o", "json"], s.url)).code).toBe(0);
    expect(s.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["DELETE /v1/vms/web1/nics/backend", "DELETE /v1/vms/web1/nics/1"]);
  });

  it("needs exactly one of --network and --index (exit 2)", async () => {
    const s = await serve({});
    const neither = await runIaas(["vm", "nic", "remove", "web1"], s.url);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toBe("error: give the NIC to remove with either --network NET or --index N\nhint: see the VM's NICs with: iaas vm ip web1\n");
    expect((await runIaas(["vm", "nic", "remove", "web1", "--network", "a", "--index", "0"], s.url)).code).toBe(2);
    expect((await runIaas(["vm", "nic", "remove", "web1", "--index", "16"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });
});

describe("vm port", () => {
  const forward = makeForward({ hostPort: 2222, guestPort: 22 });

  it("adds a forward: sends the parsed spec, prints it and the job", async () => {
    const s = await serve({ "POST /v1/vms/web1/ports": json({ job: makeJob({ type: "vm.port.add" }), vm: makeVm(), forward }, 202) });
    const run = await runIaas(["vm", "port", "add", "web1", "2222:22"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ hostPort: 2222, guestPort: 22, protocol: "tcp" });
    expect(run.stdout).toBe(`port forward 2222->22/tcp to vm web1 nic 0\njob ${JOB_ID} queued: add port forward (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`);
  });

  it("sends --address, --nic and the protocol; -o json prints the job with the forward", async () => {
    const udp = makeForward({ protocol: "udp", address: "127.0.0.1", hostPort: 5353, guestPort: 53, nicIndex: 1 });
    const s = await serve({ "POST /v1/vms/web1/ports": json({ job: makeJob({ type: "vm.port.add" }), vm: makeVm(), forward: udp }, 202) });
    const run = await runIaas(["vm", "port", "add", "web1", "5353:53/udp", "--address", "127.0.0.1", "--nic", "1", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ hostPort: 5353, guestPort: 53, protocol: "udp", address: "127.0.0.1", nic: 1 });
    expect(JSON.parse(run.stdout)).toMatchObject({ job: { id: JOB_ID }, forward: udp });
  });

  it("accepts an answer without the forward (a replayed request)", async () => {
    const s = await serve({ "POST /v1/vms/web1/ports": json({ job: makeJob({ type: "vm.port.add" }), vm: null, forward: null }, 202) });
    const run = await runIaas(["vm", "port", "add", "web1", "2222:22"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: add port forward (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`, stderr: "" });
  });

  it("follows the job with --wait and shows the VM", async () => {
    const { job, script } = jobScript("vm.port.add");
    const s = await serve(
      {
        "POST /v1/vms/web1/ports": json({ job, vm: makeVm(), forward }, 202),
        [`GET /v1/vms/${VM_ID}`]: json(makeVm({ nics: [makeNic({ forwards: [forward] })] })),
        "GET /v1/hosts": json({ items: [makeHost()] }),
      },
      script,
    );
    const run = await runIaas(["vm", "port", "add", "web1", "2222:22", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("2222->22/tcp\n");
  });

  it("refuses bad port specs with exit 2 before calling the API", async () => {
    const s = await serve({});
    for (const spec of ["70000:22", "2222", "2222:0", "2222:22/icmp", "a:b"]) {
      const run = await runIaas(["vm", "port", "add", "web1", spec], s.url);
      expect(run.code, spec).toBe(2);
    }
    expect((await runIaas(["vm", "port", "add", "web1", "70000:22"], s.url)).stderr).toContain("host port '70000' is not a port number (1-65535).");
    expect((await runIaas(["vm", "port", "add", "web1", "2222:22", "--address", "localhost"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 when the host port is taken, naming the holder", async () => {
    const s = await serve({ "POST /v1/vms/web1/ports": problem(409, "PORT_TAKEN", "port 2222/tcp on host hv1 is taken by vm db1", "choose another host port") });
    const run = await runIaas(["vm", "port", "add", "web1", "2222:22"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: port 2222/tcp on host hv1 is taken by vm db1\nhint: choose another host port\n" });
  });

  it("lists forwards as a table", async () => {
    const s = await serve({ "GET /v1/vms/web1/ports": json({ items: [forward, makeForward({ protocol: "udp", address: "127.0.0.1", hostPort: 5353, guestPort: 53, nicIndex: 1 })] }) });
    const run = await runIaas(["vm", "port", "list", "web1"], s.url);
    expect(run.stdout).toBe(["PROTO  ADDRESS    HOST-PORT  GUEST-PORT  NIC", "tcp    *          2222       22          0", "udp    127.0.0.1  5353       53          1", ""].join("\n"));
    expect(JSON.parse((await runIaas(["vm", "port", "ls", "web1", "-o", "json"], s.url)).stdout)).toEqual({ items: expect.any(Array) as unknown });
  });

  it("removes a forward by host port and protocol (tcp by default)", async () => {
    const removed = json({ job: makeJob({ type: "vm.port.remove" }), vm: makeVm() }, 202);
    const s = await serve({ "DELETE /v1/vms/web1/ports/2222": removed, "DELETE /v1/vms/web1/ports/5353": removed });
    expect((await runIaas(["vm", "port", "remove", "web1", "2222"], s.url)).code).toBe(0);
    expect((await runIaas(["vm", "port", "rm", "web1", "5353/udp"], s.url)).code).toBe(0);
    expect(posts(s).map((r) => r.url)).toEqual(["/v1/vms/web1/ports/2222?protocol=tcp", "/v1/vms/web1/ports/5353?protocol=udp"]);
    expect((await runIaas(["vm", "port", "remove", "web1", "0"], s.url)).code).toBe(2);
  });
});
