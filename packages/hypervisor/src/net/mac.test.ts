import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deriveMac, gatewayMac, normalizeMac } from "./mac.js";
import { thrown } from "./thrown.fixture.js";

describe("deriveMac", () => {
  it("puts three bytes of sha256(seed/attempt) after QEMU's 52:54:00 prefix", () => {
    const hex = createHash("sha256").update("nic-1/0").digest("hex");
    expect(deriveMac("nic-1")).toBe(`52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`);
    expect(deriveMac("nic-1")).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
  });

  it("is stable for a seed and changes with the attempt", () => {
    expect(deriveMac("nic-1", 0)).toBe(deriveMac("nic-1"));
    expect(deriveMac("nic-1", 1)).not.toBe(deriveMac("nic-1", 0));
    expect(deriveMac("nic-2")).not.toBe(deriveMac("nic-1"));
  });

  it("rejects a negative or fractional attempt", () => {
    expect(thrown(() => deriveMac("x", -1)).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => deriveMac("x", 0.5)).code).toBe("VALIDATION_FAILED");
  });
});

describe("normalizeMac", () => {
  it("lower-cases and accepts ':' or '-' separators", () => {
    expect(normalizeMac("52:54:00:AB:cd:EF")).toBe("52:54:00:ab:cd:ef");
    expect(normalizeMac("52-54-00-ab-cd-ef")).toBe("52:54:00:ab:cd:ef");
    expect(normalizeMac("02:00:00:00:00:01")).toBe("02:00:00:00:00:01");
  });

  it("rejects text that is not six hex pairs and hints at leaving mac= out", () => {
    for (const bad of ["52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "52:54:00:ab:cd:eg", "5254.00ab.cdef", "52:54-00:ab:cd:ef", "52:54:00:ab:cd:e", ""]) {
      const err = thrown(() => normalizeMac(bad));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toContain("is not a MAC address");
      expect(err.hint).toContain("leave mac= out");
    }
  });

  it("rejects multicast and broadcast MACs", () => {
    for (const bad of ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "53:54:00:12:34:56"]) {
      const err = thrown(() => normalizeMac(bad));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toContain("multicast");
      expect(err.hint).toContain("leave mac= out");
    }
  });

  it("rejects the all-zero MAC", () => {
    const err = thrown(() => normalizeMac("00:00:00:00:00:00"));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.hint).toContain("leave mac= out");
  });
});

describe("gatewayMac", () => {
  it("is a locally administered unicast MAC made of 0a and five bytes of sha256(networkId)", () => {
    const hex = createHash("sha256").update("net-1").digest("hex");
    const mac = gatewayMac("net-1");
    expect(mac).toBe(["0a", ...(hex.slice(0, 10).match(/../g) ?? [])].join(":"));
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
    expect(normalizeMac(mac)).toBe(mac);
  });

  it("is the same for the same network and differs between networks", () => {
    expect(gatewayMac("net-1")).toBe(gatewayMac("net-1"));
    expect(gatewayMac("net-2")).not.toBe(gatewayMac("net-1"));
  });

  it("needs a network id", () => {
    expect(thrown(() => gatewayMac("")).code).toBe("VALIDATION_FAILED");
  });
});
