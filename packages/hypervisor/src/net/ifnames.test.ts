import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bridgeName, IFNAME_PREFIXES, isManagedIfname, tapName, vxlanName } from "./ifnames.js";
import { thrown } from "./thrown.fixture.js";

const sha8 = (s: string): string => createHash("sha256").update(s).digest("hex").slice(0, 8);

describe("interface names", () => {
  it("derives bridge, VXLAN and tap names from the first 8 hex digits of sha256(id)", () => {
    const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    expect(bridgeName(id)).toBe(`ibr-${sha8(id)}`);
    expect(vxlanName(id)).toBe(`ivx-${sha8(id)}`);
    expect(tapName(id)).toBe(`itap-${sha8(id)}`);
    expect(IFNAME_PREFIXES).toEqual({ bridge: "ibr-", vxlan: "ivx-", tap: "itap-" });
  });

  it("keeps names within 15 bytes of [a-z0-9-] whatever the id", () => {
    for (const id of ["x", "ÄÖÜ with spaces", "a".repeat(500), "7c9e6679-7425-40de-944b-e07fc1f90ae7"]) {
      for (const name of [bridgeName(id), vxlanName(id), tapName(id)]) {
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(15);
        expect(name).toMatch(/^[a-z0-9-]+$/);
        expect(isManagedIfname(name)).toBe(true);
      }
    }
  });

  it("gives UUIDs that share a prefix different names", () => {
    const a = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    const b = "7c9e6679-7425-40de-944b-e07fc1f90ae8";
    expect(bridgeName(a)).not.toBe(bridgeName(b));
    expect(tapName(a)).not.toBe(tapName(b));
  });

  it("recognises only the names it creates", () => {
    for (const other of ["eth0", "lo", "docker0", "ibr-1234567", "ibr-123456789", "ibr-ABCDEF01", "itap-", "ivx-1234567g", "xibr-12345678", "ibr-12345678\n"]) {
      expect(isManagedIfname(other)).toBe(false);
    }
  });

  it("needs an id", () => {
    expect(thrown(() => bridgeName("")).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => tapName("")).code).toBe("VALIDATION_FAILED");
  });
});
