import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findExecutable, run } from "../run.js";
import { bridgeName, vxlanName } from "./ifnames.js";
import { gatewayMac } from "./mac.js";
import { renderNftRuleset, type NftModel } from "./nftRuleset.js";

// Loads the rendered ruleset into real nftables and checks what it lets through. Everything
// happens inside network namespaces this test creates and deletes: never in the root namespace.
// Needs root, nft and ip.

const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`;
const canRun = process.getuid?.() === 0 && findExecutable("nft", SBIN_PATH) !== null && findExecutable("ip", SBIN_PATH) !== null;
const env = { ...process.env, PATH: SBIN_PATH };

const tag = randomBytes(3).toString("hex");
const HOST = `iaas-nfttest-${tag}`;
const OUT = `${HOST}-out`;
const GA = `${HOST}-ga`;
const GA2 = `${HOST}-ga2`;
const GB = `${HOST}-gb`;
const NAMESPACES = [HOST, OUT, GA, GA2, GB];

const NET_A = `nfttest-a-${tag}`;
const NET_B = `nfttest-b-${tag}`;
const BR_A = bridgeName(NET_A);
const BR_B = bridgeName(NET_B);
const VX_A = vxlanName(NET_A);
const TABLE = "iaas";

const fullModel: NftModel = {
  table: TABLE,
  networks: [
    { id: NET_A, bridge: BR_A, vxlan: VX_A, mode: "nat", subnet: "10.100.0.0/24", gateway: "10.100.0.1", gatewayMac: gatewayMac(NET_A) },
    { id: NET_B, bridge: BR_B, vxlan: null, mode: "private", subnet: "10.100.1.0/24", gateway: "10.100.1.1", gatewayMac: gatewayMac(NET_B) },
  ],
  forwards: [
    { protocol: "tcp", address: null, hostPort: 2222, guestIp: "10.100.0.5", guestPort: 22, bridge: BR_A },
    { protocol: "tcp", address: "192.0.2.1", hostPort: 2223, guestIp: "10.100.0.5", guestPort: 22, bridge: BR_A },
  ],
};

const TCP_SERVER = `
const [tag, host, port] = process.argv.slice(1);
require("node:net").createServer((s) => s.end(tag + " " + s.remoteAddress + "\\n")).listen(Number(port), host, () => console.log("ready"));
`;
const UDP_SERVER = `
const [host, port] = process.argv.slice(1);
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => console.log("got " + m + " from " + r.address));
s.bind(Number(port), host, () => console.log("ready"));
`;
const TCP_CLIENT = `
const [host, port, local, ms] = process.argv.slice(1);
const o = { host, port: Number(port), timeout: Number(ms) };
if (local) o.localAddress = local;
const s = require("node:net").connect(o);
let d = "";
s.setEncoding("utf8");
s.on("data", (c) => (d += c));
s.on("end", () => { console.log("OK " + d.trim()); process.exit(0); });
s.on("timeout", () => { console.log("ERR TIMEOUT"); process.exit(0); });
s.on("error", (e) => { console.log("ERR " + e.code); process.exit(0); });
`;
const UDP_SEND = `
const [host, port, local, msg] = process.argv.slice(1);
const s = require("node:dgram").createSocket("udp4");
s.bind({ address: local }, () => s.send(msg, Number(port), host, () => s.close()));
`;

let dir = "";
let unavailable: string | null = null;
const servers: ChildProcess[] = [];
const udpLog: string[] = [];

async function inNs(ns: string, argv: string[]): Promise<string> {
  return (await run(["ip", "netns", "exec", ns, ...argv], { env, timeoutMs: 20_000 })).stdout;
}
const ipIn = (ns: string, ...args: string[]): Promise<unknown> => run(["ip", "-n", ns, ...args], { env, timeoutMs: 20_000 });

/** Starts a node server inside `ns` and waits until it listens. */
async function startServer(ns: string, code: string, args: string[], onLine?: (line: string) => void): Promise<void> {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code, ...args], { env, stdio: ["ignore", "pipe", "inherit"] });
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    let buf = "";
    child.once("error", reject);
    child.once("exit", (c) => reject(new Error(`server in ${ns} exited with ${String(c)}`)));
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === "ready") resolve();
        else onLine?.(line);
      }
    });
  });
}

/**
 * "OK <reply>" when a TCP connection from `ns` to host:port got a reply, else "ERR <code>":
 * ECONNREFUSED when the host's stack answered, TIMEOUT when the packets were dropped.
 */
async function connect(ns: string, host: string, port: number, ms = 5000): Promise<string> {
  return (await inNs(ns, [process.execPath, "-e", TCP_CLIENT, host, String(port), "", String(ms)])).trim();
}

/** connect() with a short timeout, for connections that should be dropped. */
const blocked = (ns: string, host: string, port: number): Promise<string> => connect(ns, host, port, 1500);

async function applyRuleset(model: NftModel): Promise<string> {
  const file = join(dir, `ruleset-${randomBytes(3).toString("hex")}.nft`);
  await writeFile(file, renderNftRuleset(model));
  await inNs(HOST, ["nft", "-f", file]);
  return inNs(HOST, ["nft", "list", "ruleset"]);
}

function count(text: string, what: string): number {
  return text.split(what).length - 1;
}

describe.skipIf(!canRun)("the rendered nftables ruleset in a network namespace", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nfttest-"));
    try {
      await run(["ip", "netns", "add", HOST], { env });
    } catch (err) {
      // Root without CAP_SYS_ADMIN (e.g. a container with only NET_ADMIN) cannot make namespaces.
      unavailable = `cannot create a network namespace: ${err instanceof Error ? err.message : String(err)}`;
      return;
    }
    for (const ns of NAMESPACES) {
      if (ns !== HOST) await run(["ip", "netns", "add", ns], { env });
      await ipIn(ns, "link", "set", "lo", "up");
    }
    // The host: two bridges (A with a VXLAN port), an uplink to OUT.
    await ipIn(HOST, "link", "add", BR_A, "type", "bridge");
    await ipIn(HOST, "link", "set", BR_A, "address", gatewayMac(NET_A));
    await ipIn(HOST, "addr", "add", "10.100.0.1/24", "dev", BR_A);
    await ipIn(HOST, "link", "set", BR_A, "up");
    await ipIn(HOST, "link", "add", BR_B, "type", "bridge");
    await ipIn(HOST, "addr", "add", "10.100.1.1/24", "dev", BR_B);
    await ipIn(HOST, "link", "set", BR_B, "up");
    await ipIn(HOST, "link", "add", VX_A, "type", "vxlan", "id", "4242", "dstport", "4789");
    await ipIn(HOST, "link", "set", VX_A, "master", BR_A);
    await ipIn(HOST, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", OUT);
    await ipIn(HOST, "addr", "add", "192.0.2.1/24", "dev", "up0");
    await ipIn(HOST, "link", "set", "up0", "up");
    await ipIn(OUT, "addr", "add", "192.0.2.2/24", "dev", "up1");
    await ipIn(OUT, "link", "set", "up1", "up");
    // Guests: a veth end in the guest's namespace, the other end a port of the bridge.
    const guests: [string, string, string, string, string][] = [
      [GA, "va0", BR_A, "10.100.0.5/24", "10.100.0.1"],
      [GA2, "va1", BR_A, "10.100.0.6/24", "10.100.0.1"],
      [GB, "vb0", BR_B, "10.100.1.5/24", "10.100.1.1"],
    ];
    for (const [ns, port, bridge, addr, gw] of guests) {
      await ipIn(HOST, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
      await ipIn(HOST, "link", "set", port, "master", bridge);
      await ipIn(HOST, "link", "set", port, "up");
      await ipIn(ns, "addr", "add", addr, "dev", "eth0");
      await ipIn(ns, "link", "set", "eth0", "up");
      await ipIn(ns, "route", "add", "default", "via", gw);
    }
    await inNs(HOST, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1", `net.ipv4.conf.${BR_A}.route_localnet=1`]);

    await startServer(HOST, TCP_SERVER, ["host", "0.0.0.0", "7000"]);
    await startServer(OUT, TCP_SERVER, ["out", "0.0.0.0", "8000"]);
    await startServer(OUT, UDP_SERVER, ["0.0.0.0", "9000"], (line) => udpLog.push(line));
    await startServer(GA, TCP_SERVER, ["ga", "0.0.0.0", "22"]);
    await startServer(GB, TCP_SERVER, ["gb", "0.0.0.0", "22"]);
  });

  afterAll(async () => {
    for (const child of servers) child.kill("SIGKILL");
    for (const ns of NAMESPACES) await run(["ip", "netns", "del", ns], { env }).catch(() => undefined);
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it("loads, and applying it twice leaves exactly one copy of each table and leaves other tables alone", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    const other = join(dir, "other.nft");
    await writeFile(other, "table inet other {\n\tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t}\n}\n");
    await inNs(HOST, ["nft", "-f", other]);
    const first = await applyRuleset(fullModel);
    const second = await applyRuleset(fullModel);
    expect(second).toBe(first);
    expect(count(second, `table inet ${TABLE} {`)).toBe(1);
    expect(count(second, `table bridge ${TABLE} {`)).toBe(1);
    expect(count(second, "table inet other {")).toBe(1);
    for (const chain of ["input", "prerouting_filter", "forward", "prerouting", "output", "postrouting"]) {
      expect(count(second, `\tchain ${chain} {`)).toBeGreaterThanOrEqual(1);
    }
    expect(count(second, "dnat ip to 10.100.0.5:22")).toBe(4);
    expect(count(second, `arp daddr ip 10.100.0.1 drop`)).toBe(3);
  });

  it("lets a NAT network out, masqueraded, and keeps a private network in", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    await applyRuleset(fullModel);
    const [a, b] = await Promise.all([connect(GA, "192.0.2.2", 8000), blocked(GB, "192.0.2.2", 8000)]);
    expect(a).toBe("OK out 192.0.2.1");
    expect(b).toBe("ERR TIMEOUT");
  });

  it("isolates networks from each other but not guests on the same network", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    const [ab, ba, aa] = await Promise.all([blocked(GA, "10.100.1.5", 22), blocked(GB, "10.100.0.5", 22), connect(GA2, "10.100.0.5", 22)]);
    expect(ab).toBe("ERR TIMEOUT");
    expect(ba).toBe("ERR TIMEOUT");
    expect(aa).toBe("OK ga 10.100.0.6");
  });

  it("lets guests reach DNS on their gateway and nothing else listening on the host", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    const [control, gw, uplink, otherGw, dns, dnsB] = await Promise.all([
      connect(OUT, "192.0.2.1", 7000),
      blocked(GA, "10.100.0.1", 7000),
      blocked(GA, "192.0.2.1", 7000),
      blocked(GA, "10.100.1.1", 7000),
      connect(GA, "10.100.0.1", 53),
      connect(GB, "10.100.1.1", 53),
    ]);
    expect(control).toBe("OK host 192.0.2.2");
    expect(gw).toBe("ERR TIMEOUT");
    expect(uplink).toBe("ERR TIMEOUT");
    expect(otherGw).toBe("ERR TIMEOUT");
    // Nothing listens on port 53 here: a refusal means the packet reached the host's stack.
    expect(dns).toBe("ERR ECONNREFUSED");
    expect(dnsB).toBe("ERR ECONNREFUSED");
  });

  it("forwards published ports from outside, from the host's loopback and from a guest of the same network", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    const [any, addressed, loopback, local, hairpin] = await Promise.all([
      connect(OUT, "192.0.2.1", 2222),
      connect(OUT, "192.0.2.1", 2223),
      connect(HOST, "127.0.0.1", 2222),
      connect(HOST, "192.0.2.1", 2222),
      connect(GA2, "192.0.2.1", 2222),
    ]);
    expect(any).toBe("OK ga 192.0.2.2");
    expect(addressed).toBe("OK ga 192.0.2.2");
    expect(loopback).toBe("OK ga 10.100.0.1");
    expect(local).toMatch(/^OK ga /);
    expect(hairpin).toBe("OK ga 10.100.0.1");
  });

  it("drops packets from a guest with a source address outside its network", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    await ipIn(GA, "addr", "add", "10.200.0.5/32", "dev", "eth0");
    await inNs(GA, [process.execPath, "-e", UDP_SEND, "192.0.2.2", "9000", "10.200.0.5", "spoofed"]);
    await inNs(GA, [process.execPath, "-e", UDP_SEND, "192.0.2.2", "9000", "10.100.0.5", "legit"]);
    // Sent after the spoofed one on the same path: once it is in, the spoofed one would be too.
    for (let i = 0; i < 50 && !udpLog.includes("got legit from 192.0.2.1"); i++) await new Promise((r) => setTimeout(r, 100));
    expect(udpLog).toContain("got legit from 192.0.2.1");
    expect(udpLog.filter((l) => l.includes("spoofed"))).toEqual([]);
  });

  it("replaces the tables whole: a network left out of the model loses its rules, and the empty model removes them all", async (ctx) => {
    ctx.skip(unavailable !== null, unavailable ?? "");
    const smaller = await applyRuleset({ ...fullModel, networks: fullModel.networks.slice(0, 1) });
    expect(smaller).toContain(BR_A);
    expect(smaller).not.toContain(BR_B);
    const empty = await applyRuleset({ table: TABLE, networks: [], forwards: [] });
    expect(empty.replace(/\s+/g, " ")).toContain(`table inet ${TABLE} { } table bridge ${TABLE} { }`);
    expect(empty).toContain("table inet other {");
    expect(await inNs(HOST, ["nft", "list", "table", "inet", TABLE])).not.toContain("chain ");
    expect(await inNs(HOST, ["nft", "list", "table", "bridge", TABLE])).not.toContain("chain ");
    // Without our rules the host's service is reachable from a guest again.
    expect(await connect(GA, "10.100.0.1", 7000)).toBe("OK host 10.100.0.5");
  });
});
