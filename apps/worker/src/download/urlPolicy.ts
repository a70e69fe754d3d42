import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { IaasError } from "@iaas/contracts";
import { DENIED_V4, DENIED_V6, GLOBAL_UNICAST_V6, TUNNELS, inRange, ipv4Alias, parseIp, type DeniedRange, type IpAddress } from "./deniedRanges.js";

/**
 * Hosts and networks an operator trusts although they are not public: names matched exactly
 * (case-insensitive, trailing dot ignored) and CIDRs. An allowed name is trusted with whatever
 * its DNS answers, so list only names whose DNS you control.
 */
export interface AllowList {
  readonly hosts: ReadonlySet<string>;
  readonly cidrs: readonly { readonly text: string; readonly range: [IpAddress, number] }[];
}

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

/** A URL that passed `checkUrl`: http(s), no credentials, no fragment. */
export interface CheckedUrl {
  readonly url: URL;
  /** The host without IPv6 brackets, lower-case, as DNS or the socket wants it. */
  readonly host: string;
  /** True when the host is an IP address (already checked against the policy). */
  readonly isIpLiteral: boolean;
  readonly port: number;
}

export const EMPTY_ALLOW_LIST: AllowList = { hosts: new Set(), cidrs: [] };

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
/** The hint for refusals: what an operator can do about them. */
export const URL_NOT_ALLOWED_HINT = "downloads may only reach public addresses; an operator can admit a trusted host or network with the worker's IAAS_URL_ALLOW_LIST";

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, "");
}

/** Parses a strict (canonical) IP address or CIDR, with IPv4-mapped IPv6 turned into IPv4. */
function strictCidr(entry: string): [IpAddress, number] | null {
  const [addrText = "", prefixText, extra] = entry.replace(/^\[(.*)\](\/\d+)?$/, "$1$2").split("/");
  if (extra !== undefined || isIP(addrText) === 0) return null;
  let addr: IpAddress = parseIp(addrText);
  const max = addr.kind() === "ipv4" ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  let prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return null;
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
  }
  return [addr, prefix];
}

/**
 * Parses an allow-list such as `images.example.org, 10.1.0.0/16, ::1/128` (commas or spaces
 * between entries). Throws an Error naming the first bad entry.
 */
export function parseAllowList(text: string | undefined): AllowList {
  const hosts = new Set<string>();
  const cidrs: { text: string; range: [IpAddress, number] }[] = [];
  for (const entry of (text ?? "").split(/[\s,]+/).filter((e) => e !== "")) {
    const range = strictCidr(entry);
    if (range) {
      const [addr, prefix] = range;
      const cidrText = `${addr.toString()}/${prefix}`;
      const network = addr.kind() === "ipv4" ? ipaddr.IPv4.networkAddressFromCIDR(cidrText) : ipaddr.IPv6.networkAddressFromCIDR(cidrText);
      if (network.toString() !== addr.toString()) {
        throw new Error(`download allow-list entry '${entry}' has host bits set; did you mean ${network.toString()}/${prefix}?`);
      }
      cidrs.push({ text: entry, range });
      continue;
    }
    const host = normalizeHost(entry);
    const labels = host.split(".");
    if (host.length > 253 || !labels.every((l) => LABEL.test(l)) || /^[0-9]+$|^0x/i.test(labels[labels.length - 1] ?? "")) {
      throw new Error(`download allow-list entry '${entry}' is neither a host name nor an IP address or CIDR (e.g. images.example.org, 10.1.0.0/16, ::1/128)`);
    }
    hosts.add(host);
  }
  return { hosts, cidrs };
}

function isAllowedAddress(addr: IpAddress, allow: AllowList): boolean {
  return allow.cidrs.some((c) => inRange(addr, c.range));
}

/** The denied range holding an IPv4 address, or null when the address is public or allowed. */
function deniedV4(addr: ipaddr.IPv4, allow: AllowList): DeniedRange | null {
  if (isAllowedAddress(addr, allow)) return null;
  return DENIED_V4.find((d) => inRange(addr, d.range)) ?? null;
}

const where = (d: DeniedRange): string => `in ${d.cidr} (${d.reason})`;

function judge(addr: IpAddress, allow: AllowList): AddressVerdict {
  if (addr.kind() === "ipv4") {
    const hit = deniedV4(addr as ipaddr.IPv4, allow);
    return hit ? { allowed: false, reason: `${addr.toString()} is ${where(hit)}` } : { allowed: true };
  }
  const v6 = addr as ipaddr.IPv6;
  const text = v6.toRFC5952String();
  const alias = ipv4Alias(v6);
  if (alias) {
    const hit = deniedV4(alias.v4, allow);
    return hit ? { allowed: false, reason: `${text} is the ${alias.form} form of ${alias.v4.toString()}, which is ${where(hit)}` } : { allowed: true };
  }
  if (isAllowedAddress(v6, allow)) return { allowed: true };
  const tunnel = TUNNELS.find((t) => inRange(v6, t.range));
  if (tunnel) {
    for (const v4 of tunnel.embedded(v6.parts)) {
      const hit = deniedV4(v4, allow);
      if (hit) return { allowed: false, reason: `${text} is a ${tunnel.name} address leading to ${v4.toString()}, which is ${where(hit)}` };
    }
    return { allowed: true };
  }
  const hit = DENIED_V6.find((d) => inRange(v6, d.range));
  if (hit) return { allowed: false, reason: `${text} is ${where(hit)}` };
  if (!inRange(v6, GLOBAL_UNICAST_V6)) return { allowed: false, reason: `${text} is outside 2000::/3 (not global unicast)` };
  return { allowed: true };
}

/**
 * Decides whether a download may connect to `ip`. Denies every address that is not the public
 * internet unless the allow-list admits the address (CIDR) or the host name it was resolved from.
 */
export function checkAddress(ip: string, allow: AllowList, hostname?: string): AddressVerdict {
  if (hostname !== undefined && allow.hosts.has(normalizeHost(hostname))) return { allowed: true };
  const bare = ip.replace(/^\[(.*)\]$/, "$1");
  if (!ipaddr.isValid(bare)) return { allowed: false, reason: `'${ip}' is not an IP address` };
  return judge(parseIp(bare), allow);
}

/** The URL as safe to show: credentials and fragment dropped. */
export function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  copy.hash = "";
  return copy.href;
}

/**
 * Checks what can be checked without DNS: http(s) only, no credentials, and an IP-address host
 * (WHATWG URL has already turned `2130706433` or `0x7f.1` into `127.0.0.1`) against the policy.
 * Throws URL_NOT_ALLOWED.
 */
export function checkUrl(raw: string, allow: AllowList = EMPTY_ALLOW_LIST): CheckedUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IaasError("URL_NOT_ALLOWED", `'${raw.slice(0, 200)}' is not a valid URL`, { hint: "give an absolute http:// or https:// URL" });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new IaasError("URL_NOT_ALLOWED", `URL scheme '${url.protocol}' is not allowed; only http: and https: are`, {
      hint: "serve the image over http(s), or upload it with `iaas image upload`",
    });
  }
  if (url.username !== "" || url.password !== "") {
    throw new IaasError("URL_NOT_ALLOWED", `URL ${redactUrl(url)} carries credentials (user:password@), which are not allowed`, {
      hint: "credentials in URLs end up in logs and job records; use a link that needs none, e.g. a pre-signed URL",
    });
  }
  url.hash = "";
  const host = normalizeHost(url.hostname.replace(/^\[(.*)\]$/, "$1"));
  if (host === "") throw new IaasError("URL_NOT_ALLOWED", `URL ${url.href} has no host`, { hint: "give an absolute http:// or https:// URL" });
  const isIpLiteral = isIP(host) !== 0;
  if (isIpLiteral) {
    const verdict = checkAddress(host, allow);
    if (!verdict.allowed) throw new IaasError("URL_NOT_ALLOWED", `URL ${url.href} is not allowed: ${verdict.reason}`, { hint: URL_NOT_ALLOWED_HINT });
  }
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  return { url, host, isIpLiteral, port };
}
