import { describe, expect, it } from "vitest";
import { cidr, hostnameLabel, nicSpecInto, parseNicSpec, parsePortRef, parsePortSpec } from "./networkSpecs.js";

describe("--network SPEC", () => {
  it("takes a bare network name or id", () => {
    expect(parseNicSpec("default")).toEqual({ network: "default" });
    expect(parseNicSpec("2b3c4d5e-0000-4000-8000-000000000006")).toEqual({ network: "2b3c4d5e-0000-4000-8000-000000000006" });
  });

  it("takes ip= and mac= in any order and lower-cases the MAC", () => {
    expect(parseNicSpec("backend,ip=10.20.0.10,mac=52:54:00:AA:bb:0C")).toEqual({ network: "backend", ip: "10.20.0.10", mac: "52:54:00:aa:bb:0c" });
    expect(parseNicSpec("backend,mac=52:54:00:12:34:56,ip=10.20.0.10")).toEqual({ network: "backend", ip: "10.20.0.10", mac: "52:54:00:12:34:56" });
  });

  it("collects repeated options in order", () => {
    expect(nicSpecInto("b,ip=10.0.0.5", nicSpecInto("a", undefined))).toEqual([{ network: "a" }, { network: "b", ip: "10.0.0.5" }]);
  });

  it.each([
    ["", /the network name is missing/],
    [",ip=10.0.0.1", /the network name is missing/],
    ["Backend", /'Backend' is not a network name or id/],
    ["backend,foo=1", /unknown key 'foo' \(known: ip, mac\)/],
    ["backend,ip", /'ip' is not key=value/],
    ["backend,", /empty item in 'backend,'/],
    ["backend,ip=10.0.0.300", /ip '10\.0\.0\.300': an IPv4 address looks like/],
    ["backend,ip=10.0.0.1,ip=10.0.0.2", /ip= is given twice/],
    ["backend,mac=52:54:00:12:34", /mac '52:54:00:12:34': a MAC address is six pairs/],
    ["backend,mac=01:00:5e:00:00:01", /multicast/],
    ["backend,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57", /mac= is given twice/],
  ])("refuses %j naming the problem", (spec, message) => {
    expect(() => parseNicSpec(spec)).toThrow(message);
  });
});

describe("port specs", () => {
  it("parses HOST:GUEST with tcp as the default protocol", () => {
    expect(parsePortSpec("8080:80")).toEqual({ hostPort: 8080, guestPort: 80, protocol: "tcp" });
    expect(parsePortSpec("5353:53/udp")).toEqual({ hostPort: 5353, guestPort: 53, protocol: "udp" });
    expect(parsePortSpec("1:65535/TCP")).toEqual({ hostPort: 1, guestPort: 65535, protocol: "tcp" });
  });

  it.each([
    ["8080", /is not HOST_PORT:GUEST_PORT/],
    ["8080:80:22", /is not HOST_PORT:GUEST_PORT/],
    ["0:80", /host port '0' is not a port number \(1-65535\)/],
    ["8080:65536", /guest port '65536' is not a port number/],
    ["-1:80", /host port '-1'/],
    ["80a:80", /host port '80a'/],
    [":80", /host port ''/],
    ["8080:80/sctp", /unknown protocol 'sctp'/],
    ["8080:80/tcp/udp", /more than one '\/'/],
    ["1e3:80", /host port '1e3'/],
  ])("refuses %j", (spec, message) => {
    expect(() => parsePortSpec(spec)).toThrow(message);
  });

  it("parses HOST_PORT[/proto] for removal", () => {
    expect(parsePortRef("8080")).toEqual({ hostPort: 8080, protocol: "tcp" });
    expect(parsePortRef("5353/udp")).toEqual({ hostPort: 5353, protocol: "udp" });
    expect(() => parsePortRef("8080:80")).toThrow(/host port '8080:80' is not a port number/);
    expect(() => parsePortRef("70000")).toThrow(/not a port number/);
    expect(() => parsePortRef("22/icmp")).toThrow(/unknown protocol 'icmp'/);
  });
});

describe("other network options", () => {
  it("checks a subnet's form and prefix length", () => {
    expect(cidr("10.20.0.0/24")).toBe("10.20.0.0/24");
    expect(() => cidr("10.20.0.0")).toThrow(/expected an IPv4 subnet/);
    expect(() => cidr("10.20.0.300/24")).toThrow(/expected an IPv4 subnet/);
    expect(() => cidr("10.0.0.0/8")).toThrow("a subnet's prefix must be /16 to /29, not /8.");
    expect(() => cidr("10.0.0.0/30")).toThrow(/not \/30/);
  });

  it("takes a host name that is a DNS label", () => {
    expect(hostnameLabel("web-1")).toBe("web-1");
    expect(() => hostnameLabel("web_1")).toThrow(/a host name is 1-63 letters/);
    expect(() => hostnameLabel("-web")).toThrow(/a host name/);
    expect(() => hostnameLabel("a.b")).toThrow(/a host name/);
  });
});
