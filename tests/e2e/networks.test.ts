import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Host, Job, Network, Nic, PortForward, Vm } from "@iaas/contracts";
import { eventually, guestImages, Stack } from "./harness.js";
import { GuestShell } from "./guestShell.js";
import { NetLab, netlabAvailable, type Listener } from "./netlab.js";

// Two hypervisor hosts, each a network namespace with its worker's bridges, taps, dnsmasq,
// nftables and QEMU in it, joined by a "lab" namespace that is their underlay switch and the
// outside world. Real busybox guests, driven over their second serial port.
const available = await netlabAvailable();

describe.skipIf(!available.ok)(`managed networks across two hosts${available.ok ? "" : ` (skipped: ${available.reason})`}`, () => {
  let lab: NetLab;
  let stack: Stack;
  const shells = new Map<string, GuestShell>();
  const listeners: Listener[] = [];

  beforeAll(async () => {
    const images = await guestImages(["linux"]);
    lab = await NetLab.create(["host-a", "host-b"]);
    const hostEnv = (h: string) => ({ IAAS_NETNS: lab.hostNs(h), IAAS_HOST_ADDRESS: lab.hostAddress(h), IAAS_NETWORK_MODE: "bridge" });
    stack = await Stack.start(["host-a", "host-b"], {
      hostEnv: { "host-a": hostEnv("host-a"), "host-b": hostEnv("host-b") },
      workerEnv: { IAAS_NETWORK_SYNC_MS: "500" },
      defaultNetwork: false,
    });
    const imported = await stack.cli(["image", "import", "linux", "--file", images.linux, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    for (const shell of shells.values()) shell.close();
    for (const l of listeners) await l.close();
    await stack?.stop();
    await lab?.destroy();
  }, 120_000);

  const vmShow = (name: string) => stack.cliJson<Vm>(["vm", "show", name]);
  const inHost = (host: string, argv: string[]) => lab.exec(lab.hostNs(host), argv);

  async function shell(name: string): Promise<GuestShell> {
    const known = shells.get(name);
    if (known) return known;
    const vm = await vmShow(name);
    const sh = await GuestShell.connect(path.join(stack.dir, vm.hostId, "vms", vm.id, "ttyS1.sock"), { timeoutMs: 90_000 });
    shells.set(name, sh);
    return sh;
  }

  async function createVm(name: string, host: string, ...networks: string[]): Promise<Vm> {
    const args = ["vm", "create", name, "--image", "linux", "--memory", "192M", "--host", host, "--start", "--wait"];
    for (const n of networks) args.push("--network", n);
    const r = await stack.cli(args);
    expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
    return vmShow(name);
  }

  /** dnsmasq processes running in a host's namespace. */
  async function dnsmasqCount(host: string): Promise<number> {
    const pids = (await inHost(host, ["ip", "netns", "pids", lab.hostNs(host)])).stdout.split(/\s+/).filter(Boolean);
    const cmdlines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")));
    return cmdlines.filter((c) => (c.split("\0")[0] ?? "").endsWith("dnsmasq")).length;
  }

  /** TCP connect from a guest: "open" or "closed" (busybox nc, 2 s timeout). */
  async function probeFromGuest(name: string, ip: string, port: number): Promise<"open" | "closed"> {
    const r = await (await shell(name)).run(`nc -w 2 ${ip} ${port} </dev/null >/dev/null 2>&1`, { timeoutMs: 20_000 });
    return r.code === 0 ? "open" : "closed";
  }

  it("creates networks, refusing a public subnet and one that clashes with a network or a host's route", async () => {
    const lan = await stack.cliJson<Network>(["network", "create", "lan", "--subnet", "10.77.0.0/24", "--dns-domain", "lab.test"]);
    expect(lan).toMatchObject({ name: "lan", mode: "nat", subnet: "10.77.0.0/24", gateway: "10.77.0.1", mtu: 1450 });
    const overlap = await stack.cli(["network", "create", "lan2", "--subnet", "10.77.0.128/25"]);
    expect(overlap.code).toBe(2);
    expect(overlap.stderr).toMatch(/overlaps network 'lan'/);
    const pub = await stack.cli(["network", "create", "pub", "--subnet", "8.8.8.0/24"]);
    expect(pub.code).toBe(2);
    expect(pub.stderr).toMatch(/not a private/);
    const underlay = await stack.cli(["network", "create", "under", "--subnet", "192.168.240.0/24"]);
    expect(underlay.code).toBe(2);
    expect(underlay.stderr).toMatch(/overlaps 192\.168\.240\.0\/24 on eth0 of host 'host-a'/);
    const priv = await stack.cliJson<Network>(["network", "create", "priv", "--mode", "private"]);
    expect(priv.mode).toBe("private");
    expect(priv.subnet).toMatch(/^10\.\d+\.\d+\.0\/24$/);
    const hosts = await stack.cliJson<{ items: Host[] }>(["host", "list"]);
    expect(hosts.items.map((h) => [h.id, h.network?.mode, h.network?.address])).toEqual([
      ["host-a", "bridge", lab.hostAddress("host-a")],
      ["host-b", "bridge", lab.hostAddress("host-b")],
    ]);
  });

  it("gives two VMs on one network the DHCP leases that `vm ip` shows, and they reach each other by name", async () => {
    await createVm("web1", "host-a", "lan");
    await createVm("web2", "host-a", "lan,ip=10.77.0.50");
    for (const name of ["web1", "web2"]) {
      const waited = await stack.cli(["vm", "wait", name, "--for", "ip", "--timeout", "90"]);
      expect(waited.code, waited.stderr).toBe(0);
    }
    const nics = await stack.cliJson<Nic[]>(["vm", "ip", "web2"]);
    expect(nics).toHaveLength(1);
    expect(nics[0]).toMatchObject({ networkName: "lan", ip: "10.77.0.50", lease: { ip: "10.77.0.50" } });
    const web1 = await vmShow("web1");
    const ip1 = web1.nics[0]?.ip ?? "";
    expect(web1.nics[0]?.lease?.ip).toBe(ip1);
    // The guest holds the address IPAM chose, from DHCP.
    const addr = await (await shell("web1")).run("ip -4 -o addr show eth0");
    expect(addr.output).toContain(`${ip1}/24`);
    // DNS from the network's dnsmasq: the other VM by its bare name and by its FQDN.
    const looked = await (await shell("web1")).run("nslookup web2");
    expect(looked.output).toContain("10.77.0.50");
    const ping = await (await shell("web1")).run("ping -c 2 -W 2 web2.lab.test");
    expect(ping.code, ping.output).toBe(0);
    expect(ping.output).toMatch(/2 packets received|2 received/);
  }, 240_000);

  it("joins VMs on two hosts over a private network (VXLAN) without a way out", async () => {
    const p1 = await createVm("p1", "host-a", "priv");
    const p2 = await createVm("p2", "host-b", "priv");
    const ip2 = p2.nics[0]?.ip ?? "";
    await eventually(
      "p1 to ping p2 across hosts",
      async () => (await (await shell("p1")).run(`ping -c 1 -W 2 ${ip2}`, { timeoutMs: 20_000 })).code === 0,
      90_000,
      1000,
    );
    const ip1 = p1.nics[0]?.ip ?? "";
    const back = await (await shell("p2")).run(`ping -c 1 -W 2 ${ip1}`, { timeoutMs: 20_000 });
    expect(back.code, back.output).toBe(0);
    // Each side sees its VXLAN device flooding to the other host's underlay address.
    const fdb = await inHost("host-a", ["bridge", "fdb", "show"]);
    expect(fdb.stdout).toContain(`dst ${lab.hostAddress("host-b")}`);
    // private: DHCP gives no route out; even a guest that adds one itself gets nowhere.
    const listener = await lab.listen(lab.labNs, 9100);
    listeners.push(listener);
    const routes = await (await shell("p1")).run("ip route");
    expect(routes.output).not.toMatch(/default/);
    const priv = await stack.cliJson<Network>(["network", "show", "priv"]);
    await (await shell("p1")).run(`ip route add default via ${priv.gateway}`);
    // ...and the outside world even knows the way back: only host-a's rules stand in between.
    await lab.exec(lab.labNs, ["ip", "route", "add", priv.subnet, "via", lab.hostAddress("host-a")]);
    expect(await probeFromGuest("p1", lab.labAddress, 9100)).toBe("closed");
    expect(listener.connections()).toEqual([]);
  }, 300_000);

  it("forwards a host port to a guest port, from the host itself and from the lab, also after a worker restart", async () => {
    const sh = await shell("web1");
    await sh.run("mkdir -p /tmp/www && echo IAAS-WEB1-PAGE > /tmp/www/index.html && httpd -p 8080 -h /tmp/www");
    const added = await stack.cliJson<Job>(["vm", "port", "add", "web1", "18080:8080", "--wait"]);
    expect(added.state).toBe("succeeded");
    const ports = await stack.cliJson<{ items: PortForward[] } | PortForward[]>(["vm", "port", "list", "web1"]);
    const list = Array.isArray(ports) ? ports : ports.items;
    expect(list.map((p) => [p.hostPort, p.guestPort, p.protocol])).toEqual([[18080, 8080, "tcp"]]);
    const fetchScript = "fetch(process.argv[1]).then(async r=>{console.log(await r.text());process.exit(0)},e=>{console.error(String(e));process.exit(1)})";
    const local = await inHost("host-a", [process.execPath, "-e", fetchScript, "http://127.0.0.1:18080/"]);
    expect(local.stdout, local.stderr).toContain("IAAS-WEB1-PAGE");
    const remote = await lab.exec(lab.labNs, [process.execPath, "-e", fetchScript, `http://${lab.hostAddress("host-a")}:18080/`]);
    expect(remote.stdout, remote.stderr).toContain("IAAS-WEB1-PAGE");
    const waited = await stack.cli(["vm", "wait", "web1", "--for", "port=8080", "--timeout", "30"]);
    expect(waited.code, waited.stderr).toBe(0);
    // The rules are gone while the worker is down (as after a reboot); its restart restores them.
    await stack.killWorker("host-a");
    await inHost("host-a", ["nft", "delete", "table", "inet", "iaas"]);
    const lost = await lab.exec(lab.labNs, [process.execPath, "-e", fetchScript, `http://${lab.hostAddress("host-a")}:18080/`], { timeoutMs: 10_000 });
    expect(lost.stdout).not.toContain("IAAS-WEB1-PAGE");
    await stack.startWorker("host-a");
    const again = await lab.exec(lab.labNs, [process.execPath, "-e", fetchScript, `http://${lab.hostAddress("host-a")}:18080/`]);
    expect(again.stdout, again.stderr).toContain("IAAS-WEB1-PAGE");
    const taken = await stack.cli(["vm", "port", "add", "web2", "18080:80"]);
    expect(taken.code).toBe(3);
    expect(taken.stderr).toMatch(/already forwarded to VM 'web1'/);
  }, 120_000);

  it("NATs a guest's outbound connection behind its host's address", async () => {
    const listener = await lab.listen(lab.labNs, 9200);
    listeners.push(listener);
    expect(await probeFromGuest("web1", lab.labAddress, 9200)).toBe("open");
    await eventually("the lab listener to see a connection", async () => listener.connections().length > 0, 10_000);
    expect(listener.connections()).toEqual([lab.hostAddress("host-a")]);
  }, 60_000);

  it("stretches a nat network across hosts: a VM on the other host reaches web1 by name and goes out through its own host", async () => {
    const web3 = await createVm("web3", "host-b", "lan");
    expect(web3.hostId).toBe("host-b");
    const waited = await stack.cli(["vm", "wait", "web3", "--for", "ip", "--timeout", "90"]);
    expect(waited.code, waited.stderr).toBe(0);
    // DNS from host-b's dnsmasq knows web1 (on host-a); the packets cross the VXLAN tunnel.
    await eventually(
      "web3 to ping web1 by name across hosts",
      async () => (await (await shell("web3")).run("ping -c 1 -W 2 web1.lab.test", { timeoutMs: 20_000 })).code === 0,
      60_000,
      1000,
    );
    // Each host is the gateway of its own VMs: web3's outbound traffic leaves through host-b.
    const listener = await lab.listen(lab.labNs, 9250);
    listeners.push(listener);
    expect(await probeFromGuest("web3", lab.labAddress, 9250)).toBe("open");
    await eventually("the lab listener to see web3's connection", async () => listener.connections().length > 0, 10_000);
    expect(listener.connections()).toEqual([lab.hostAddress("host-b")]);
    const deleted = await stack.cli(["vm", "delete", "web3", "--wait"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    shells.get("web3")?.close();
    shells.delete("web3");
  }, 240_000);

  it("keeps the host's loopback services, its addresses and the other network closed to a guest", async () => {
    // Services on host-a: one on loopback only, one on every address.
    const onLoopback = await lab.listen(lab.hostNs("host-a"), 9301, "tcp", "127.0.0.1");
    const onAll = await lab.listen(lab.hostNs("host-a"), 9302);
    listeners.push(onLoopback, onAll);
    const web1 = await vmShow("web1");
    const gateway = "10.77.0.1";
    const p1 = await vmShow("p1");
    await (await shell("p1")).run("httpd -p 8081 -h /tmp");
    const verdicts = {
      gatewayAll: await probeFromGuest("web1", gateway, 9302),
      underlayAll: await probeFromGuest("web1", lab.hostAddress("host-a"), 9302),
      gatewayLoopbackPort: await probeFromGuest("web1", gateway, 9301),
      otherNetworkVm: await probeFromGuest("web1", p1.nics[0]?.ip ?? "", 8081),
      // Control: a service in the outside world is reachable, so the probes above work.
      outside: await probeFromGuest("web1", lab.labAddress, 9200),
    };
    expect(verdicts).toEqual({ gatewayAll: "closed", underlayAll: "closed", gatewayLoopbackPort: "closed", otherNetworkVm: "closed", outside: "open" });
    expect(onLoopback.connections()).toEqual([]);
    expect(onAll.connections()).toEqual([]);
    expect(web1.nics[0]?.networkName).toBe("lan");
  }, 120_000);

  it("refuses to delete a network in use, and leaves nothing behind on the host once it is gone", async () => {
    const refused = await stack.cli(["network", "delete", "priv"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/in use by VMs 'p1', 'p2'/);
    for (const name of ["p1", "p2"]) {
      shells.get(name)?.close();
      shells.delete(name);
      const r = await stack.cli(["vm", "delete", name, "--wait"]);
      expect(r.code, r.stderr).toBe(0);
    }
    const deleted = await stack.cli(["network", "delete", "priv"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await stack.cli(["network", "show", "priv"])).code).toBe(3);
    for (const host of ["host-a", "host-b"]) {
      let seen = "";
      await eventually(`host ${host} to drop the private network's devices`, async () => {
        const bridges = (await inHost(host, ["ip", "-o", "link", "show", "type", "bridge"])).stdout.match(/ibr-[0-9a-f]+/g) ?? [];
        const vxlans = (await inHost(host, ["ip", "-o", "link", "show", "type", "vxlan"])).stdout.match(/ivx-[0-9a-f]+/g) ?? [];
        const expectedBridges = host === "host-a" ? 1 : 0; // host-a still has lan (web1, web2)
        const dnsmasqs = await dnsmasqCount(host);
        seen = `bridges ${bridges.join(",")}; vxlans ${vxlans.join(",")}; dnsmasq ${dnsmasqs}\n${stack.logTail(15)}`;
        return bridges.length === expectedBridges && vxlans.length === 0 && dnsmasqs === expectedBridges;
      }, 30_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${seen}`);
      });
    }
    const rules = await inHost("host-b", ["nft", "list", "table", "inet", "iaas"]);
    expect(rules.stdout).not.toMatch(/ibr-/);
  }, 180_000);
});
