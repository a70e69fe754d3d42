import { z } from "zod";
import { looksLikeUuid } from "./ids.js";

/** Network names are DNS labels, like VM names. */
export const NetworkName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: "a network name is 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
  })
  .refine((s) => !looksLikeUuid(s), { message: "a network name must not look like a UUID" });

/**
 * `nat`: DHCP, DNS, a gateway on each host, outbound NAT and port forwards.
 * `private`: an L2 segment between VMs (the host has an address on it) with no way out.
 */
export const NetworkMode = z.enum(["nat", "private"]);
export type NetworkMode = z.infer<typeof NetworkMode>;

export const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const Ipv4Address = z.string().regex(IPV4_RE, "an IPv4 address looks like 10.20.0.5");
export const Cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "a subnet looks like 10.20.0.0/24");
export const MacAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, "a MAC address is six pairs of hex digits, like 52:54:00:12:34:56");
export const DnsDomain = z
  .string()
  .max(200)
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, "a DNS domain is dot-separated lower-case labels, like iaas.internal");

/** Default MTU: a 1500-byte underlay minus the 50 bytes of VXLAN encapsulation. */
export const DEFAULT_NETWORK_MTU = 1450;
export const DEFAULT_DNS_DOMAIN = "iaas.internal";

export const NetworkCreateRequest = z.object({
  name: NetworkName,
  mode: NetworkMode.default("nat"),
  /** IPv4 subnet with prefix /16 to /29; default: a free /24 in 10.0.0.0/8. */
  subnet: Cidr.optional(),
  mtu: z.number().int().min(576).max(9000).default(DEFAULT_NETWORK_MTU),
  dnsDomain: DnsDomain.default(DEFAULT_DNS_DOMAIN),
  /** Allow a subnet outside RFC 1918 (10/8, 172.16/12, 192.168/16). */
  allowPublicSubnet: z.boolean().default(false),
});
export type NetworkCreateRequest = z.infer<typeof NetworkCreateRequest>;

export const Network = z.object({
  id: z.string(),
  name: z.string(),
  mode: NetworkMode,
  subnet: z.string(),
  /** The address every host's bridge has on the network (DHCP, DNS, and the router for `nat`). */
  gateway: z.string(),
  mtu: z.number().int(),
  dnsDomain: z.string(),
  /** VXLAN network identifier used between hosts. */
  vni: z.number().int(),
  /** VMs with a NIC on the network. */
  vms: z.array(z.object({ id: z.string(), name: z.string(), ip: z.string() })),
  createdAt: z.string(),
});
export type Network = z.infer<typeof Network>;

/** One NIC of a VM being created or added: `--network NET[,ip=A.B.C.D][,mac=..]`. */
export const NicRequest = z.object({
  network: z.string().min(1, "network is required: a network name or id (see `iaas network list`)"),
  ip: Ipv4Address.optional(),
  mac: MacAddress.optional(),
});
export type NicRequest = z.infer<typeof NicRequest>;

export const PortProtocol = z.enum(["tcp", "udp"]);
export type PortProtocol = z.infer<typeof PortProtocol>;

export const PortForwardRequest = z.object({
  hostPort: z.number().int().min(1).max(65535),
  guestPort: z.number().int().min(1).max(65535),
  protocol: PortProtocol.default("tcp"),
  /** Host address the forward listens on; default every address of the host, including 127.0.0.1. */
  address: Ipv4Address.optional(),
  /** Which NIC of the VM (its index); default the first. */
  nic: z.number().int().min(0).max(15).default(0),
});
export type PortForwardRequest = z.infer<typeof PortForwardRequest>;

export const PortForward = z.object({
  id: z.string(),
  protocol: PortProtocol,
  /** null: every address of the host. */
  address: z.string().nullable(),
  hostPort: z.number().int(),
  guestPort: z.number().int(),
  nicIndex: z.number().int(),
  hostId: z.string(),
  createdAt: z.string(),
});
export type PortForward = z.infer<typeof PortForward>;

export const Nic = z.object({
  id: z.string(),
  index: z.number().int(),
  networkId: z.string(),
  networkName: z.string(),
  mac: z.string(),
  ip: z.string(),
  /** The address the guest leased by DHCP, as the host's DHCP server last saw it. */
  lease: z.object({ ip: z.string(), at: z.string() }).nullable(),
  forwards: z.array(PortForward),
});
export type Nic = z.infer<typeof Nic>;

export const NicRemoveRequest = z
  .object({
    /** The NIC's network (name or id), or its index. */
    network: z.string().min(1).optional(),
    index: z.number().int().min(0).optional(),
  })
  .refine((r) => r.network !== undefined || r.index !== undefined, { message: "give the NIC's network or its index" });
export type NicRemoveRequest = z.infer<typeof NicRemoveRequest>;

/** What a host can do for networking, reported by its worker. */
export const HostNetworkCapabilities = z.object({
  root: z.boolean(),
  bridge: z.boolean(),
  tap: z.boolean(),
  nftables: z.boolean(),
  dnsmasq: z.boolean(),
  vxlan: z.boolean(),
});
export type HostNetworkCapabilities = z.infer<typeof HostNetworkCapabilities>;

/**
 * `bridge`: managed networks (bridges, taps, dnsmasq, nftables, VXLAN).
 * `user`: the fallback without root or /dev/net/tun: isolated user-mode NICs that cannot reach
 * the host, with port forwards only.
 */
export const HostNetworkMode = z.enum(["bridge", "user"]);
export type HostNetworkMode = z.infer<typeof HostNetworkMode>;

export const HostNetworkInfo = z.object({
  mode: HostNetworkMode,
  /** Underlay address other hosts reach this one at (VXLAN). */
  address: z.string().nullable(),
  capabilities: HostNetworkCapabilities,
  /** Why the host is in `user` mode, or what it lacks. */
  notes: z.array(z.string()),
  /** IPv4 routes/addresses already on the host (not ours), as CIDRs: subnets must not overlap them. */
  routes: z.array(z.object({ cidr: z.string(), dev: z.string() })),
  /** Ports something on the host listens on, which a forward cannot take. */
  listening: z.array(z.object({ protocol: PortProtocol, port: z.number().int() })),
});
export type HostNetworkInfo = z.infer<typeof HostNetworkInfo>;

/** `iaas vm wait NAME --for port=N`: a job on the VM's host that waits until the port answers. */
export const VmProbeRequest = z.object({
  port: z.number().int().min(1).max(65535),
  nic: z.number().int().min(0).default(0),
  timeoutSeconds: z.number().int().min(1).max(3600).default(120),
});
export type VmProbeRequest = z.infer<typeof VmProbeRequest>;
