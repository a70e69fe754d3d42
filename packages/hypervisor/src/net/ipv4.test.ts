import { describe, expect, it } from "vitest";
import {
  allocateIp,
  broadcastOf,
  cidrContains,
  cidrsOverlap,
  formatCidr,
  gatewayOf,
  intToIp,
  ipToInt,
  isIpv4,
  isPrivateCidr,
  netmaskOf,
  parseAnyCidr,
  parseCidr,
  pickFreeSubnet,
} from "./ipv4.js";
import { thrown } from "./thrown.fixture.js";

describe("IPv4 addresses", () => {
  it("converts dotted quads to unsigned integers and back", () => {
    expect(ipToInt("0.0.0.0")).toBe(0);
    expect(ipToInt("10.0.0.1")).toBe(167772161);
    expect(ipToInt("255.255.255.255")).toBe(4294967295);
    expect(intToIp(4294967295)).toBe("255.255.255.255");
    expect(intToIp(3232235777)).toBe("192.168.1.1");
    for (const ip of ["1.2.3.4", "172.16.254.1", "128.0.0.0"]) expect(intToIp(ipToInt(ip))).toBe(ip);
  });

  it("accepts only four decimal octets without leading zeros", () => {
    for (const ok of ["0.0.0.0", "9.99.199.255", "10.0.0.1"]) expect(isIpv4(ok)).toBe(true);
    for (const bad of ["256.0.0.1", "010.0.0.1", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n", "a.b.c.d", "1.2.3.-1", "", "::1", 12]) {
      expect(isIpv4(bad)).toBe(false);
    }
  });

  it("rejects a malformed address with a validation error that shows it", () => {
    const err = thrown(() => ipToInt("10.0.0.256"));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toContain('"10.0.0.256" is not an IPv4 address');
    expect(err.hint).toContain("four decimal numbers");
    expect(thrown(() => intToIp(-1)).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => intToIp(2 ** 32)).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => intToIp(1.5)).code).toBe("VALIDATION_FAILED");
  });

  it("renders netmasks for every prefix length", () => {
    expect(netmaskOf(0)).toBe("0.0.0.0");
    expect(netmaskOf(16)).toBe("255.255.0.0");
    expect(netmaskOf(24)).toBe("255.255.255.0");
    expect(netmaskOf(29)).toBe("255.255.255.248");
    expect(netmaskOf(32)).toBe("255.255.255.255");
    expect(thrown(() => netmaskOf(33)).code).toBe("VALIDATION_FAILED");
  });
});

describe("parseCidr", () => {
  it("parses a network with a prefix from /16 to /29", () => {
    expect(parseCidr("10.0.0.0/24")).toEqual({ network: 167772160, prefix: 24, size: 256 });
    expect(parseCidr("172.16.0.0/16")).toMatchObject({ prefix: 16, size: 65536 });
    expect(parseCidr("192.168.1.8/29")).toMatchObject({ prefix: 29, size: 8 });
    expect(formatCidr(parseCidr("10.1.2.0/24").network, 24)).toBe("10.1.2.0/24");
  });

  it("rejects a prefix outside /16 to /29 and says which range to use", () => {
    for (const cidr of ["10.0.0.0/8", "10.0.0.0/15", "10.0.0.0/30", "10.0.0.1/32"]) {
      const err = thrown(() => parseCidr(cidr));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.hint).toContain("use a prefix from /16 to /29");
    }
  });

  it("rejects host bits and suggests the network address", () => {
    const err = thrown(() => parseCidr("10.0.0.5/24"));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toBe("10.0.0.5/24 has host bits set; did you mean 10.0.0.0/24?");
    expect(err.details).toEqual({ suggestion: "10.0.0.0/24" });
  });

  it("rejects text that is not a CIDR", () => {
    for (const bad of ["10.0.0.0", "10.0.0.0/", "10.0.0.0/024", "10.0.0.0/24 ", "10.0.0/24", "x/24", "10.0.0.0/24/1", ""]) {
      const err = thrown(() => parseCidr(bad));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toContain("not an IPv4 network in CIDR form");
    }
  });

  it("reads any block for comparisons, ignoring host bits and taking a bare address as a /32", () => {
    expect(parseAnyCidr("192.168.1.7/24")).toEqual({ network: ipToInt("192.168.1.0"), prefix: 24, size: 256 });
    expect(parseAnyCidr("0.0.0.0/0")).toEqual({ network: 0, prefix: 0, size: 2 ** 32 });
    expect(parseAnyCidr("192.168.1.7")).toEqual({ network: ipToInt("192.168.1.7"), prefix: 32, size: 1 });
    expect(thrown(() => parseAnyCidr("192.168.1.7/33")).code).toBe("VALIDATION_FAILED");
  });
});

describe("containment and overlap", () => {
  it("tells whether an address lies inside a block", () => {
    expect(cidrContains("10.0.0.0/24", "10.0.0.0")).toBe(true);
    expect(cidrContains("10.0.0.0/24", "10.0.0.255")).toBe(true);
    expect(cidrContains("10.0.0.0/24", "10.0.1.0")).toBe(false);
    expect(cidrContains("10.0.0.0/24", "9.255.255.255")).toBe(false);
    expect(cidrContains("0.0.0.0/0", "255.255.255.255")).toBe(true);
  });

  it("detects overlap between blocks of any prefix, host routes and the default route included", () => {
    expect(cidrsOverlap("10.0.0.0/24", "10.0.0.0/16")).toBe(true);
    expect(cidrsOverlap("10.0.0.0/16", "10.0.255.0/24")).toBe(true);
    expect(cidrsOverlap("10.0.0.0/24", "10.0.1.0/24")).toBe(false);
    expect(cidrsOverlap("192.168.1.0/24", "192.168.1.7/32")).toBe(true);
    expect(cidrsOverlap("192.168.1.0/24", "192.168.2.7/32")).toBe(false);
    expect(cidrsOverlap("10.0.0.0/24", "0.0.0.0/0")).toBe(true);
    expect(cidrsOverlap("10.0.0.0/29", "10.0.0.8/29")).toBe(false);
  });

  it("recognises blocks entirely inside the RFC 1918 ranges", () => {
    expect(isPrivateCidr("10.200.3.0/24")).toBe(true);
    expect(isPrivateCidr("172.16.0.0/12")).toBe(true);
    expect(isPrivateCidr("172.31.255.0/24")).toBe(true);
    expect(isPrivateCidr("192.168.0.0/16")).toBe(true);
    expect(isPrivateCidr("172.32.0.0/24")).toBe(false);
    expect(isPrivateCidr("172.0.0.0/8")).toBe(false);
    expect(isPrivateCidr("8.8.8.0/24")).toBe(false);
    expect(isPrivateCidr("192.168.0.0/15")).toBe(false);
  });
});

describe("gateway and broadcast", () => {
  it("puts the gateway on the first usable address and the broadcast on the last", () => {
    expect(gatewayOf("10.0.0.0/24")).toBe("10.0.0.1");
    expect(gatewayOf("192.168.4.8/29")).toBe("192.168.4.9");
    expect(broadcastOf("10.0.0.0/24")).toBe("10.0.0.255");
    expect(broadcastOf("10.1.0.0/16")).toBe("10.1.255.255");
  });
});

describe("allocateIp", () => {
  it("hands out the lowest free address after the gateway", () => {
    expect(allocateIp("10.0.0.0/24", [])).toBe("10.0.0.2");
    expect(allocateIp("10.0.0.0/24", ["10.0.0.2", "10.0.0.3", "10.0.0.5"])).toBe("10.0.0.4");
    expect(allocateIp("10.0.0.0/24", new Set(["10.0.0.2"]))).toBe("10.0.0.3");
  });

  it("never hands out the broadcast address and reports a full network", () => {
    // A /29 has 8 addresses: network .0, gateway .1, usable .2-.6, broadcast .7.
    const taken = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    expect(allocateIp("10.0.0.0/29", taken)).toBe("10.0.0.6");
    const err = thrown(() => allocateIp("10.0.0.0/29", [...taken, "10.0.0.6"]));
    expect(err.code).toBe("ADDRESS_TAKEN");
    expect(err.message).toBe("network 10.0.0.0/29 has no free address");
    expect(err.hint).not.toBeNull();
  });

  it("ignores taken entries that are not addresses", () => {
    expect(allocateIp("10.0.0.0/24", ["", "garbage", "10.0.0.2"])).toBe("10.0.0.3");
  });

  it("grants a requested address that is free and usable", () => {
    expect(allocateIp("10.0.0.0/24", ["10.0.0.2"], "10.0.0.200")).toBe("10.0.0.200");
    expect(allocateIp("10.0.0.0/24", [], "10.0.0.254")).toBe("10.0.0.254");
  });

  it("refuses a requested address that is already taken, naming it", () => {
    const err = thrown(() => allocateIp("10.0.0.0/24", ["10.0.0.9"], "10.0.0.9"));
    expect(err.code).toBe("ADDRESS_TAKEN");
    expect(err.message).toBe("10.0.0.9 is already used in network 10.0.0.0/24");
    expect(err.hint).toContain("leave ip= out");
  });

  it("says why a requested address cannot be used", () => {
    const cases: [string, string][] = [
      ["10.0.1.5", "10.0.1.5 is outside network 10.0.0.0/24"],
      ["10.0.0.0", "10.0.0.0 is the network address of 10.0.0.0/24"],
      ["10.0.0.255", "10.0.0.255 is the broadcast address of 10.0.0.0/24"],
      ["10.0.0.1", "10.0.0.1 is the gateway address of 10.0.0.0/24"],
      ["10.0.0.x", "is not an IPv4 address"],
    ];
    for (const [ip, message] of cases) {
      const err = thrown(() => allocateIp("10.0.0.0/24", [], ip));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toContain(message);
      expect(err.hint).toBeTruthy();
    }
  });
});

describe("pickFreeSubnet", () => {
  it("starts at 10.100.0.0/24", () => {
    expect(pickFreeSubnet([])).toBe("10.100.0.0/24");
  });

  it("skips subnets overlapped by networks, routes and addresses of any prefix", () => {
    expect(pickFreeSubnet(["10.100.0.0/24", "10.100.1.0/24"])).toBe("10.100.2.0/24");
    expect(pickFreeSubnet(["10.100.0.0/23"])).toBe("10.100.2.0/24");
    expect(pickFreeSubnet(["10.100.0.7/32"])).toBe("10.100.1.0/24");
    expect(pickFreeSubnet(["10.100.0.7"])).toBe("10.100.1.0/24");
    expect(pickFreeSubnet(["10.100.0.0/16", "10.101.0.0/16"])).toBe("10.102.0.0/24");
    // 10.0.0.0/9 covers 10.0-10.127: the first free one is 10.128.0.0/24.
    expect(pickFreeSubnet(["10.0.0.0/9"])).toBe("10.128.0.0/24");
    expect(pickFreeSubnet(["192.168.1.7/24", "172.17.0.1/16"])).toBe("10.100.0.0/24");
  });

  it("reports a conflict when every candidate overlaps", () => {
    const err = thrown(() => pickFreeSubnet(["10.0.0.0/8"]));
    expect(err.code).toBe("SUBNET_CONFLICT");
    expect(err.hint).toContain("explicit subnet");
    expect(thrown(() => pickFreeSubnet(["0.0.0.0/0"])).code).toBe("SUBNET_CONFLICT");
  });

  it("rejects an in-use entry it cannot read", () => {
    expect(thrown(() => pickFreeSubnet(["fe80::/64"])).code).toBe("VALIDATION_FAILED");
  });
});
