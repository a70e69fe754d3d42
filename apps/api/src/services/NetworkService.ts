import { IaasError, type NetworkCreateRequest } from "@iaas/contracts";
import { enforceQuota } from "./ProjectService.js";
import { currentProjectId } from "../auth/scope.js";
import { isUniqueViolation, type Db, type Network, type PrismaClient } from "@iaas/db";
import { cidrsOverlap, gatewayOf, isPrivateCidr, parseCidr, pickFreeSubnet } from "@iaas/hypervisor";
import { hostNetworkOf } from "./dto.js";
import { findNetwork } from "./resolve.js";

/** Advisory lock that serializes subnet choices, so two creates cannot take overlapping subnets. */
const SUBNET_LOCK = 7302;

export const NETWORK_DTO_INCLUDE = { nics: { select: { ip: true, vm: { select: { id: true, name: true } } } } } as const;

/** A route or address a host already has, which a network's subnet must not overlap. */
interface HostRoute {
  hostId: string;
  cidr: string;
  dev: string;
}

async function hostRoutes(db: Db): Promise<HostRoute[]> {
  const hosts = await db.host.findMany({ select: { id: true, network: true }, orderBy: { id: "asc" } });
  return hosts.flatMap((h) => (hostNetworkOf(h)?.routes ?? []).map((r) => ({ hostId: h.id, cidr: r.cidr, dev: r.dev })));
}

/**
 * Networks are rows: a host realizes one (bridge, dnsmasq, rules) only when a VM of it has a NIC
 * there, in that VM's jobs. Creating or deleting a network therefore touches no host.
 */
export class NetworkService {
  constructor(private readonly db: PrismaClient) {}

  async create(req: NetworkCreateRequest): Promise<Network> {
    return this.db.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT pg_advisory_xact_lock(${SUBNET_LOCK})::text AS locked`;
      // Subnets may not overlap across projects either (hosts route them all), but another
      // project's network is not named.
      const projectId = currentProjectId();
      await enforceQuota(tx, projectId, { networks: 1 });
      const others = (await tx.network.findMany({ select: { name: true, subnet: true, projectId: true } })).map((n) => ({
        name: n.projectId === projectId ? n.name : "of another project",
        subnet: n.subnet,
      }));
      const routes = await hostRoutes(tx);
      const subnet = req.subnet === undefined ? pickFreeSubnet([...others.map((n) => n.subnet), ...routes.filter((r) => r.cidr !== "0.0.0.0/0").map((r) => r.cidr)]) : req.subnet;
      if (req.subnet !== undefined) checkSubnet(subnet, req.allowPublicSubnet, others, routes);
      try {
        return await tx.network.create({
          data: { projectId, name: req.name, mode: req.mode, subnet, gateway: gatewayOf(subnet), mtu: req.mtu, dnsDomain: req.dnsDomain },
        });
      } catch (err) {
        if (isUniqueViolation(err, "name")) {
          throw new IaasError("NAME_TAKEN", `a network named '${req.name}' already exists`, {
            hint: "choose another name, or see it with `iaas network show " + req.name + "`",
          });
        }
        throw err;
      }
    });
  }

  /** Deletes a network no NIC uses; one in use is NETWORK_IN_USE naming the VMs. */
  async delete(ref: string): Promise<Network> {
    return this.db.$transaction(async (tx) => {
      const network = await findNetwork(tx, ref);
      await tx.$queryRaw`SELECT id FROM "Network" WHERE id = ${network.id}::uuid FOR UPDATE`;
      const users = await tx.nic.findMany({ where: { networkId: network.id }, select: { vm: { select: { name: true } } } });
      if (users.length > 0) {
        const names = [...new Set(users.map((u) => u.vm.name))].sort();
        throw new IaasError("NETWORK_IN_USE", `network '${network.name}' is in use by VM${names.length > 1 ? "s" : ""} ${names.map((n) => `'${n}'`).join(", ")}`, {
          hint: `delete those VMs or remove their NICs (\`iaas vm nic remove VM --network ${network.name}\`), then retry`,
        });
      }
      const { count } = await tx.network.deleteMany({ where: { id: network.id } });
      if (count === 0) throw new IaasError("NOT_FOUND", `network '${ref}' not found`, { hint: "it was deleted meanwhile" });
      return network;
    });
  }
}

/** Refuses a subnet that is malformed, public (unless allowed) or overlaps a network or a host's route. */
export function checkSubnet(subnet: string, allowPublic: boolean, others: { name: string; subnet: string }[], routes: HostRoute[]): void {
  parseCidr(subnet);
  if (!allowPublic && !isPrivateCidr(subnet)) {
    throw new IaasError("SUBNET_CONFLICT", `subnet ${subnet} is not a private (RFC 1918) range`, {
      hint: "use a subnet inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, or pass --allow-public-subnet if you own this range",
    });
  }
  for (const other of others) {
    if (cidrsOverlap(subnet, other.subnet)) {
      throw new IaasError("SUBNET_CONFLICT", `subnet ${subnet} overlaps network '${other.name}' (${other.subnet})`, {
        hint: "pick a subnet no other network uses (`iaas network list`), or leave --subnet out to get a free one",
      });
    }
  }
  for (const route of routes) {
    if (route.cidr === "0.0.0.0/0") continue;
    if (cidrsOverlap(subnet, route.cidr)) {
      throw new IaasError("SUBNET_CONFLICT", `subnet ${subnet} overlaps ${route.cidr} on ${route.dev} of host '${route.hostId}'`, {
        hint: "pick a subnet that no host already uses, or leave --subnet out to get a free one",
      });
    }
  }
}
