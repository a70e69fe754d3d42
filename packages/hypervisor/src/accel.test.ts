import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { detectAccelerator, kvmUnusableReason, parseQemuVersion, probeKvm, qemuVersion } from "./accel.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "accel-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("detectAccelerator", () => {
  it("uses TCG when asked, without looking at /dev/kvm", async () => {
    expect(await detectAccelerator("tcg", { devicePath: "/nonexistent/kvm" })).toBe("tcg");
  });

  it("picks KVM on auto when the device opens read-write, else TCG", async () => {
    const dev = join(dir, "kvm-rw");
    await writeFile(dev, "");
    expect(await detectAccelerator("auto", { devicePath: dev })).toBe("kvm");
    expect(await detectAccelerator("auto", { devicePath: join(dir, "missing") })).toBe("tcg");
  });

  it("explains why KVM is unusable when KVM is required", async () => {
    const err = await detectAccelerator("kvm", { devicePath: join(dir, "missing") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).message).toContain("does not exist");
    expect((err as IaasError).hint).toContain("'tcg'");
  });

  it("reports a device path that cannot be opened read-write, with the system's reason", async () => {
    // A directory cannot be opened read-write, even by root (EISDIR).
    const probe = await probeKvm(dir);
    expect(probe.usable).toBe(false);
    expect(probe.reason).toContain(`${dir} cannot be opened`);
  });

  it("tells a user without permission on the device to join the kvm group", () => {
    expect(kvmUnusableReason("/dev/kvm", "EACCES", "permission denied")).toContain("'kvm' group");
    expect(kvmUnusableReason("/dev/kvm", "EPERM", "operation not permitted")).toContain("'kvm' group");
  });
});

describe("parseQemuVersion", () => {
  it("reads a Debian build's version line", () => {
    const text = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
    expect(parseQemuVersion(text)).toEqual({ major: 7, minor: 2, micro: 22, version: "7.2.22", package: "Debian 1:7.2+dfsg-7+deb12u18+b3" });
  });

  it("reads qemu-img's version line and a two-part version", () => {
    expect(parseQemuVersion("qemu-img version 8.1.0\n")).toMatchObject({ version: "8.1.0", package: null });
    expect(parseQemuVersion("QEMU emulator version 9.0")).toMatchObject({ major: 9, minor: 0, micro: 0 });
  });

  it("refuses text without a version", () => {
    expect(() => parseQemuVersion("command not found")).toThrow(IaasError);
  });
});

describe("qemuVersion", () => {
  it("reports a missing binary with an install hint", async () => {
    const err = await qemuVersion("/nonexistent/qemu-system-x86_64").catch((e: unknown) => e);
    expect((err as IaasError).hint).toContain("install QEMU");
  });
});
