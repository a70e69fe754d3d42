import { InvalidArgumentError } from "commander";
import { Cidr, DnsDomain, Ipv4Address, looksLikeUuid, MacAddress, NetworkName, type NicRequest, type PortProtocol } from "@iaas/contracts";

/** `HOST_PORT:GUEST_PORT[/tcp|udp]`, as `vm port add` takes it. */
export interface PortSpec {
  hostPort: number;
  guestPort: number;
  protocol: PortProtocol;
}

/** `HOST_PORT[/tcp|udp]`, as `vm port remove` takes it. */
export interface PortRef {
  hostPort: number;
  protocol: PortProtocol;
}

export const NIC_SPEC_HELP = "NET[,ip=A.B.C.D][,mac=52:54:00:xx:xx:xx]";

/**
 * Parses `--network NET[,ip=A.B.C.D][,mac=52:54:..]`: NET is a network name or id; `ip` and
 * `mac` may each be given once. Anything else is refused, naming the problem.
 */
export function parseNicSpec(spec: string): NicRequest {
  const parts = spec.split(",");
  const network = (parts[0] ?? "").trim();
  if (network === "") throw new InvalidArgumentError(`expected ${NIC_SPEC_HELP}: the network name is missing.`);
  if (!looksLikeUuid(network)) {
    const name = NetworkName.safeParse(network);
    if (!name.success) throw new InvalidArgumentError(`'${network}' is not a network name or id: ${issueText(name.error.issues)}.`);
  }
  const nic: NicRequest = { network };
  for (const part of parts.slice(1)) {
    const eq = part.indexOf("=");
    if (part.trim() === "") throw new InvalidArgumentError(`empty item in '${spec}'; expected ${NIC_SPEC_HELP}.`);
    if (eq <= 0) throw new InvalidArgumentError(`'${part}' is not key=value; expected ${NIC_SPEC_HELP}.`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    switch (key) {
      case "ip": {
        if (nic.ip !== undefined) throw new InvalidArgumentError("ip= is given twice.");
        const ip = Ipv4Address.safeParse(value);
        if (!ip.success) throw new InvalidArgumentError(`ip '${value}': ${issueText(ip.error.issues)}.`);
        nic.ip = ip.data;
        break;
      }
      case "mac": {
        if (nic.mac !== undefined) throw new InvalidArgumentError("mac= is given twice.");
        nic.mac = parseMac(value);
        break;
      }
      default:
        throw new InvalidArgumentError(`unknown key '${key}' (known: ip, mac); expected ${NIC_SPEC_HELP}.`);
    }
  }
  return nic;
}

/** A unicast MAC address, lower-cased. */
function parseMac(value: string): string {
  const mac = MacAddress.safeParse(value);
  if (!mac.success) throw new InvalidArgumentError(`mac '${value}': ${issueText(mac.error.issues)}.`);
  const lower = mac.data.toLowerCase();
  if ((parseInt(lower.slice(0, 2), 16) & 1) === 1) {
    throw new InvalidArgumentError(`mac '${value}' is a multicast address (odd first byte); use a unicast one such as 52:54:00:12:34:56.`);
  }
  return lower;
}

/** Collects repeated `--network SPEC` options (`previous` is false after `--no-network`). */
export function nicSpecInto(value: string, previous: NicRequest[] | false | undefined): NicRequest[] {
  return [...(Array.isArray(previous) ? previous : []), parseNicSpec(value)];
}

/** A port number 1-65535, written as plain digits. */
export function parsePort(text: string, what = "port"): number {
  const trimmed = text.trim();
  if (!/^\d{1,5}$/.test(trimmed) || Number(trimmed) < 1 || Number(trimmed) > 65535) {
    throw new InvalidArgumentError(`${what} '${text}' is not a port number (1-65535).`);
  }
  return Number(trimmed);
}

function parseProtocol(text: string | undefined, spec: string): PortProtocol {
  if (text === undefined) return "tcp";
  const proto = text.trim().toLowerCase();
  if (proto !== "tcp" && proto !== "udp") throw new InvalidArgumentError(`unknown protocol '${text}' in '${spec}' (tcp or udp).`);
  return proto;
}

/** Splits `X[/proto]`; more than one '/' is refused. */
function splitProtocol(spec: string, expected: string): { rest: string; protocol: PortProtocol } {
  const parts = spec.split("/");
  if (parts.length > 2) throw new InvalidArgumentError(`'${spec}' has more than one '/'; expected ${expected}.`);
  return { rest: parts[0] ?? "", protocol: parseProtocol(parts[1], spec) };
}

/** Parses `HOST_PORT:GUEST_PORT[/tcp|udp]` (default tcp), e.g. `8080:80`, `5353:53/udp`. */
export function parsePortSpec(spec: string): PortSpec {
  const expected = "HOST_PORT:GUEST_PORT[/tcp|udp], e.g. 8080:80";
  const { rest, protocol } = splitProtocol(spec, expected);
  const ports = rest.split(":");
  if (ports.length !== 2) throw new InvalidArgumentError(`'${spec}' is not ${expected}.`);
  return { hostPort: parsePort(ports[0] ?? "", "host port"), guestPort: parsePort(ports[1] ?? "", "guest port"), protocol };
}

/** Parses `HOST_PORT[/tcp|udp]` (default tcp), e.g. `8080`, `5353/udp`. */
export function parsePortRef(spec: string): PortRef {
  const { rest, protocol } = splitProtocol(spec, "HOST_PORT[/tcp|udp], e.g. 8080");
  return { hostPort: parsePort(rest, "host port"), protocol };
}

/** `--address`: an IPv4 address. */
export function ipv4(value: string): string {
  const ip = Ipv4Address.safeParse(value.trim());
  if (!ip.success) throw new InvalidArgumentError(`${issueText(ip.error.issues)}.`);
  return ip.data;
}

/** `--subnet`: an IPv4 CIDR such as 10.20.0.0/24 (prefix /16 to /29). */
export function cidr(value: string): string {
  const text = value.trim();
  const checked = Cidr.safeParse(text);
  const [address = "", prefix = ""] = text.split("/");
  if (!checked.success || !Ipv4Address.safeParse(address).success) throw new InvalidArgumentError("expected an IPv4 subnet such as 10.20.0.0/24.");
  const bits = Number(prefix);
  if (bits < 16 || bits > 29) throw new InvalidArgumentError(`a subnet's prefix must be /16 to /29, not /${prefix}.`);
  return text;
}

/** `--dns-domain`: dot-separated lower-case labels. */
export function dnsDomain(value: string): string {
  const checked = DnsDomain.safeParse(value.trim());
  if (!checked.success) throw new InvalidArgumentError(`${issueText(checked.error.issues)}.`);
  return checked.data;
}

/** `--hostname`: a DNS label (1-63 letters, digits or '-', not starting or ending with '-'). */
export function hostnameLabel(value: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(value)) {
    throw new InvalidArgumentError("a host name is 1-63 letters, digits or '-', starting and ending with a letter or digit.");
  }
  return value;
}

function issueText(issues: readonly { message: string }[]): string {
  return issues.map((i) => i.message).join("; ");
}
