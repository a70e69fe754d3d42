import type { Host, Network, Nic, PortForward } from "@iaas/contracts";
import { formatAge } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

/** `iaas network list`: NAME MODE SUBNET GATEWAY MTU DOMAIN VMS. */
export function networkTable(networks: readonly Network[]): string {
  return formatTable(
    ["NAME", "MODE", "SUBNET", "GATEWAY", "MTU", "DOMAIN", "VMS"],
    networks.map((n) => [n.name, n.mode, n.subnet, n.gateway, String(n.mtu), n.dnsDomain, String(n.vms.length)]),
  );
}

/** `iaas network show` (and `network create`): the network, then its VMs with their addresses. */
export function networkDetails(network: Network): string {
  const fields = formatFields([
    ["name", network.name],
    ["id", network.id],
    ["mode", network.mode === "nat" ? "nat (DHCP, DNS, outbound NAT, port forwards)" : "private (VM to VM only, no way out)"],
    ["subnet", network.subnet],
    ["gateway", network.gateway],
    ["mtu", network.mtu],
    ["dns domain", network.dnsDomain],
    ["vni", network.vni],
    ["created", network.createdAt],
    ["vms", network.vms.length === 0 ? "none" : String(network.vms.length)],
  ]);
  if (network.vms.length === 0) return fields;
  const vms = formatTable(
    ["NAME", "IP", "ID"],
    network.vms.map((vm) => [vm.name, vm.ip, vm.id]),
  );
  return `${fields}\n${indent(vms)}`;
}

/** A forward as `8080->80/tcp`, with its listen address when it is not every address: `127.0.0.1:8080->80/tcp`. */
export function forwardLabel(forward: PortForward): string {
  const listen = forward.address === null || forward.address === "0.0.0.0" ? "" : `${forward.address}:`;
  return `${listen}${forward.hostPort}->${forward.guestPort}/${forward.protocol}`;
}

/** The DHCP lease column: "-" without one, its age when the guest leased its assigned address, else the leased address and age. */
function leaseLabel(nic: Nic, now: Date): string {
  if (nic.lease === null) return "-";
  const age = formatAge(nic.lease.at, now);
  return nic.lease.ip === nic.ip ? age : `${nic.lease.ip} (${age})`;
}

/** `iaas vm ip` (and the NICs of `vm show`): NIC NETWORK MAC IP LEASE FORWARDS. */
export function nicTable(nics: readonly Nic[], now: Date): string {
  return formatTable(
    ["NIC", "NETWORK", "MAC", "IP", "LEASE", "FORWARDS"],
    nics.map((nic) => [
      String(nic.index),
      nic.networkName,
      nic.mac,
      nic.ip,
      leaseLabel(nic, now),
      nic.forwards.length === 0 ? "-" : nic.forwards.map(forwardLabel).join(","),
    ]),
  );
}

/** `iaas vm port list`: PROTO ADDRESS HOST-PORT GUEST-PORT NIC ("*" is every address of the host). */
export function portTable(forwards: readonly PortForward[]): string {
  return formatTable(
    ["PROTO", "ADDRESS", "HOST-PORT", "GUEST-PORT", "NIC"],
    forwards.map((f) => [f.protocol, f.address ?? "*", String(f.hostPort), String(f.guestPort), String(f.nicIndex)]),
  );
}

/** The NETWORK column of `host list`: "bridge 192.168.1.10", "user", or "-" before the worker reported. */
export function hostNetworkLabel(host: Host): string {
  if (host.network === null) return "-";
  return host.network.address === null ? host.network.mode : `${host.network.mode} ${host.network.address}`;
}

/** Indents every line of a block by two spaces. */
export function indent(block: string): string {
  return block
    .split("\n")
    .map((line) => (line === "" ? line : `  ${line}`))
    .join("\n");
}
