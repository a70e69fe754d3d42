import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { IaasError, type HostNetworkInfo } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import {
  bridgeName,
  dnsmasqArgv,
  gatewayMac,
  IFNAME_PREFIXES,
  isProcessAlive,
  parseCidr,
  parseLeases,
  readPidfile,
  renderAddnHosts,
  renderDhcpHosts,
  renderNftRuleset,
  tapName,
  vxlanName,
  type NftForward,
  type NftNetwork,
} from "@iaas/hypervisor";
import type { NetRunner } from "./NetRunner.js";
import { Mutex } from "./Mutex.js";
import { desiredHostNetwork, type DesiredNetwork, type HostNetworkModel } from "./desiredHostNetwork.js";

const NFT_TABLE = "iaas";
const VXLAN_PORT = 4789;

interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  link_type?: string;
  /** A tun/tap device's owner, as `ip -d` prints it (the name, or the id without one). */
  linkinfo?: { info_kind?: string; info_data?: { user?: string | number; group?: string | number } };
}

/** Who may attach to the taps: QEMU's unprivileged user (IAAS_QEMU_USER), when it has one. */
export interface TapOwner {
  name: string;
  uid: number;
  gid: number;
}

function ownedBy(link: IpLink, owner: TapOwner): boolean {
  const user = link.linkinfo?.info_data?.user;
  return user !== undefined && (String(user) === String(owner.uid) || user === owner.name);
}

async function writeIfChanged(file: string, content: string): Promise<boolean> {
  const old = await readFile(file, "utf8").catch(() => null);
  if (old === content) return false;
  await writeFile(`${file}.tmp`, content, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  return true;
}

/** The per-network directories under `root`; none yet is no error, anything else is. */
async function netDirs(root: string) {
  return readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
}

const hash = (v: unknown) => createHash("sha256").update(JSON.stringify(v)).digest("hex");

/**
 * Makes this host's networking match what its VMs need, from Postgres, whole and idempotently:
 * a bridge per network (the network's gateway address and a MAC shared by every host), a VXLAN
 * device to the other hosts with VMs on it, a tap per NIC, a dnsmasq per bridge (DHCP
 * reservations for this host's NICs, DNS for every VM of the network), and one nftables table
 * replaced whole. What no VM needs any more is removed. Runs in the worker's namespace.
 */
export class HostNetwork {
  private readonly mutex = new Mutex();
  private lastApplied: string | null = null;
  private lastNft: string | null = null;
  private readonly configured = new Map<string, string>();

  constructor(
    private readonly db: PrismaClient,
    private readonly runner: NetRunner,
    private readonly hostId: string,
    private readonly dataDir: string,
    private info: HostNetworkInfo,
    private readonly log: Logger,
    private readonly offlineAfterSeconds = 30,
    /** Taps are made for this user only (`ip tuntap add … user U group G`); null: for anyone. */
    private readonly tapOwner: TapOwner | null = null,
  ) {}

  get mode(): HostNetworkInfo["mode"] {
    return this.info.mode;
  }

  updateInfo(info: HostNetworkInfo): void {
    this.info = { ...info, mode: this.info.mode };
  }

  private netDir(networkId: string): string {
    return path.join(this.dataDir, "net", networkId);
  }

  /**
   * Brings the host in line with Postgres. `force` re-applies everything even when the model did
   * not change since the last sync (worker start-up, and before a VM starts).
   */
  async sync(reason: string, force = false): Promise<HostNetworkModel> {
    return this.mutex.run(async () => {
      const model = await desiredHostNetwork(this.db, this.hostId, this.offlineAfterSeconds);
      if (this.info.mode !== "bridge") return model;
      const digest = hash(model);
      if (!force && digest === this.lastApplied) return model;
      this.log.info({ reason, networks: model.networks.map((n) => n.name) }, "syncing host networking");
      try {
        await this.apply(model);
      } catch (err) {
        this.lastApplied = null;
        throw new IaasError("NETWORK_FAILED", `could not set up networking on host '${this.hostId}': ${(err as Error).message}`, {
          hint: "check the worker log; `iaas host list` shows what the host can do",
          cause: err,
          retryable: true,
        });
      }
      this.lastApplied = digest;
      return model;
    });
  }

  private async apply(model: HostNetworkModel): Promise<void> {
    if (model.networks.some((n) => n.mode === "nat")) await this.runner.setSysctl("net.ipv4.ip_forward", "1");
    const links = await this.runner.json<IpLink[]>(["ip", "-d", "-j", "link", "show"]);
    const existing = new Map(links.map((l) => [l.ifname, l]));
    for (const network of model.networks) await this.applyNetwork(network, existing);
    await this.applyNft(model);
    // Read the links again: applying may have removed some (a VXLAN device left without peers).
    await this.removeUnneeded(model, await this.runner.json<IpLink[]>(["ip", "-j", "link", "show"]));
  }

  private async applyNetwork(n: DesiredNetwork, existing: Map<string, IpLink>): Promise<void> {
    const br = bridgeName(n.id);
    const { prefix } = parseCidr(n.subnet);
    const config = hash({ n: { subnet: n.subnet, mtu: n.mtu, mode: n.mode } });
    if (!existing.has(br)) {
      await this.runner.run(["ip", "link", "add", br, "type", "bridge"]);
      this.configured.delete(br);
    }
    if (this.configured.get(br) !== config) {
      // IPv6 off first: a link-local address on the bridge would let guests reach the host.
      await this.runner.setSysctl(`net.ipv6.conf.${br}.disable_ipv6`, "1");
      await this.runner.run(["ip", "link", "set", br, "address", gatewayMac(n.id), "mtu", String(n.mtu), "up"]);
      await this.runner.run(["ip", "addr", "replace", `${n.gateway}/${prefix}`, "dev", br]);
      if (n.mode === "nat") await this.runner.setSysctl(`net.ipv4.conf.${br}.route_localnet`, "1");
      this.configured.set(br, config);
    }
    await this.applyVxlan(n, br, existing);
    for (const nic of n.localNics) {
      const tap = tapName(nic.id);
      const link = existing.get(tap);
      if (link !== undefined && this.tapOwner !== null && !ownedBy(link, this.tapOwner) && !(link.flags ?? []).includes("LOWER_UP")) {
        // Made for another user (or for anyone, before IAAS_QEMU_USER) and no QEMU holds it (no
        // carrier): made again for QEMU's user. A tap in use is left until its VM restarts.
        await this.runner.run(["ip", "link", "del", tap]);
        existing.delete(tap);
      }
      if (!existing.has(tap)) {
        const owner = this.tapOwner === null ? [] : ["user", String(this.tapOwner.uid), "group", String(this.tapOwner.gid)];
        await this.runner.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap", ...owner]);
        this.configured.delete(tap);
      }
      const tapConfig = `${br}/${n.mtu}`;
      if (this.configured.get(tap) !== tapConfig) {
        await this.runner.run(["ip", "link", "set", tap, "master", br, "mtu", String(n.mtu), "up"]);
        this.configured.set(tap, tapConfig);
      }
    }
    await this.applyDnsmasq(n, br);
  }

  private async applyVxlan(n: DesiredNetwork, br: string, existing: Map<string, IpLink>): Promise<void> {
    const vx = vxlanName(n.id);
    const want = n.peers.length > 0 && this.info.capabilities.vxlan && this.info.address !== null;
    if (!want) {
      if (existing.has(vx)) await this.runner.run(["ip", "link", "del", vx]);
      this.configured.delete(vx);
      return;
    }
    const local = this.info.address as string;
    if (!existing.has(vx)) {
      await this.runner.run(["ip", "link", "add", vx, "type", "vxlan", "id", String(n.vni), "local", local, "dstport", String(VXLAN_PORT), "nolearning"]);
      this.configured.delete(vx);
    }
    const vxConfig = `${br}/${n.mtu}`;
    if (this.configured.get(vx) !== vxConfig) {
      await this.runner.setSysctl(`net.ipv6.conf.${vx}.disable_ipv6`, "1");
      await this.runner.run(["ip", "link", "set", vx, "master", br, "mtu", String(n.mtu), "up"]);
      this.configured.set(vx, vxConfig);
    }
    // Flood entries: broadcast and unknown unicast go to every peer host with VMs on the network.
    const fdb = await this.runner.json<{ mac: string; dst?: string }[]>(["bridge", "-j", "fdb", "show", "dev", vx]);
    const current = new Set(fdb.filter((e) => e.mac === "00:00:00:00:00:00" && e.dst).map((e) => e.dst as string));
    for (const peer of n.peers) {
      if (!current.has(peer)) await this.runner.run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vx, "dst", peer]);
    }
    for (const stale of current) {
      if (!n.peers.includes(stale)) await this.runner.run(["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", vx, "dst", stale]);
    }
  }

  private async applyDnsmasq(n: DesiredNetwork, br: string): Promise<void> {
    const dir = this.netDir(n.id);
    await mkdir(dir, { recursive: true });
    // dnsmasq drops to `nobody` before it reads its hosts files: they must be world-readable.
    await chmod(path.dirname(dir), 0o755);
    await chmod(dir, 0o755);
    const files = {
      pidFile: path.join(dir, "dnsmasq.pid"),
      dhcpHostsFile: path.join(dir, "dhcp-hosts"),
      addnHostsFile: path.join(dir, "hosts"),
      leaseFile: path.join(dir, "leases"),
      logFile: path.join(dir, "dnsmasq.log"),
    };
    const hostsChanged = [
      await writeIfChanged(files.dhcpHostsFile, renderDhcpHosts(n.localNics.map((x) => ({ mac: x.mac, ip: x.ip, name: x.hostname })))),
      await writeIfChanged(files.addnHostsFile, renderAddnHosts(n.allNics.map((x) => ({ ip: x.ip, name: x.vmName })), n.dnsDomain)),
    ].some(Boolean);
    const argv = dnsmasqArgv({ bridge: br, gateway: n.gateway, subnet: n.subnet, mode: n.mode, mtu: n.mtu, dnsDomain: n.dnsDomain, ...files });
    const argvChanged = await writeIfChanged(path.join(dir, "dnsmasq.argv"), JSON.stringify(argv));
    const pid = await this.dnsmasqPid(files.pidFile, br);
    if (pid !== null && !argvChanged) {
      if (hostsChanged) process.kill(pid, "SIGHUP");
      return;
    }
    if (pid !== null) await this.stopProcess(pid);
    await rm(files.pidFile, { force: true });
    await this.runner.run(argv);
    this.log.info({ network: n.name, bridge: br }, "dnsmasq started");
  }

  /** The pid of the bridge's dnsmasq, if it runs (checked against its command line). */
  private async dnsmasqPid(pidFile: string, br: string): Promise<number | null> {
    const pid = await readPidfile(pidFile);
    if (pid === null || !(await isProcessAlive(pid))) return null;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    return cmdline.includes("dnsmasq") && cmdline.includes(`--interface=${br}`) ? pid : null;
  }

  private async stopProcess(pid: number): Promise<void> {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return;
    }
    for (let i = 0; i < 50 && (await isProcessAlive(pid)); i++) await new Promise((r) => setTimeout(r, 100));
  }

  private async applyNft(model: HostNetworkModel): Promise<void> {
    const networks: NftNetwork[] = model.networks.map((n) => ({
      id: n.id,
      bridge: bridgeName(n.id),
      vxlan: n.peers.length > 0 && this.info.capabilities.vxlan && this.info.address !== null ? vxlanName(n.id) : null,
      mode: n.mode,
      subnet: n.subnet,
      gateway: n.gateway,
      gatewayMac: gatewayMac(n.id),
    }));
    const forwards: NftForward[] = model.networks.flatMap((n) =>
      n.mode !== "nat"
        ? []
        : n.localNics.flatMap((nic) =>
            nic.forwards.map((f) => ({ protocol: f.protocol, address: f.address, hostPort: f.hostPort, guestIp: nic.ip, guestPort: f.guestPort, bridge: bridgeName(n.id) })),
          ),
    );
    const ruleset = renderNftRuleset({ table: NFT_TABLE, networks, forwards });
    if (ruleset === this.lastNft) return;
    const file = path.join(this.dataDir, "net", "nftables.conf");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, ruleset);
    await this.runner.run(["nft", "-f", file]);
    this.lastNft = ruleset;
  }

  private async removeUnneeded(model: HostNetworkModel, links: IpLink[]): Promise<void> {
    const wanted = new Set<string>();
    for (const n of model.networks) {
      wanted.add(bridgeName(n.id));
      if (n.peers.length > 0) wanted.add(vxlanName(n.id));
      for (const nic of n.localNics) wanted.add(tapName(nic.id));
    }
    const ours = links.filter((l) => Object.values(IFNAME_PREFIXES).some((p) => l.ifname.startsWith(p)));
    // Taps and VXLAN devices first, bridges last.
    const order = (name: string) => (name.startsWith(IFNAME_PREFIXES.bridge) ? 1 : 0);
    for (const link of ours.sort((a, b) => order(a.ifname) - order(b.ifname))) {
      if (wanted.has(link.ifname)) continue;
      await this.runner.run(["ip", "link", "del", link.ifname]);
      this.configured.delete(link.ifname);
      this.log.info({ ifname: link.ifname }, "removed an interface no VM needs");
    }
    const netRoot = path.join(this.dataDir, "net");
    const keep = new Set(model.networks.map((n) => n.id));
    for (const entry of await netDirs(netRoot)) {
      if (!entry.isDirectory() || keep.has(entry.name)) continue;
      const pid = await readPidfile(path.join(netRoot, entry.name, "dnsmasq.pid"));
      if (pid !== null && (await isProcessAlive(pid))) await this.stopProcess(pid);
      await rm(path.join(netRoot, entry.name), { recursive: true, force: true });
    }
  }

  /** Records the DHCP leases dnsmasq handed out on this host's NICs (for `vm ip` and `vm wait --for ip`). */
  async recordLeases(): Promise<void> {
    if (this.info.mode !== "bridge") return;
    const netRoot = path.join(this.dataDir, "net");
    const leases = new Map<string, { ip: string; at: Date }>();
    for (const entry of await netDirs(netRoot)) {
      if (!entry.isDirectory()) continue;
      const text = await readFile(path.join(netRoot, entry.name, "leases"), "utf8").catch(() => "");
      for (const l of parseLeases(text)) leases.set(l.mac.toLowerCase(), { ip: l.ip, at: new Date() });
    }
    if (leases.size === 0) return;
    const nics = await this.db.nic.findMany({ where: { vm: { hostId: this.hostId }, mac: { in: [...leases.keys()] } } });
    for (const nic of nics) {
      const lease = leases.get(nic.mac);
      if (!lease || nic.leaseIp === lease.ip) continue;
      await this.db.nic.update({ where: { id: nic.id }, data: { leaseIp: lease.ip, leasedAt: lease.at } });
    }
  }
}
