import { describe, expect, it } from "vitest";
import type { HostNetworkInfo } from "@iaas/contracts";
import type { Network } from "@iaas/db";
import { networkReasons, type NetworkDemand } from "./nicAllocation.js";

const bridgeHost = (over: Partial<HostNetworkInfo> = {}): HostNetworkInfo => ({
  mode: "bridge",
  address: "192.0.2.10",
  capabilities: { root: true, bridge: true, tap: true, nftables: true, dnsmasq: true, vxlan: true },
  notes: [],
  routes: [{ cidr: "0.0.0.0/0", dev: "eth0" }, { cidr: "192.168.1.0/24", dev: "eth0" }],
  listening: [],
  ...over,
});

const demand = (subnet: string, hostIds: string[] = []): NetworkDemand => ({
  network: { id: "n1", name: "lan", subnet } as Network,
  request: { network: "lan" },
  hostIds,
});

describe("networkReasons", () => {
  it("accepts a bridge host whose routes do not clash (the default route aside)", () => {
    expect(networkReasons("h1", bridgeHost(), [demand("10.20.0.0/24")])).toEqual([]);
  });

  it("names the route a network's subnet overlaps", () => {
    expect(networkReasons("h1", bridgeHost(), [demand("192.168.1.0/25")])).toEqual(["network 'lan' (192.168.1.0/25) overlaps 192.168.1.0/24 on eth0"]);
  });

  it("keeps out a host that cannot join a network spanning other hosts: no VXLAN, or no underlay address", () => {
    const noVxlan = bridgeHost({ capabilities: { ...bridgeHost().capabilities, vxlan: false } });
    expect(networkReasons("h1", noVxlan, [demand("10.20.0.0/24", ["h2"])])).toEqual(["cannot join network 'lan' across hosts: no VXLAN support"]);
    expect(networkReasons("h1", bridgeHost({ address: null }), [demand("10.20.0.0/24", ["h2"])])).toEqual([
      "cannot join network 'lan' across hosts: no underlay address (set IAAS_HOST_ADDRESS)",
    ]);
    // Its own VMs on the network do not count as "other hosts".
    expect(networkReasons("h1", bridgeHost({ address: null }), [demand("10.20.0.0/24", ["h1"])])).toEqual([]);
  });

  it("lets a user-mode host take NICs (isolated), and refuses a host that reports nothing", () => {
    expect(networkReasons("h1", bridgeHost({ mode: "user", address: null }), [demand("192.168.1.0/24", ["h2"])])).toEqual([]);
    expect(networkReasons("h1", null, [demand("10.20.0.0/24")])).toEqual(["reports no network support (restart its worker)"]);
    expect(networkReasons("h1", null, [])).toEqual([]);
  });
});
