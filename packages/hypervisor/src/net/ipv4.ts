import { IaasError } from "@iaas/contracts";
import { invalid, shown } from "./invalid.js";

// IPv4 address management: pure functions on dotted quads and CIDRs. Addresses are handled as
// unsigned 32-bit integers (0 .. 2^32-1) held in plain numbers.

/** Smallest and largest prefix a network managed here may have. */
export const MIN_NETWORK_PREFIX = 16;
export const MAX_NETWORK_PREFIX = 29;

const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
// No leading zeros: "010.0.0.1" is octal to some parsers and decimal to others.
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const PREFIX_RE = /^(0|[1-9][0-9]?)$/;
const TWO_32 = 2 ** 32;

/** Whether `s` is an IPv4 address in dotted-quad form (four decimal octets without leading zeros). */
export function isIpv4(s: unknown): s is string {
  return typeof s === "string" && IPV4_RE.test(s);
}

/** The address as an unsigned 32-bit integer. Throws VALIDATION_FAILED when `ip` is not an IPv4 address. */
export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) {
    throw invalid(`${shown(ip)} is not an IPv4 address`, "write an address as four decimal numbers 0-255, e.g. 10.0.0.5");
  }
  let n = 0;
  for (const part of ip.split(".")) n = n * 256 + Number(part);
  return n;
}

/** The dotted quad of an unsigned 32-bit integer. */
export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= TWO_32) {
    throw invalid(`${String(n)} is not an IPv4 address as a number`, "pass an integer from 0 to 4294967295");
  }
  return [Math.floor(n / 2 ** 24) % 256, Math.floor(n / 2 ** 16) % 256, Math.floor(n / 2 ** 8) % 256, n % 256].join(".");
}

export interface Cidr {
  /** The network address as an unsigned integer. */
  network: number;
  prefix: number;
  /** Number of addresses in the block, network and broadcast included. */
  size: number;
}

/** Number of addresses in a block with this prefix. */
function sizeOf(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** `ip` with the host bits of `prefix` cleared. */
function maskInt(ip: number, prefix: number): number {
  const size = sizeOf(prefix);
  return ip - (ip % size);
}

function splitCidr(cidr: string): { ip: string; prefix: string } | null {
  if (typeof cidr !== "string") return null;
  const slash = cidr.indexOf("/");
  if (slash < 0) return null;
  const ip = cidr.slice(0, slash);
  const prefix = cidr.slice(slash + 1);
  if (!isIpv4(ip) || !PREFIX_RE.test(prefix) || Number(prefix) > 32) return null;
  return { ip, prefix };
}

/**
 * A network this system may manage: prefix /16 to /29, host bits clear. Throws VALIDATION_FAILED
 * for a malformed CIDR, a prefix out of range or host bits set.
 */
export function parseCidr(cidr: string): Cidr {
  const parts = splitCidr(cidr);
  if (parts === null) {
    throw invalid(`${shown(cidr)} is not an IPv4 network in CIDR form`, "write a network as ADDRESS/PREFIX, e.g. 10.0.0.0/24");
  }
  const prefix = Number(parts.prefix);
  if (prefix < MIN_NETWORK_PREFIX || prefix > MAX_NETWORK_PREFIX) {
    throw invalid(
      `network ${cidr} has prefix /${prefix}, which is ${prefix < MIN_NETWORK_PREFIX ? "too large a network" : "too small a network"}`,
      `use a prefix from /${MIN_NETWORK_PREFIX} to /${MAX_NETWORK_PREFIX}, e.g. /24`,
      { prefix },
    );
  }
  const ip = ipToInt(parts.ip);
  const network = maskInt(ip, prefix);
  if (network !== ip) {
    const fixed = formatCidr(network, prefix);
    throw invalid(`${cidr} has host bits set; did you mean ${fixed}?`, `write the network address, e.g. ${fixed}`, { suggestion: fixed });
  }
  return { network, prefix, size: sizeOf(prefix) };
}

/**
 * Any IPv4 block, prefix /0 to /32, for comparing against networks: host bits are ignored
 * ("192.168.1.7/24" is 192.168.1.0/24, as `ip addr` prints interface addresses) and a bare address
 * counts as a /32. Throws VALIDATION_FAILED when `cidr` is neither.
 */
export function parseAnyCidr(cidr: string): Cidr {
  if (isIpv4(cidr)) return { network: ipToInt(cidr), prefix: 32, size: 1 };
  const parts = splitCidr(cidr);
  if (parts === null) {
    throw invalid(`${shown(cidr)} is not an IPv4 address or network in CIDR form`, "write a network as ADDRESS/PREFIX, e.g. 192.168.1.0/24");
  }
  const prefix = Number(parts.prefix);
  return { network: maskInt(ipToInt(parts.ip), prefix), prefix, size: sizeOf(prefix) };
}

export function formatCidr(network: number, prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw invalid(`/${String(prefix)} is not an IPv4 prefix`, "use a prefix from /0 to /32");
  }
  return `${intToIp(network)}/${prefix}`;
}

/** The dotted-quad netmask of a prefix: 24 → "255.255.255.0". */
export function netmaskOf(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw invalid(`/${String(prefix)} is not an IPv4 prefix`, "use a prefix from /0 to /32");
  }
  return intToIp(TWO_32 - sizeOf(prefix));
}

/** Whether `ip` lies inside `cidr` (any prefix; host bits in `cidr` are ignored). */
export function cidrContains(cidr: string, ip: string): boolean {
  const block = parseAnyCidr(cidr);
  const n = ipToInt(ip);
  return n >= block.network && n < block.network + block.size;
}

/** Whether two blocks share at least one address. Either may have any prefix /0 to /32. */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseAnyCidr(a);
  const y = parseAnyCidr(b);
  return x.network < y.network + y.size && y.network < x.network + x.size;
}

const PRIVATE_BLOCKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map(parseAnyCidr);

/** Whether `cidr` lies entirely inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (RFC 1918). */
export function isPrivateCidr(cidr: string): boolean {
  const c = parseAnyCidr(cidr);
  return PRIVATE_BLOCKS.some((p) => c.network >= p.network && c.network + c.size <= p.network + p.size);
}

/** The gateway address of a network: its first usable address. */
export function gatewayOf(cidr: string): string {
  return intToIp(parseCidr(cidr).network + 1);
}

/** The broadcast address of a network. */
export function broadcastOf(cidr: string): string {
  const c = parseCidr(cidr);
  return intToIp(c.network + c.size - 1);
}

/**
 * An address for a NIC in `cidr`. With `requested`: that address, checked to be a usable address of
 * the network (not its network, broadcast or gateway address) that is not in `taken`. Without:
 * the lowest address from network+2 up to broadcast-1 that is not in `taken`.
 * Entries of `taken` that are not IPv4 addresses are ignored.
 */
export function allocateIp(cidr: string, taken: Iterable<string>, requested?: string): string {
  const net = parseCidr(cidr);
  const first = net.network + 2;
  const last = net.network + net.size - 2;
  const range = `${intToIp(first)} to ${intToIp(last)}`;
  const used = new Set<number>();
  for (const t of taken) if (isIpv4(t)) used.add(ipToInt(t));

  if (requested !== undefined) {
    if (!isIpv4(requested)) {
      throw invalid(`requested address ${shown(requested)} is not an IPv4 address`, `pick an address from ${range}, or leave ip= out to get one allocated`);
    }
    const n = ipToInt(requested);
    const ip = intToIp(n);
    const details = { network: cidr, ip };
    if (n < net.network || n >= net.network + net.size) {
      throw invalid(`${ip} is outside network ${cidr}`, `pick an address from ${range}, or leave ip= out to get one allocated`, details);
    }
    if (n === net.network) {
      throw invalid(`${ip} is the network address of ${cidr} and cannot be given to a NIC`, `pick an address from ${range}`, details);
    }
    if (n === net.network + net.size - 1) {
      throw invalid(`${ip} is the broadcast address of ${cidr} and cannot be given to a NIC`, `pick an address from ${range}`, details);
    }
    if (n === net.network + 1) {
      throw invalid(`${ip} is the gateway address of ${cidr} and cannot be given to a NIC`, `pick an address from ${range}`, details);
    }
    if (used.has(n)) {
      throw new IaasError("ADDRESS_TAKEN", `${ip} is already used in network ${cidr}`, {
        hint: "pick another address, or leave ip= out to get a free one allocated",
        retryable: false,
        details,
      });
    }
    return ip;
  }

  for (let n = first; n <= last; n++) if (!used.has(n)) return intToIp(n);
  throw new IaasError("ADDRESS_TAKEN", `network ${cidr} has no free address`, {
    hint: "remove a NIC from this network, or attach the VM to a larger network",
    retryable: false,
    details: { network: cidr },
  });
}

/**
 * The first 10.X.Y.0/24 (X from 100 to 254, Y from 0 to 255) that overlaps none of `inUse`
 * (networks, routes or addresses of any prefix, as parseAnyCidr reads them). Throws SUBNET_CONFLICT
 * when every one overlaps.
 */
export function pickFreeSubnet(inUse: string[]): string {
  const blocks = inUse.map(parseAnyCidr).map((c) => ({ start: c.network, end: c.network + c.size }));
  for (let x = 100; x <= 254; x++) {
    for (let y = 0; y <= 255; y++) {
      const start = ipToInt(`10.${x}.${y}.0`);
      const end = start + 256;
      if (!blocks.some((b) => b.start < end && start < b.end)) return `10.${x}.${y}.0/24`;
    }
  }
  throw new IaasError("SUBNET_CONFLICT", "every subnet from 10.100.0.0/24 to 10.254.255.0/24 overlaps a network or route already in use", {
    hint: "create the network with an explicit subnet (e.g. 172.30.0.0/24) that no other network or host route uses",
    retryable: false,
  });
}
