import { describe, expect, it } from "vitest";
import { listeningPorts, networkCidr } from "./detectHostNetwork.js";

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`;

describe("listeningPorts", () => {
  it("lists the local ports of listening TCP sockets only, once each", () => {
    expect(listeningPorts(TCP, "tcp")).toEqual([22, 8080]);
  });

  it("lists every bound UDP port, whatever its state", () => {
    const udp = `  sl  local_address rem_address   st
  10: 00000000:0035 00000000:0000 07 0
  11: 0A640001:0043 00000000:0000 07 0
`;
    expect(listeningPorts(udp, "udp")).toEqual([53, 67]);
  });
});

describe("networkCidr", () => {
  it("turns an interface address into the network it is on", () => {
    expect(networkCidr("192.168.240.11", 24)).toBe("192.168.240.0/24");
    expect(networkCidr("10.1.2.3", 8)).toBe("10.0.0.0/8");
    expect(networkCidr("172.16.5.77", 32)).toBe("172.16.5.77/32");
  });
});
