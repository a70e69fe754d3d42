import { describe, expect, it } from "vitest";
import { findExecutable, run } from "../run.js";
import { dnsmasqArgv, parseLeases, renderAddnHosts, renderDhcpHosts, validateDnsDomain, type DnsmasqConfig } from "./dnsmasq.js";
import { thrown } from "./thrown.fixture.js";

function config(over: Partial<DnsmasqConfig> = {}): DnsmasqConfig {
  return {
    bridge: "ibr-1ac11e9a",
    gateway: "10.100.0.1",
    subnet: "10.100.0.0/24",
    mode: "nat",
    mtu: 1450,
    dnsDomain: "net1.iaas.internal",
    pidFile: "/var/lib/iaas/net/n1/dnsmasq.pid",
    dhcpHostsFile: "/var/lib/iaas/net/n1/dhcp-hosts",
    addnHostsFile: "/var/lib/iaas/net/n1/hosts",
    leaseFile: "/var/lib/iaas/net/n1/leases",
    logFile: "/var/lib/iaas/net/n1/dnsmasq.log",
    ...over,
  };
}

describe("dnsmasqArgv", () => {
  it("serves static DHCP and DNS on the bridge only, daemonized with a pid file", () => {
    expect(dnsmasqArgv(config())).toEqual([
      "dnsmasq",
      "--conf-file=/dev/null",
      "--pid-file=/var/lib/iaas/net/n1/dnsmasq.pid",
      "--bind-interfaces",
      "--interface=ibr-1ac11e9a",
      "--except-interface=lo",
      "--listen-address=10.100.0.1",
      "--dhcp-range=10.100.0.0,static,255.255.255.0,12h",
      "--dhcp-hostsfile=/var/lib/iaas/net/n1/dhcp-hosts",
      "--addn-hosts=/var/lib/iaas/net/n1/hosts",
      "--dhcp-leasefile=/var/lib/iaas/net/n1/leases",
      "--dhcp-authoritative",
      "--no-hosts",
      "--domain-needed",
      "--bogus-priv",
      "--domain=net1.iaas.internal",
      "--local=/net1.iaas.internal/",
      "--expand-hosts",
      "--dhcp-option=option:dns-server,10.100.0.1",
      "--dhcp-option=option:domain-name,net1.iaas.internal",
      "--dhcp-option=option:mtu,1450",
      "--log-facility=/var/lib/iaas/net/n1/dnsmasq.log",
      "--log-dhcp",
      "--dhcp-option=option:router,10.100.0.1",
    ]);
    expect(dnsmasqArgv(config())).not.toContain("--keep-in-foreground");
  });

  it("gives a private network no router and no upstream resolvers", () => {
    const argv = dnsmasqArgv(config({ mode: "private" }));
    expect(argv).toContain("--dhcp-option=option:router");
    expect(argv).toContain("--no-resolv");
    expect(argv.filter((a) => a.startsWith("--dhcp-option=option:router,"))).toEqual([]);
  });

  it("uses the binary and netmask given", () => {
    const argv = dnsmasqArgv(config({ binary: "/usr/sbin/dnsmasq", subnet: "172.20.0.0/16", gateway: "172.20.0.1", dnsDomain: "Lab.Example" }));
    expect(argv[0]).toBe("/usr/sbin/dnsmasq");
    expect(argv).toContain("--dhcp-range=172.20.0.0,static,255.255.0.0,12h");
    expect(argv).toContain("--domain=lab.example");
    expect(argv).not.toContain("--no-resolv");
  });

  const bad: [string, Partial<DnsmasqConfig>, string][] = [
    ["a bridge name with a space", { bridge: "br 0" }, "not a valid interface name"],
    ["a bridge name over 15 bytes", { bridge: "ibr-0123456789abcdef" }, "not a valid interface name"],
    ["a gateway that is not an address", { gateway: "10.100.0.1,8.8.8.8" }, "not an IPv4 address"],
    ["a gateway outside the subnet", { gateway: "10.100.1.1" }, "outside subnet"],
    ["a subnet with host bits", { subnet: "10.100.0.1/24" }, "host bits"],
    ["an MTU below 576", { mtu: 500 }, "MTU"],
    ["a fractional MTU", { mtu: 1450.5 }, "MTU"],
    ["a domain with a slash", { dnsDomain: "a/b" }, "not a DNS domain"],
    ["an empty domain label", { dnsDomain: "a..b" }, "not a DNS domain"],
    ["a relative pid file", { pidFile: "dnsmasq.pid" }, "pid file"],
    ["a hosts file path with a comma", { dhcpHostsFile: "/tmp/a,b" }, "DHCP hosts file"],
    ["a log path with a newline", { logFile: "/tmp/a\n--dhcp-script=/bin/sh" }, "log file"],
    ["an unknown mode", { mode: "open" as "nat" }, "mode"],
  ];
  for (const [what, over, message] of bad) {
    it(`refuses ${what}`, () => {
      const err = thrown(() => dnsmasqArgv(config(over)));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toContain(message);
      expect(err.hint).toBeTruthy();
    });
  }

  const dnsmasq = findExecutable("dnsmasq", `${process.env.PATH ?? ""}:/usr/sbin:/sbin`);
  it.skipIf(dnsmasq === null)("produces options that dnsmasq itself accepts (dnsmasq --test)", async () => {
    for (const mode of ["nat", "private"] as const) {
      const [, ...args] = dnsmasqArgv(config({ mode, binary: dnsmasq ?? "dnsmasq" }));
      const result = await run([dnsmasq ?? "dnsmasq", "--test", ...args]);
      expect(result.stderr + result.stdout).toContain("syntax check OK");
    }
  });
});

describe("validateDnsDomain", () => {
  it("lower-cases dot-separated labels", () => {
    expect(validateDnsDomain("IAAS.internal")).toBe("iaas.internal");
    expect(validateDnsDomain("x")).toBe("x");
    expect(thrown(() => validateDnsDomain("-a.b")).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => validateDnsDomain("a.b.")).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => validateDnsDomain("")).code).toBe("VALIDATION_FAILED");
  });
});

describe("renderDhcpHosts", () => {
  it("writes one mac,ip,name row per reservation with normalized MACs", () => {
    expect(
      renderDhcpHosts([
        { mac: "52:54:00:AA:BB:CC", ip: "10.100.0.5", name: "web-1" },
        { mac: "52:54:00:aa:bb:cd", ip: "10.100.0.6", name: "DB" },
      ]),
    ).toBe("52:54:00:aa:bb:cc,10.100.0.5,web-1\n52:54:00:aa:bb:cd,10.100.0.6,db\n");
    expect(renderDhcpHosts([])).toBe("");
  });

  it("refuses a MAC or an address reserved twice", () => {
    expect(thrown(() => renderDhcpHosts([{ mac: "52:54:00:aa:bb:cc", ip: "10.100.0.5", name: "a" }, { mac: "52:54:00:AA:BB:CC", ip: "10.100.0.6", name: "b" }])).message).toContain(
      "more than one DHCP reservation",
    );
    expect(thrown(() => renderDhcpHosts([{ mac: "52:54:00:aa:bb:cc", ip: "10.100.0.5", name: "a" }, { mac: "52:54:00:aa:bb:cd", ip: "10.100.0.5", name: "b" }])).message).toContain(
      "reserved for more than one MAC",
    );
  });

  it("refuses values that would break the row", () => {
    expect(thrown(() => renderDhcpHosts([{ mac: "52:54:00:aa:bb:cc", ip: "10.100.0.5", name: "a,b" }])).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderDhcpHosts([{ mac: "52:54:00:aa:bb:cc", ip: "10.100.0.5\n", name: "a" }])).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderDhcpHosts([{ mac: "52:54:00:aa:bb:cc,ignore", ip: "10.100.0.5", name: "a" }])).code).toBe("VALIDATION_FAILED");
  });
});

describe("renderAddnHosts", () => {
  it("writes the qualified and the bare name for each address", () => {
    expect(renderAddnHosts([{ ip: "10.100.0.5", name: "web-1" }, { ip: "10.100.0.6", name: "db" }], "net1.iaas.internal")).toBe(
      "10.100.0.5 web-1.net1.iaas.internal web-1\n10.100.0.6 db.net1.iaas.internal db\n",
    );
  });

  it("refuses a name or address that is not one", () => {
    expect(thrown(() => renderAddnHosts([{ ip: "10.100.0.5", name: "a b" }], "x")).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderAddnHosts([{ ip: "10.100.0.5 evil", name: "a" }], "x")).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderAddnHosts([{ ip: "10.100.0.5", name: "a" }], "x y")).code).toBe("VALIDATION_FAILED");
  });
});

describe("parseLeases", () => {
  it("reads IPv4 leases, with '*' as no hostname and 0 as an infinite lease", () => {
    const text = [
      "1764560000 52:54:00:aa:bb:cc 10.100.0.5 web-1 01:52:54:00:aa:bb:cc",
      "0 52:54:00:AA:BB:CD 10.100.0.6 * *",
      "",
    ].join("\n");
    expect(parseLeases(text)).toEqual([
      { expires: 1764560000, mac: "52:54:00:aa:bb:cc", ip: "10.100.0.5", hostname: "web-1" },
      { expires: 0, mac: "52:54:00:aa:bb:cd", ip: "10.100.0.6", hostname: null },
    ]);
  });

  it("skips DHCPv6 lines, the duid line and garbage", () => {
    const text = [
      "duid 00:01:00:01:2c:2f:3a:4b:52:54:00:12:34:56",
      "1764560000 1234567 fd00::5 web-1 00:01:00:01",
      "not a lease",
      "1764560000 52:54:00:aa:bb:cc 10.100.0.999 x *",
      "soon 52:54:00:aa:bb:cc 10.100.0.5 x *",
      "1764560000 52:54:00:aa:bb:cc 10.100.0.7 x *",
    ].join("\n");
    expect(parseLeases(text)).toEqual([{ expires: 1764560000, mac: "52:54:00:aa:bb:cc", ip: "10.100.0.7", hostname: "x" }]);
    expect(parseLeases("")).toEqual([]);
  });
});
