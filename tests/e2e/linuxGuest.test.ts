import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, Vm } from "@iaas/contracts";
import { QmpClient } from "@iaas/hypervisor";
import { eventually, guestImages, Stack } from "./harness.js";

// A real Linux guest (Debian kernel + busybox, built offline): it boots from a qcow2 overlay,
// answers the ACPI power button, and can power itself off.
describe("a Linux guest", () => {
  let stack: Stack;
  let linux: string;

  beforeAll(async () => {
    ({ linux } = await guestImages(["linux"]));
    stack = await Stack.start(["host-l"]);
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  const vmShow = (name: string) => stack.cliJson<Vm>(["vm", "show", name]);
  const consoleOf = async (name: string) => (await stack.cli(["vm", "console", name])).stdout;

  it("boots from an imported qcow2 image to its ready marker", async () => {
    const imported = await stack.cli(["image", "import", "linux", "--file", linux, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
    const created = await stack.cli(["vm", "create", "lx", "--image", "linux", "--memory", "256M", "--disk", "64M", "--start", "--wait"]);
    expect(created.code, created.stderr).toBe(0);
    await eventually("the guest's ready marker", async () => (await consoleOf("lx")).includes("IAAS-GUEST-READY"), 60_000);
  }, 120_000);

  it("stops gracefully: the guest powers off on the ACPI button, without QEMU being forced", async () => {
    const r = await stack.cliJson<Job>(["vm", "stop", "lx", "--wait"]);
    expect(r.state).toBe("succeeded");
    expect(r.result).toMatchObject({ state: "stopped", forced: false });
    expect((await vmShow("lx")).state).toBe("stopped");
  });

  it("notices a guest that powered itself off and records it", async () => {
    const started = await stack.cli(["vm", "start", "lx", "--wait"]);
    expect(started.code, started.stderr).toBe(0);
    await eventually("the guest to boot again", async () => (await consoleOf("lx")).includes("IAAS-GUEST-READY"), 60_000);
    const vm = await vmShow("lx");
    // Press the power button behind the manager's back, as a user inside the guest shutting down would.
    const qmp = await QmpClient.connect(path.join(stack.dir, "host-l", "vms", vm.id, "qmp.sock"));
    await qmp.execute("system_powerdown");
    qmp.close();
    await eventually("the VM to be shown stopped", async () => (await vmShow("lx")).state === "stopped", 30_000);
    const jobs = await stack.cliJson<{ items: Job[] }>(["job", "list", "--vm", "lx", "--type", "vm.reconcile"]);
    expect(jobs.items[0]?.result).toMatchObject({ state: "stopped", previousState: "running" });
    const deleted = await stack.cli(["vm", "delete", "lx", "--wait"]);
    expect(deleted.code, deleted.stderr).toBe(0);
  }, 180_000);
});
