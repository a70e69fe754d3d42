import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { qemuUserFromSetting } from "./qemuUserPolicy.js";

const isRoot = process.getuid?.() === 0;
const tcg = { accelerator: "tcg" as const };

describe("qemuUserFromSetting (IAAS_QEMU_USER)", () => {
  it("drops a root worker's QEMU to nobody by default, and to the named account when set", async () => {
    expect(await qemuUserFromSetting(undefined, { isRoot: true, ...tcg })).toMatchObject({ name: "nobody", uid: 65534 });
    expect(await qemuUserFromSetting("nobody", { isRoot: true, ...tcg })).toMatchObject({ name: "nobody", uid: 65534 });
  });

  it("keeps QEMU as the worker's user when set to '' or when the worker is not root", async () => {
    expect(await qemuUserFromSetting("", { isRoot: true, ...tcg })).toBeNull();
    expect(await qemuUserFromSetting(undefined, { isRoot: false, ...tcg })).toBeNull();
    expect(await qemuUserFromSetting("", { isRoot: false, ...tcg })).toBeNull();
  });

  it("refuses a user a worker that is not root cannot switch to, root itself, and unknown accounts", async () => {
    await expect(qemuUserFromSetting("nobody", { isRoot: false, ...tcg })).rejects.toThrow(/IAAS_QEMU_USER: 'nobody' needs a worker running as root/);
    await expect(qemuUserFromSetting("root", { isRoot: true, ...tcg })).rejects.toThrow(/IAAS_QEMU_USER: user 'root' is root/);
    await expect(qemuUserFromSetting("no-such-user-iaas", { isRoot: true, ...tcg })).rejects.toThrow(/IAAS_QEMU_USER: user 'no-such-user-iaas' does not exist.*useradd/);
  });

  it.skipIf(!isRoot)("refuses a user that cannot reach the data directory or the image store", async () => {
    expect(await qemuUserFromSetting("nobody", { isRoot: true, ...tcg, dirs: { IAAS_DATA_DIR: "/tmp", IAAS_IMAGE_STORE: "/" } })).toMatchObject({ name: "nobody" });
    const dir = await mkdtemp("/tmp/qup-");
    try {
      await mkdir(`${dir}/data`);
      // mkdtemp's 0700: nobody cannot pass through it.
      await expect(qemuUserFromSetting("nobody", { isRoot: true, ...tcg, dirs: { IAAS_DATA_DIR: `${dir}/data` } })).rejects.toThrow(
        /IAAS_QEMU_USER: QEMU would run as 'nobody', which cannot reach IAAS_DATA_DIR .*\/data; make it and the directories above it searchable/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!isRoot)("with KVM, refuses a user that cannot open the KVM device (QEMU would fall back to TCG silently)", async () => {
    await expect(qemuUserFromSetting("nobody", { isRoot: true, accelerator: "kvm", kvmDevice: "/etc/shadow" })).rejects.toThrow(/cannot open \/etc\/shadow read-write/);
  });
});
