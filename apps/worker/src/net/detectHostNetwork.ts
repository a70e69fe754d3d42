import { access, constants } from "node:fs/promises";
import type { HostNetworkCapabilities, HostNetworkInfo } from "@iaas/contracts";
import { isManagedIfname } from "@iaas/hypervisor";
import type { NetRunner } from "./NetRunner.js";

export type NetworkModeSetting = "auto" | "bridge" | "user";

interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}
interface IpRoute {
  dst: string;
  dev?: string;
}

async function succeeds(p: Promise<unknown>): Promise<boolean> {
  return p.then(
    () => true,
    () => false,
  );
}

/** The network (CIDR) an address with a prefix length is in. */
export function networkCidr(ip: string, prefixlen: number): string {
  const n = ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - prefixlen);
  const start = n - (n % size);
  return `${[24, 16, 8, 0].map((s) => Math.floor(start / 2 ** s) % 256).join(".")}/${prefixlen}`;
}

/** Parses `/proc/net/{tcp,udp}`: the local ports of listening TCP sockets, or bound UDP sockets. */
export function listeningPorts(text: string, protocol: "tcp" | "udp"): number[] {
  const ports = new Set<number>();
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    const state = cols[3];
    if (!local || !state) continue;
    if (protocol === "tcp" && state !== "0A") continue;
    const port = parseInt(local.split(":")[1] ?? "", 16);
    if (Number.isInteger(port) && port > 0) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * What this host can do for networking, in its namespace: root, /dev/net/tun, bridge and vxlan
 * support, `nft` and `dnsmasq`; its underlay address; the routes and listening ports that
 * networks and port forwards must not clash with. `bridge` mode needs all but vxlan; without
 * them the host falls back to isolated user-mode NICs.
 */
export async function detectHostNetwork(runner: NetRunner, opts: { mode: NetworkModeSetting; address?: string | undefined }): Promise<HostNetworkInfo> {
  const notes: string[] = [];
  const root = process.getuid?.() === 0;
  const [tun, bridge, vxlan, nftables, dnsmasq, ip] = await Promise.all([
    succeeds(access("/dev/net/tun", constants.R_OK | constants.W_OK)),
    succeeds(access("/sys/module/bridge")).then(async (loaded) => loaded || succeeds(runner.run(["modprobe", "-n", "bridge"]))),
    succeeds(access("/sys/module/vxlan")).then(async (loaded) => loaded || succeeds(runner.run(["modprobe", "-n", "vxlan"]))),
    succeeds(runner.run(["nft", "--version"])),
    succeeds(runner.run(["dnsmasq", "--version"])),
    succeeds(runner.run(["ip", "-V"])),
  ]);
  const capabilities: HostNetworkCapabilities = { root, bridge: root && bridge && ip, tap: root && tun, nftables: root && nftables, dnsmasq, vxlan: root && vxlan };
  if (!root) notes.push("the worker does not run as root");
  if (!tun) notes.push("/dev/net/tun is missing or not accessible");
  if (!nftables) notes.push("nft is not installed (apt-get install nftables)");
  if (!dnsmasq) notes.push("dnsmasq is not installed (apt-get install dnsmasq-base)");
  if (!ip) notes.push("ip (iproute2) is not installed");
  const canBridge = capabilities.bridge && capabilities.tap && capabilities.nftables && capabilities.dnsmasq;
  let mode: HostNetworkInfo["mode"];
  if (opts.mode === "user") {
    mode = "user";
    notes.push("IAAS_NETWORK_MODE=user: isolated user-mode NICs");
  } else if (canBridge) {
    mode = "bridge";
  } else if (opts.mode === "bridge") {
    throw new Error(`IAAS_NETWORK_MODE=bridge, but this host cannot do bridges: ${notes.join("; ")}`);
  } else {
    mode = "user";
    notes.push("falling back to isolated user-mode NICs (no bridges, no VM-to-VM traffic)");
  }

  // Without them, subnet checks against this host cannot work: say so rather than report none.
  const readJson = async <T>(argv: string[]): Promise<T[]> =>
    ip
      ? runner.json<T[]>(argv).catch((err: unknown) => {
          notes.push(`could not read \`${argv.join(" ")}\`: ${(err as Error).message}`);
          return [];
        })
      : [];
  const addrs = await readJson<IpAddr>(["ip", "-j", "-4", "addr", "show"]);
  const routesOut = await readJson<IpRoute>(["ip", "-j", "-4", "route", "show"]);
  const routes: HostNetworkInfo["routes"] = [];
  let detected: string | null = null;
  for (const a of addrs) {
    if (a.ifname === "lo" || isManagedIfname(a.ifname)) continue;
    for (const info of a.addr_info ?? []) {
      if (info.family !== "inet") continue;
      routes.push({ cidr: networkCidr(info.local, info.prefixlen), dev: a.ifname });
      if (detected === null && (info.scope ?? "global") === "global") detected = info.local;
    }
  }
  for (const r of routesOut) {
    if (!r.dev || r.dev === "lo" || isManagedIfname(r.dev)) continue;
    const cidr = r.dst === "default" ? "0.0.0.0/0" : r.dst.includes("/") ? r.dst : `${r.dst}/32`;
    if (!routes.some((x) => x.cidr === cidr && x.dev === r.dev)) routes.push({ cidr, dev: r.dev });
  }
  const address = opts.address ?? detected;
  if (mode === "bridge" && address === null) notes.push("no underlay address: VMs here cannot share networks with other hosts (set IAAS_HOST_ADDRESS)");
  if (mode === "bridge" && !capabilities.vxlan) notes.push("no VXLAN support: networks stay local to this host");

  const listening: HostNetworkInfo["listening"] = [];
  for (const protocol of ["tcp", "udp"] as const) {
    const texts = await Promise.all([`/proc/net/${protocol}`, `/proc/net/${protocol}6`].map((f) => runner.run(["cat", f]).then((r) => r.stdout, () => "")));
    const ports = new Set(texts.flatMap((t) => listeningPorts(t, protocol)));
    for (const port of [...ports].sort((a, b) => a - b)) listening.push({ protocol, port });
  }
  return { mode, address, capabilities, notes, routes, listening };
}
