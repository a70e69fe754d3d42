import { invalid, shown } from "./invalid.js";
import { isManagedIfname } from "./ifnames.js";
import { cidrContains, formatCidr, isIpv4, parseCidr } from "./ipv4.js";
import { normalizeMac } from "./mac.js";

// The host firewall for our networks, rendered as one file for `nft -f` (nftables 1.0.6 syntax).
// It replaces two tables whole, `inet T` and `bridge T`, in one transaction: each is first
// declared empty (so it exists), deleted, then declared with its full contents. Applying the file
// twice leaves one copy; a model without networks leaves both tables empty.

export interface NftNetwork {
  id: string;
  bridge: string;
  /** The VXLAN port enslaved to the bridge when the network spans hosts, else null. */
  vxlan: string | null;
  mode: "nat" | "private";
  subnet: string;
  gateway: string;
  gatewayMac: string;
}

export interface NftForward {
  protocol: "tcp" | "udp";
  /** The host address the port is published on; null publishes it on every local address. */
  address: string | null;
  hostPort: number;
  guestIp: string;
  guestPort: number;
  /** The bridge of the (NAT-mode) network the guest is on. */
  bridge: string;
}

export interface NftModel {
  table: string;
  networks: NftNetwork[];
  forwards: NftForward[];
}

const TABLE_RE = /^[a-z][a-z0-9_]{0,31}$/;
const IFNAME_RE = /^[a-z0-9-]{1,15}$/;
const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

function checkIfname(name: unknown, what: string): string {
  if (typeof name !== "string" || !(isManagedIfname(name) || IFNAME_RE.test(name))) {
    throw invalid(`${what} ${shown(name)} is not a valid interface name`, "use 1 to 15 characters from a-z, 0-9 and '-' (names from bridgeName()/vxlanName())");
  }
  return name;
}

function checkIp(ip: unknown, what: string): string {
  if (!isIpv4(ip)) throw invalid(`${what} ${shown(ip)} is not an IPv4 address`, "write an address as four decimal numbers 0-255, e.g. 10.0.0.5");
  return ip;
}

function checkPort(port: unknown, what: string): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid(`${what} ${shown(port)} is not a port number`, "use an integer from 1 to 65535");
  }
  return port;
}

interface CheckedNetwork extends NftNetwork {
  /** The subnet in canonical form. */
  cidr: string;
}

function checkNetwork(n: NftNetwork): CheckedNetwork {
  if (typeof n.id !== "string" || !ID_RE.test(n.id)) {
    throw invalid(`network id ${shown(n.id)} cannot be written into the firewall rules`, "use ids made of letters, digits, '_', '.', ':' and '-'");
  }
  const where = `network ${n.id}`;
  const bridge = checkIfname(n.bridge, `${where}: bridge`);
  const vxlan = n.vxlan === null ? null : checkIfname(n.vxlan, `${where}: VXLAN device`);
  if (vxlan === bridge) throw invalid(`${where}: the bridge and the VXLAN device are both named ${bridge}`, "give the VXLAN device its own name (vxlanName())");
  if (n.mode !== "nat" && n.mode !== "private") throw invalid(`${where}: mode ${shown(n.mode)} is unknown`, "use 'nat' or 'private'");
  const c = parseCidr(n.subnet);
  const cidr = formatCidr(c.network, c.prefix);
  const gateway = checkIp(n.gateway, `${where}: gateway`);
  if (!cidrContains(cidr, gateway)) throw invalid(`${where}: gateway ${gateway} is outside its subnet ${cidr}`, "use the subnet's first address (gatewayOf())");
  const gatewayMac = normalizeMac(n.gatewayMac);
  return { id: n.id, bridge, vxlan, mode: n.mode, subnet: cidr, cidr, gateway, gatewayMac };
}

/** `iifname "a"` or `iifname { "a", "b" }`. */
function nameSet(names: readonly string[]): string {
  const quoted = names.map((x) => `"${x}"`);
  return quoted.length === 1 ? (quoted[0] ?? "") : `{ ${quoted.join(", ")} }`;
}

function chain(name: string, header: string, rules: readonly string[]): string[] {
  return [`\tchain ${name} {`, `\t\t${header}`, ...rules.map((r) => `\t\t${r}`), "\t}"];
}

/** The declare-delete-declare sequence that replaces a table whole, idempotently. */
function replaceTable(family: "inet" | "bridge", table: string, chains: string[][]): string[] {
  const body = chains.flat();
  return [`table ${family} ${table} {}`, `delete table ${family} ${table}`, `table ${family} ${table} {`, ...body, "}"];
}

/** The `nft -f` file for `model`. Throws VALIDATION_FAILED for any name, address or port it cannot write safely. */
export function renderNftRuleset(model: NftModel): string {
  if (typeof model.table !== "string" || !TABLE_RE.test(model.table)) {
    throw invalid(`nftables table name ${shown(model.table)} is not allowed`, "use 1 to 32 characters from a-z, 0-9 and '_', starting with a letter");
  }
  const table = model.table;
  const networks = model.networks.map(checkNetwork);

  const byBridge = new Map<string, CheckedNetwork>();
  const ifnames = new Set<string>();
  for (const n of networks) {
    for (const name of n.vxlan === null ? [n.bridge] : [n.bridge, n.vxlan]) {
      if (ifnames.has(name)) throw invalid(`interface ${name} is used by more than one network`, "give every network its own bridge and VXLAN device");
      ifnames.add(name);
    }
    byBridge.set(n.bridge, n);
  }

  const forwards = model.forwards.map((f, i) => {
    const where = `port forward #${i + 1}`;
    if (f.protocol !== "tcp" && f.protocol !== "udp") throw invalid(`${where}: protocol ${shown(f.protocol)} is unknown`, "use 'tcp' or 'udp'");
    const address = f.address === null ? null : checkIp(f.address, `${where}: host address`);
    const hostPort = checkPort(f.hostPort, `${where}: host port`);
    const guestPort = checkPort(f.guestPort, `${where}: guest port`);
    const guestIp = checkIp(f.guestIp, `${where}: guest address`);
    const bridge = checkIfname(f.bridge, `${where}: bridge`);
    const net = byBridge.get(bridge);
    if (net === undefined) throw invalid(`${where}: bridge ${bridge} belongs to no network of the model`, "forward ports only to NICs on networks in the model");
    if (net.mode !== "nat") throw invalid(`${where}: network ${net.id} is private and cannot publish ports`, "publish ports only from NAT-mode networks");
    if (!cidrContains(net.cidr, guestIp)) throw invalid(`${where}: guest address ${guestIp} is outside network ${net.cidr}`, "forward to the NIC's address on that network");
    return { protocol: f.protocol, address, hostPort, guestIp, guestPort, net };
  });
  const seen = new Set<string>();
  for (const f of forwards) {
    const key = `${f.protocol}/${f.address ?? "*"}/${f.hostPort}`;
    if (seen.has(key)) {
      throw invalid(`${f.protocol} port ${f.hostPort}${f.address === null ? "" : ` on ${f.address}`} is forwarded twice`, "publish each host port once");
    }
    seen.add(key);
  }

  const bridges = networks.map((n) => n.bridge);
  const all = bridges.length === 0 ? "" : nameSet(bridges);

  // inet: what guests may send to the host, between networks and out; port forwards; masquerade.
  const input: string[] = [];
  const rawPre: string[] = [];
  const forward: string[] = ["ct state established,related accept", "ct status dnat accept"];
  const dnat: string[] = [];
  const postrouting: string[] = [];
  if (bridges.length > 0) input.push(`iifname ${all} ct state established,related accept`);
  for (const n of networks) {
    const br = `iifname "${n.bridge}"`;
    input.push(
      `# network ${n.id} (${n.mode}, ${n.cidr}): DHCP, DNS and ping to the gateway; nothing else on the host`,
      `${br} udp dport 67 accept`,
      `${br} ip daddr ${n.gateway} udp dport 53 accept`,
      `${br} ip daddr ${n.gateway} tcp dport 53 accept`,
      `${br} ip daddr ${n.gateway} icmp type echo-request accept`,
      `${br} drop`,
    );
    rawPre.push(
      `# network ${n.id}: no loopback destinations, no spoofed sources (0.0.0.0 only for DHCP)`,
      `${br} ip daddr 127.0.0.0/8 drop`,
      `${br} ip saddr 0.0.0.0 udp dport 67 accept`,
      `${br} ip saddr != ${n.cidr} drop`,
    );
    forward.push(`${br} oifname "${n.bridge}" accept`);
    if (n.mode === "nat") {
      forward.push(`${br} oifname != ${all} accept`);
      postrouting.push(`ip saddr ${n.cidr} oifname != "${n.bridge}" masquerade`);
    }
  }
  if (bridges.length > 0) forward.push(`iifname ${all} drop`, `oifname ${all} drop`);
  for (const f of forwards) {
    const match = f.address === null ? "meta nfproto ipv4 fib daddr type local" : `ip daddr ${f.address}`;
    dnat.push(`${match} ${f.protocol} dport ${f.hostPort} dnat ip to ${f.guestIp}:${f.guestPort}`);
  }
  const forwarded = [...new Set(forwards.map((f) => f.net))];
  for (const n of forwarded) {
    // Connections from 127.0.0.1 (route_localnet) and from the guest's own network (hairpin)
    // must come back through the host to be un-NATed.
    postrouting.push(`oifname "${n.bridge}" ip saddr 127.0.0.0/8 masquerade`, `oifname "${n.bridge}" ip saddr ${n.cidr} ct status dnat masquerade`);
  }

  // Without networks the table stays empty: no hooks, so no conntrack or NAT work for the host.
  const inet = replaceTable(
    "inet",
    table,
    networks.length === 0
      ? []
      : [
          chain("input", "type filter hook input priority 0; policy accept;", input),
          chain("prerouting_filter", "type filter hook prerouting priority -300; policy accept;", rawPre),
          chain("forward", "type filter hook forward priority 0; policy accept;", forward),
          chain("prerouting", "type nat hook prerouting priority -100; policy accept;", dnat),
          chain("output", "type nat hook output priority -100; policy accept;", dnat),
          chain("postrouting", "type nat hook postrouting priority 100; policy accept;", postrouting),
        ],
  );

  // bridge: a network spanning hosts has a gateway (same IP, same MAC) on every host; each host
  // answers its own VMs, so nothing of the gateway's, and no DHCP, crosses the VXLAN port.
  const spanning = networks.filter((n): n is CheckedNetwork & { vxlan: string } => n.vxlan !== null);
  const bridgeChains: string[][] = [];
  if (spanning.length > 0) {
    const inbound: string[] = [];
    const outForward: string[] = [];
    const outLocal: string[] = [];
    for (const n of spanning) {
      const iif = `iifname "${n.vxlan}"`;
      const oif = `oifname "${n.vxlan}"`;
      inbound.push(
        `# network ${n.id}: gateway ${n.gateway} (${n.gatewayMac}) and DHCP stay on this host`,
        `${iif} ether saddr ${n.gatewayMac} drop`,
        `${iif} arp daddr ip ${n.gateway} drop`,
        `${iif} udp dport 67 drop`,
        `${iif} udp sport 67 drop`,
      );
      outForward.push(
        `# network ${n.id}`,
        `${oif} ether saddr ${n.gatewayMac} drop`,
        `${oif} arp daddr ip ${n.gateway} drop`,
        `${oif} udp dport 67 drop`,
        `${oif} udp sport 67 drop`,
      );
      outLocal.push(`# network ${n.id}`, `${oif} ether saddr ${n.gatewayMac} drop`, `${oif} arp daddr ip ${n.gateway} drop`, `${oif} udp sport 67 drop`);
    }
    // Frames in from the VXLAN port are dropped at prerouting: before the bridge learns their
    // source MAC, and whether they were headed for the host (input) or a local VM (forward).
    bridgeChains.push(
      chain("prerouting", "type filter hook prerouting priority -200; policy accept;", inbound),
      chain("forward", "type filter hook forward priority 0; policy accept;", outForward),
      chain("output", "type filter hook output priority 0; policy accept;", outLocal),
    );
  }
  const bridge = replaceTable("bridge", table, bridgeChains);

  return [`# Generated by iaas; replaces tables inet ${table} and bridge ${table} whole. Do not edit.`, ...inet, ...bridge, ""].join("\n");
}
