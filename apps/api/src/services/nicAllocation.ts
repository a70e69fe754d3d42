import { IaasError, type HostNetworkInfo, type NicRequest } from "@iaas/contracts";
import { currentProjectId } from "../auth/scope.js";
import { isUniqueViolation, type Network, type Nic, type Prisma } from "@iaas/db";
import { allocateIp, cidrsOverlap, deriveMac, normalizeMac } from "@iaas/hypervisor";
import { findNetwork } from "./resolve.js";

/** A network a VM asks for, with the hosts that already have NICs on it (for placement). */
export interface NetworkDemand {
  network: Network;
  request: NicRequest;
  /** Hosts with a VM on this network already. */
  hostIds: string[];
}

/** Resolves the NICs a create asks for: none given means one on `default`; `[]` means none. */
export async function resolveNicRequests(tx: Prisma.TransactionClient, requests: NicRequest[] | undefined): Promise<NetworkDemand[]> {
  if (requests === undefined) {
    const fallback = await tx.network.findUnique({ where: { projectId_name: { projectId: currentProjectId(), name: "default" } } });
    if (!fallback) {
      throw new IaasError("VALIDATION_FAILED", "no --network given and there is no network named 'default'", {
        hint: "create it with `iaas network create default`, or pass --network NET, or --no-network for a VM without NICs",
      });
    }
    requests = [{ network: "default" }];
  }
  const demands: NetworkDemand[] = [];
  for (const request of requests) {
    const network = await findNetwork(tx, request.network);
    const rows = await tx.nic.findMany({ where: { networkId: network.id }, select: { vm: { select: { hostId: true } } } });
    demands.push({ network, request, hostIds: [...new Set(rows.map((r) => r.vm.hostId))] });
  }
  return demands;
}

/** Why a host cannot carry NICs on these networks (empty when it can). */
export function networkReasons(hostId: string, info: HostNetworkInfo | null, demands: NetworkDemand[]): string[] {
  if (demands.length === 0) return [];
  if (info === null) return ["reports no network support (restart its worker)"];
  if (info.mode === "user") return [];
  const reasons: string[] = [];
  for (const { network, hostIds } of demands) {
    const clash = info.routes.find((r) => r.cidr !== "0.0.0.0/0" && cidrsOverlap(network.subnet, r.cidr));
    if (clash) reasons.push(`network '${network.name}' (${network.subnet}) overlaps ${clash.cidr} on ${clash.dev}`);
    const remote = hostIds.filter((h) => h !== hostId);
    if (remote.length > 0 && !info.capabilities.vxlan) reasons.push(`cannot join network '${network.name}' across hosts: no VXLAN support`);
    if (remote.length > 0 && info.address === null) {
      reasons.push(`cannot join network '${network.name}' across hosts: no underlay address (set IAAS_HOST_ADDRESS)`);
    }
  }
  return reasons;
}

/**
 * Allocates a NIC on a network in the submitting transaction: the network row is locked so two
 * allocations on it take turns, the address is the requested one or the lowest free one, the MAC
 * the requested one or one derived from the VM id; unique constraints back both.
 */
export async function allocateNic(tx: Prisma.TransactionClient, vmId: string, index: number, network: Network, request: NicRequest): Promise<Nic> {
  await tx.$queryRaw`SELECT id FROM "Network" WHERE id = ${network.id}::uuid FOR UPDATE`;
  const used = await tx.nic.findMany({ where: { networkId: network.id }, select: { ip: true } });
  const ip = allocateIp(network.subnet, [network.gateway, ...used.map((u) => u.ip)], request.ip);
  let mac: string;
  if (request.mac !== undefined) {
    mac = normalizeMac(request.mac);
    const holder = await tx.nic.findUnique({ where: { mac }, select: { vm: { select: { name: true } } } });
    if (holder) {
      throw new IaasError("ADDRESS_TAKEN", `MAC ${mac} is already used by VM '${holder.vm.name}'`, { hint: "leave mac= out to get one allocated" });
    }
  } else {
    mac = await freeMac(tx, `${vmId}/${index}`);
  }
  try {
    return await tx.nic.create({ data: { vmId, networkId: network.id, index, mac, ip } });
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw new IaasError("ADDRESS_TAKEN", `address ${ip} or MAC ${mac} on network '${network.name}' was just taken`, { hint: "retry the request" });
    }
    throw err;
  }
}

async function freeMac(tx: Prisma.TransactionClient, seed: string): Promise<string> {
  for (let attempt = 0; attempt < 32; attempt++) {
    const mac = deriveMac(seed, attempt);
    if (!(await tx.nic.findUnique({ where: { mac }, select: { id: true } }))) return mac;
  }
  throw new IaasError("ADDRESS_TAKEN", "no free MAC address could be derived", { hint: "pass mac= explicitly" });
}
