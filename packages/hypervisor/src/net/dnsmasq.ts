import { invalid, shown } from "./invalid.js";
import { isManagedIfname } from "./ifnames.js";
import { cidrContains, formatCidr, intToIp, isIpv4, netmaskOf, parseCidr } from "./ipv4.js";
import { normalizeMac } from "./mac.js";
import { validateHostname } from "./cloudInit.js";

// One dnsmasq per bridge: DHCP only for reserved MACs, DNS for the network's names.

export interface DnsmasqConfig {
  /** The dnsmasq executable (default "dnsmasq"). */
  binary?: string;
  bridge: string;
  gateway: string;
  subnet: string;
  mode: "nat" | "private";
  mtu: number;
  /** The DNS domain of the network's names, e.g. "net1.iaas.internal". */
  dnsDomain: string;
  pidFile: string;
  /** "mac,ip,name" rows (renderDhcpHosts); `kill -HUP` re-reads it. */
  dhcpHostsFile: string;
  /** "ip name.domain name" rows (renderAddnHosts); `kill -HUP` re-reads it. */
  addnHostsFile: string;
  leaseFile: string;
  logFile: string;
}

const IFNAME_RE = /^[a-z0-9-]{1,15}$/;
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A DNS domain (one or more labels), lower-cased. Throws VALIDATION_FAILED otherwise. */
export function validateDnsDomain(domain: string): string {
  const d = typeof domain === "string" ? domain.toLowerCase() : "";
  if (d === "" || d.length > 253 || !d.split(".").every((l) => LABEL_RE.test(l))) {
    throw invalid(`${shown(domain)} is not a DNS domain`, "use dot-separated labels of letters, digits and hyphens, e.g. net1.iaas.internal");
  }
  return d;
}

function checkPath(path: unknown, what: string): string {
  // Absolute; no commas (dnsmasq splits some option values at them), no control characters.
  // eslint-disable-next-line no-control-regex
  if (typeof path !== "string" || !path.startsWith("/") || /[,\u0000-\u001f\u007f]/.test(path)) {
    throw invalid(`${what} ${shown(path)} is not an absolute path dnsmasq can take`, "use an absolute path without commas or control characters");
  }
  return path;
}

/**
 * The argv that starts dnsmasq for one bridge. dnsmasq daemonizes (its default) and writes
 * `pidFile`; it reads no configuration file (settings in /etc/dnsmasq.conf would override these).
 * DHCP is `static`: only MACs listed in the hosts file get a lease. A private network gets no
 * router option and no upstream resolvers.
 */
export function dnsmasqArgv(c: DnsmasqConfig): string[] {
  const binary = c.binary ?? "dnsmasq";
  if (typeof binary !== "string" || binary === "") throw invalid("the dnsmasq binary must be named", "leave binary out to use dnsmasq from the PATH");
  if (typeof c.bridge !== "string" || !(isManagedIfname(c.bridge) || IFNAME_RE.test(c.bridge))) {
    throw invalid(`bridge ${shown(c.bridge)} is not a valid interface name`, "use 1 to 15 characters from a-z, 0-9 and '-' (bridgeName())");
  }
  const net = parseCidr(c.subnet);
  const cidr = formatCidr(net.network, net.prefix);
  if (!isIpv4(c.gateway)) throw invalid(`gateway ${shown(c.gateway)} is not an IPv4 address`, "use the subnet's first address (gatewayOf())");
  if (!cidrContains(cidr, c.gateway)) throw invalid(`gateway ${c.gateway} is outside subnet ${cidr}`, "use the subnet's first address (gatewayOf())");
  if (c.mode !== "nat" && c.mode !== "private") throw invalid(`network mode ${shown(c.mode)} is unknown`, "use 'nat' or 'private'");
  if (typeof c.mtu !== "number" || !Number.isInteger(c.mtu) || c.mtu < 576 || c.mtu > 9000) {
    throw invalid(`MTU ${shown(c.mtu)} is out of range`, "use an integer from 576 to 9000 (1500 on a plain bridge, 1450 over VXLAN)");
  }
  const domain = validateDnsDomain(c.dnsDomain);
  const pidFile = checkPath(c.pidFile, "pid file");
  const hostsFile = checkPath(c.dhcpHostsFile, "DHCP hosts file");
  const addnHosts = checkPath(c.addnHostsFile, "hosts file");
  const leaseFile = checkPath(c.leaseFile, "lease file");
  const logFile = checkPath(c.logFile, "log file");

  const argv = [
    binary,
    "--conf-file=/dev/null",
    `--pid-file=${pidFile}`,
    "--bind-interfaces",
    `--interface=${c.bridge}`,
    "--except-interface=lo",
    `--listen-address=${c.gateway}`,
    `--dhcp-range=${intToIp(net.network)},static,${netmaskOf(net.prefix)},12h`,
    `--dhcp-hostsfile=${hostsFile}`,
    `--addn-hosts=${addnHosts}`,
    `--dhcp-leasefile=${leaseFile}`,
    "--dhcp-authoritative",
    "--no-hosts",
    "--domain-needed",
    "--bogus-priv",
    `--domain=${domain}`,
    `--local=/${domain}/`,
    "--expand-hosts",
    `--dhcp-option=option:dns-server,${c.gateway}`,
    `--dhcp-option=option:domain-name,${domain}`,
    `--dhcp-option=option:mtu,${c.mtu}`,
    `--log-facility=${logFile}`,
    "--log-dhcp",
  ];
  if (c.mode === "nat") argv.push(`--dhcp-option=option:router,${c.gateway}`);
  else argv.push("--dhcp-option=option:router", "--no-resolv");
  return argv;
}

/** The --dhcp-hostsfile: one "mac,ip,name" row per reservation. MACs and addresses must be unique. */
export function renderDhcpHosts(entries: { mac: string; ip: string; name: string }[]): string {
  const macs = new Set<string>();
  const ips = new Set<string>();
  let out = "";
  for (const e of entries) {
    const mac = normalizeMac(e.mac);
    if (!isIpv4(e.ip)) throw invalid(`DHCP reservation for ${mac}: ${shown(e.ip)} is not an IPv4 address`, "reserve an address allocated with allocateIp()");
    const name = validateHostname(e.name);
    if (macs.has(mac)) throw invalid(`MAC ${mac} has more than one DHCP reservation`, "give every NIC its own MAC");
    if (ips.has(e.ip)) throw invalid(`address ${e.ip} is reserved for more than one MAC`, "give every NIC its own address");
    macs.add(mac);
    ips.add(e.ip);
    out += `${mac},${e.ip},${name}\n`;
  }
  return out;
}

/** The --addn-hosts file: "ip name.domain name" per entry. */
export function renderAddnHosts(entries: { ip: string; name: string }[], domain: string): string {
  const d = validateDnsDomain(domain);
  let out = "";
  for (const e of entries) {
    if (!isIpv4(e.ip)) throw invalid(`host entry ${shown(e.name)}: ${shown(e.ip)} is not an IPv4 address`, "use the NIC's IPv4 address");
    const name = validateHostname(e.name);
    out += `${e.ip} ${name}.${d} ${name}\n`;
  }
  return out;
}

export interface DnsmasqLease {
  /** Unix time the lease ends; 0 for an infinite lease. */
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
}

/**
 * The IPv4 leases of a dnsmasq lease file ("EXPIRY MAC IP HOSTNAME CLIENTID" lines, "*" for no
 * hostname). DHCPv6 lines, the "duid" line and malformed lines are skipped.
 */
export function parseLeases(text: string): DnsmasqLease[] {
  const leases: DnsmasqLease[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [expiry, mac, ip, host] = f as [string, string, string, string];
    if (!/^[0-9]+$/.test(expiry) || !isIpv4(ip) || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) continue;
    leases.push({ expires: Number(expiry), mac: mac.toLowerCase(), ip, hostname: host === "*" ? null : host });
  }
  return leases;
}
