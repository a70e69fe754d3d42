import type { NetworkMode, PortProtocol } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";

export interface LocalNic {
  id: string;
  vmId: string;
  index: number;
  mac: string;
  ip: string;
  hostname: string;
  forwards: { protocol: PortProtocol; address: string | null; hostPort: number; guestPort: number }[];
}

export interface DesiredNetwork {
  id: string;
  name: string;
  mode: NetworkMode;
  subnet: string;
  gateway: string;
  mtu: number;
  dnsDomain: string;
  vni: number;
  /** NICs of this host's VMs: taps, DHCP reservations, forwards. */
  localNics: LocalNic[];
  /** Every NIC of the network, on any host: DNS names. */
  allNics: { ip: string; vmName: string }[];
  /** Underlay addresses of the other live hosts with VMs on the network (VXLAN flood list). */
  peers: string[];
}

export interface HostNetworkModel {
  networks: DesiredNetwork[];
}

/** What this host's networking must be, from Postgres: the networks its VMs have NICs on. */
export async function desiredHostNetwork(db: PrismaClient, hostId: string, offlineAfterSeconds: number): Promise<HostNetworkModel> {
  const localNics = await db.nic.findMany({
    where: { vm: { hostId } },
    include: { vm: { select: { name: true, hostname: true } }, forwards: true },
    orderBy: [{ networkId: "asc" }, { ip: "asc" }],
  });
  const networkIds = [...new Set(localNics.map((n) => n.networkId))];
  if (networkIds.length === 0) return { networks: [] };
  const [networks, allNics, hosts] = await Promise.all([
    db.network.findMany({ where: { id: { in: networkIds } }, orderBy: { id: "asc" } }),
    db.nic.findMany({ where: { networkId: { in: networkIds } }, include: { vm: { select: { name: true, hostId: true } } }, orderBy: { ip: "asc" } }),
    // Live peers, judged on the database clock (heartbeats are stamped with it).
    db.$queryRaw<{ id: string; address: string }[]>`
      SELECT "id", "address" FROM "Host"
      WHERE "id" <> ${hostId} AND "address" IS NOT NULL
        AND EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - "lastHeartbeatAt") <= ${offlineAfterSeconds}`,
  ]);
  const addressOf = new Map(hosts.map((h) => [h.id, h.address]));
  return {
    networks: networks.map((n) => {
      const members = allNics.filter((x) => x.networkId === n.id);
      const peers = [...new Set(members.map((x) => addressOf.get(x.vm.hostId)).filter((a): a is string => a !== undefined))].sort();
      return {
        id: n.id,
        name: n.name,
        mode: n.mode,
        subnet: n.subnet,
        gateway: n.gateway,
        mtu: n.mtu,
        dnsDomain: n.dnsDomain,
        vni: n.vni,
        localNics: localNics
          .filter((x) => x.networkId === n.id)
          .map((x) => ({
            id: x.id,
            vmId: x.vmId,
            index: x.index,
            mac: x.mac,
            ip: x.ip,
            hostname: x.vm.hostname ?? x.vm.name,
            forwards: x.forwards
              .map((f) => ({ protocol: f.protocol, address: f.address, hostPort: f.hostPort, guestPort: f.guestPort }))
              .sort((a, b) => a.hostPort - b.hostPort || a.protocol.localeCompare(b.protocol)),
          })),
        allNics: members.map((x) => ({ ip: x.ip, vmName: x.vm.name })),
        peers,
      };
    }),
  };
}
