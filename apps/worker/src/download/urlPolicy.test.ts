import { describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { EMPTY_ALLOW_LIST, checkAddress, checkUrl, parseAllowList } from "./urlPolicy.js";

function refusal(fn: () => unknown): IaasError {
  try {
    fn();
  } catch (err) {
    if (err instanceof IaasError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

function reasonFor(ip: string): string {
  const verdict = checkAddress(ip, EMPTY_ALLOW_LIST);
  if (verdict.allowed) throw new Error(`${ip} was allowed`);
  return verdict.reason;
}

describe("checkAddress", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.1.2.3", "loopback"],
    ["169.254.169.254", "link-local"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["198.18.0.1", "benchmarking"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["192.0.0.170", "IETF protocol assignments"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["fc00::1", "unique-local"],
    ["fd12:3456::1", "unique-local"],
    ["ff02::1", "multicast"],
    ["fec0::1", "site-local"],
    ["2001:db8::1", "documentation"],
    ["100::1", "discard-only"],
    ["4000::1", "not global unicast"],
  ])("denies %s as %s", (ip, kind) => {
    expect(reasonFor(ip)).toContain(kind);
  });

  it.each([
    ["::ffff:127.0.0.1", "IPv4-mapped", "127.0.0.0/8 (loopback)"],
    ["::ffff:7f00:1", "IPv4-mapped", "127.0.0.0/8 (loopback)"],
    ["::ffff:a9fe:a9fe", "IPv4-mapped", "link-local"],
    ["::127.0.0.1", "IPv4-compatible", "loopback"],
    ["::ffff:0:a00:1", "IPv4-translated", "private"],
    ["64:ff9b::10.0.0.1", "NAT64", "private"],
    ["64:ff9b::a9fe:a9fe", "NAT64", "link-local"],
    ["2002:7f00:1::1", "6to4", "loopback"],
    ["2002:c0a8:0101::", "6to4", "private"],
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo", "loopback"],
    ["2001:0:0a00:0001::", "Teredo", "private"],
  ])("denies %s because its %s form leads to a denied IPv4 address (%s)", (ip, form, kind) => {
    const reason = reasonFor(ip);
    expect(reason).toContain(form);
    expect(reason).toContain(kind);
  });

  it.each(["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1", "2a00:1450:4001:80b::200e", "::ffff:93.184.216.34", "64:ff9b::808:808", "2002:5db8:d822::1"])(
    "allows the public address %s",
    (ip) => {
      expect(checkAddress(ip, EMPTY_ALLOW_LIST)).toEqual({ allowed: true });
    },
  );

  it("refuses what is not an IP address", () => {
    expect(reasonFor("not-an-ip")).toContain("not an IP address");
    expect(reasonFor("127.0.0.1.2")).toContain("not an IP address");
  });

  it("admits an address inside an allowed CIDR, also in its IPv4-mapped form, and nothing next to it", () => {
    const allow = parseAllowList("127.0.0.1/32, 10.1.0.0/16, ::1/128");
    expect(checkAddress("127.0.0.1", allow)).toEqual({ allowed: true });
    expect(checkAddress("::ffff:127.0.0.1", allow)).toEqual({ allowed: true });
    expect(checkAddress("10.1.200.3", allow)).toEqual({ allowed: true });
    expect(checkAddress("::1", allow)).toEqual({ allowed: true });
    expect(checkAddress("127.0.0.2", allow).allowed).toBe(false);
    expect(checkAddress("10.2.0.1", allow).allowed).toBe(false);
    expect(checkAddress("169.254.169.254", allow).allowed).toBe(false);
  });

  it("admits any address of an allowed host name, matched case-insensitively", () => {
    const allow = parseAllowList("Images.Example.org");
    expect(checkAddress("10.0.0.5", allow, "images.example.ORG.")).toEqual({ allowed: true });
    expect(checkAddress("10.0.0.5", allow, "other.example.org").allowed).toBe(false);
    expect(checkAddress("10.0.0.5", allow).allowed).toBe(false);
  });
});

describe("parseAllowList", () => {
  it("reads host names and CIDRs separated by commas and spaces", () => {
    const allow = parseAllowList(" images.example.org, 10.1.0.0/16 127.0.0.1/32,, ::1/128 192.0.2.7 ");
    expect([...allow.hosts]).toEqual(["images.example.org"]);
    expect(allow.cidrs.map((c) => c.text)).toEqual(["10.1.0.0/16", "127.0.0.1/32", "::1/128", "192.0.2.7"]);
  });

  it("returns an empty list for an unset or blank value", () => {
    expect(parseAllowList(undefined)).toEqual({ hosts: new Set(), cidrs: [] });
    expect(parseAllowList("  ")).toEqual({ hosts: new Set(), cidrs: [] });
  });

  it.each(["*.example.org", "10.0.0.0/33", "10.0.0.0/x", "::1/129", "http://example.org", "1.2.3", "0x7f.1", "-bad.example"])(
    "refuses the bad entry %s and names it",
    (entry) => {
      expect(() => parseAllowList(`images.example.org, ${entry}`)).toThrow(`'${entry}'`);
    },
  );

  it("refuses a CIDR with host bits set and suggests the network", () => {
    expect(() => parseAllowList("10.1.2.3/16")).toThrow("did you mean 10.1.0.0/16?");
  });
});

describe("checkUrl", () => {
  it.each([
    ["http://127.0.0.1/disk.qcow2", "loopback"],
    ["http://127.1.2.3/", "loopback"],
    ["http://169.254.169.254/latest/meta-data/", "link-local"],
    ["http://[::1]:8080/", "loopback"],
    ["http://[::ffff:127.0.0.1]/", "IPv4-mapped"],
    ["http://[::ffff:7f00:1]/", "IPv4-mapped"],
    ["http://[fe80::1]/", "link-local"],
    ["http://[fc00::1]/", "unique-local"],
    ["https://10.0.0.1/", "private"],
    ["http://192.168.1.1/", "private"],
    ["http://172.16.0.1/", "private"],
    ["http://100.64.0.1/", "carrier-grade NAT"],
    ["http://0.0.0.0/", "unspecified"],
    ["http://0/", "unspecified"],
    ["http://224.0.0.1/", "multicast"],
    ["http://2130706433/", "127.0.0.1"],
    ["http://0x7f000001/", "127.0.0.1"],
    ["http://017700000001/", "127.0.0.1"],
    ["http://0x7f.1/", "127.0.0.1"],
    ["http://127.1/", "127.0.0.1"],
    ["http://%31%32%37.0.0.1/", "127.0.0.1"],
  ])("refuses %s (%s)", (url, expected) => {
    const err = refusal(() => checkUrl(url));
    expect(err.code).toBe("URL_NOT_ALLOWED");
    expect(err.message).toContain(expected);
    expect(err.hint).toContain("IAAS_URL_ALLOW_LIST");
  });

  it.each(["file:///etc/passwd", "ftp://x/disk.img", "gopher://x:70/", "data:application/octet-stream;base64,AAAA", "javascript:alert(1)", "ws://x/"])(
    "refuses the scheme of %s",
    (url) => {
      const err = refusal(() => checkUrl(url));
      expect(err.code).toBe("URL_NOT_ALLOWED");
      expect(err.message).toContain("only http: and https:");
    },
  );

  it("refuses credentials in the URL without echoing the password", () => {
    const err = refusal(() => checkUrl("https://user:s3cret@images.example.org/disk.qcow2"));
    expect(err.code).toBe("URL_NOT_ALLOWED");
    expect(err.message).toContain("credentials");
    expect(err.message).not.toContain("s3cret");
  });

  it("refuses what is not a URL", () => {
    const err = refusal(() => checkUrl("images.example.org/disk.qcow2"));
    expect(err.code).toBe("URL_NOT_ALLOWED");
    expect(err.message).toContain("not a valid URL");
  });

  it("accepts public http and https URLs with or without a port and drops the fragment", () => {
    expect(checkUrl("http://93.184.216.34/disk.img")).toMatchObject({ host: "93.184.216.34", isIpLiteral: true, port: 80 });
    expect(checkUrl("https://[2606:4700::1]:8443/d")).toMatchObject({ host: "2606:4700::1", isIpLiteral: true, port: 8443 });
    const named = checkUrl("HTTPS://Images.Example.org/disk.qcow2?x=1#frag");
    expect(named).toMatchObject({ host: "images.example.org", isIpLiteral: false, port: 443 });
    expect(named.url.href).toBe("https://images.example.org/disk.qcow2?x=1");
  });

  it("leaves host names to the resolver, whatever they may resolve to", () => {
    expect(checkUrl("http://localhost/").isIpLiteral).toBe(false);
  });

  it("admits a loopback URL the allow-list names", () => {
    expect(checkUrl("http://127.0.0.1:9/", parseAllowList("127.0.0.1/32")).port).toBe(9);
  });
});
