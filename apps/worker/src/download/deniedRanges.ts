import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Parses an IP address. ipaddr.js reads the deprecated IPv4-compatible spelling `::a.b.c.d` as
 * IPv4-mapped `::ffff:a.b.c.d`; RFC 4291 (and inet_ntop, which prints `::7f00:1` that way) means
 * `::a.b.c.d` itself, so that one spelling is rewritten first.
 */
export function parseIp(text: string): IpAddress {
  const compat = /^::(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(%.*)?$/.exec(text);
  if (compat) {
    const [a, b, c, d] = compat.slice(1, 5).map(Number) as [number, number, number, number];
    if ([a, b, c, d].every((o) => o <= 255)) text = `::${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}${compat[5] ?? ""}`;
  }
  return ipaddr.parse(text);
}

/** A range downloads may not reach, with the reason shown to the user. */
export interface DeniedRange {
  readonly cidr: string;
  readonly reason: string;
  readonly range: [IpAddress, number];
}

function table(rows: readonly (readonly [string, string])[]): readonly DeniedRange[] {
  return rows.map(([cidr, reason]) => ({ cidr, reason, range: ipaddr.parseCIDR(cidr) }));
}

/** IPv4 ranges that are not the public internet (RFC 6890 and friends). First match names the reason. */
export const DENIED_V4 = table([
  ["0.0.0.0/8", "unspecified, 'this network'"],
  ["10.0.0.0/8", "private, RFC 1918"],
  ["100.64.0.0/10", "carrier-grade NAT, RFC 6598"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local, where cloud metadata services answer"],
  ["172.16.0.0/12", "private, RFC 1918"],
  ["192.0.0.0/24", "IETF protocol assignments, RFC 6890"],
  ["192.0.2.0/24", "documentation, TEST-NET-1"],
  ["192.88.99.0/24", "6to4 relay anycast, deprecated"],
  ["192.168.0.0/16", "private, RFC 1918"],
  ["198.18.0.0/15", "benchmarking, RFC 2544"],
  ["198.51.100.0/24", "documentation, TEST-NET-2"],
  ["203.0.113.0/24", "documentation, TEST-NET-3"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  ["240.0.0.0/4", "reserved, RFC 1112"],
]);

/** IPv6 ranges denied outright; anything outside 2000::/3 is denied as well (see GLOBAL_UNICAST_V6). */
export const DENIED_V6 = table([
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["100::/64", "discard-only, RFC 6666"],
  ["64:ff9b:1::/48", "local-use NAT64, RFC 8215"],
  ["2001:2::/48", "benchmarking, RFC 5180"],
  ["2001:10::/28", "ORCHID, deprecated"],
  ["2001:20::/28", "ORCHIDv2, RFC 7343"],
  ["2001:db8::/32", "documentation, RFC 3849"],
  ["3fff::/20", "documentation, RFC 9637"],
  ["fc00::/7", "unique-local, RFC 4193"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local, deprecated"],
  ["ff00::/8", "multicast"],
]);

/** The only IPv6 space allocated for global unicast. */
export const GLOBAL_UNICAST_V6: [IpAddress, number] = ipaddr.parseCIDR("2000::/3");

/** IPv6 forms that are an IPv4 address in disguise: judged entirely as that IPv4 address. */
export const IPV4_ALIASES = table([
  ["::ffff:0:0/96", "IPv4-mapped"],
  ["::ffff:0:0:0/96", "IPv4-translated"],
  ["::/96", "IPv4-compatible"],
]);

/** An IPv4 address packed into a 16-bit pair of IPv6 parts. */
function v4From(hi: number, lo: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/** IPv6 transition forms that carry traffic to an embedded IPv4 address. */
export interface Tunnel {
  readonly name: string;
  readonly range: [IpAddress, number];
  /** The IPv4 addresses the packets end up at (Teredo names both its server and the client). */
  readonly embedded: (parts: readonly number[]) => ipaddr.IPv4[];
}

export const TUNNELS: readonly Tunnel[] = [
  { name: "NAT64 (RFC 6052)", range: ipaddr.parseCIDR("64:ff9b::/96"), embedded: (p) => [v4From(p[6] ?? 0, p[7] ?? 0)] },
  { name: "6to4 (RFC 3056)", range: ipaddr.parseCIDR("2002::/16"), embedded: (p) => [v4From(p[1] ?? 0, p[2] ?? 0)] },
  {
    name: "Teredo (RFC 4380)",
    range: ipaddr.parseCIDR("2001::/32"),
    embedded: (p) => [v4From(p[2] ?? 0, p[3] ?? 0), v4From(~(p[6] ?? 0) & 0xffff, ~(p[7] ?? 0) & 0xffff)],
  },
];

/** The IPv4 address an IPv4-mapped/compatible/translated IPv6 address stands for, or null. */
export function ipv4Alias(addr: ipaddr.IPv6): { form: string; v4: ipaddr.IPv4 } | null {
  // :: and ::1 lie inside ::/96 but are IPv6's own unspecified and loopback addresses.
  if (addr.match(ipaddr.parseCIDR("::/127"))) return null;
  for (const alias of IPV4_ALIASES) {
    if (addr.match(alias.range)) return { form: alias.reason, v4: v4From(addr.parts[6] ?? 0, addr.parts[7] ?? 0) };
  }
  return null;
}

/** Whether `addr` lies in `range`, false across address families (ipaddr.js throws there). */
export function inRange(addr: IpAddress, range: [IpAddress, number]): boolean {
  return addr.kind() === range[0].kind() && addr.match(range);
}
