import type { VmNic } from "@iaas/hypervisor";
import { broadcastOf, buildSeedImage, intToIp, ipToInt, renderMetaData, renderNetworkConfig, renderUserData, tapName } from "@iaas/hypervisor";
import type { Vm } from "@iaas/db";
import type { WorkerServices } from "../jobs/HandlerContext.js";
import type { VmRunSpec } from "../vm/VmRuntime.js";

/**
 * Everything a VM's QEMU needs besides its disk: the host's networking brought in line (taps for
 * its NICs exist), its NICs as QEMU sees them (taps on bridges, or isolated user-mode NICs on a
 * host without bridges), and its cloud-init seed rebuilt from Postgres.
 */
export async function prepareLaunch(services: WorkerServices, vm: Vm, reason: string): Promise<VmRunSpec> {
  await services.network.sync(reason, true);
  const nics = await services.db.nic.findMany({ where: { vmId: vm.id }, include: { network: true, forwards: true }, orderBy: { index: "asc" } });
  const bridged = services.network.mode === "bridge";
  const qemuNics: VmNic[] = nics.map((nic) =>
    bridged
      ? { type: "tap", ifname: tapName(nic.id), mac: nic.mac, mtu: nic.network.mtu }
      : {
          type: "user",
          mac: nic.mac,
          // Isolated: the guest reaches neither the host nor anything else; forwards still work.
          restrict: true,
          subnet: nic.network.subnet,
          hostAddress: nic.network.gateway,
          dnsAddress: userModeDns(nic.network.subnet, nic.ip),
          dhcpStart: nic.ip,
          hostForwards: nic.forwards.map((f) => ({
            protocol: f.protocol,
            hostAddress: f.address ?? "0.0.0.0",
            hostPort: f.hostPort,
            guestPort: f.guestPort,
          })),
        },
  );
  const hostname = vm.hostname ?? vm.name;
  const files = services.runtime.files(vm.id);
  await buildSeedImage(files.seed, {
    "meta-data": renderMetaData({ instanceId: vm.id, hostname, sshKeys: vm.sshKeys }),
    "user-data": renderUserData({ hostname, sshKeys: vm.sshKeys, ...(vm.userData !== null ? { userData: vm.userData } : {}) }),
    "network-config": renderNetworkConfig(nics.map((n) => ({ mac: n.mac, name: `eth${n.index}` }))),
  });
  return { id: vm.id, name: vm.name, cpus: vm.cpus, memoryBytes: Number(vm.memoryBytes), hostname, nics: qemuNics, seed: true };
}

/**
 * QEMU's user-mode DNS address: by default the subnet's fourth address, which IPAM may have given
 * the guest, and QEMU refuses the clash. The top of the subnet is used instead, avoiding the guest.
 */
export function userModeDns(subnet: string, guestIp: string): string {
  const top = ipToInt(broadcastOf(subnet)) - 1;
  return intToIp(intToIp(top) === guestIp ? top - 1 : top);
}
