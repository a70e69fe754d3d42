import { describe, expect, it } from "vitest";
import { userModeDns } from "./vmLaunch.js";

describe("userModeDns", () => {
  it("puts QEMU's DNS at the top of the subnet, clear of the gateway and the guest's address", () => {
    expect(userModeDns("10.100.0.0/24", "10.100.0.3")).toBe("10.100.0.254");
  });

  it("steps down one address when the guest holds the top one", () => {
    expect(userModeDns("10.100.0.0/24", "10.100.0.254")).toBe("10.100.0.253");
  });
});
