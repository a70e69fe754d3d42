import type { HostNetworkInfo } from "@iaas/contracts";

/** What a bridge-capable worker reports about its host, for API tests that have no worker. */
export const TEST_HOST_NETWORK: HostNetworkInfo = {
  mode: "bridge",
  address: "192.0.2.10",
  capabilities: { root: true, bridge: true, tap: true, nftables: true, dnsmasq: true, vxlan: true },
  notes: [],
  routes: [
    { cidr: "192.168.1.0/24", dev: "eth0" },
    { cidr: "0.0.0.0/0", dev: "eth0" },
  ],
  listening: [{ protocol: "tcp", port: 22 }],
};
