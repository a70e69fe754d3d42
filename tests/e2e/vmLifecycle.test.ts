import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Host, Job, Vm } from "@iaas/contracts";
import { isProcessAlive } from "@iaas/hypervisor";
import { eventually, guestImages, Stack } from "./harness.js";

// Two worker processes as two hosts, the API, real QEMU (TCG), all driven through the `iaas` binary.
describe("VM lifecycle across two hosts", () => {
  let stack: Stack;
  let images: { bootsector: string };

  beforeAll(async () => {
    images = await guestImages(["bootsector"]);
    stack = await Stack.start(["host-a", "host-b"]);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  const vmShow = (name: string) => stack.cliJson<Vm>(["vm", "show", name]);
  const consoleOf = async (name: string) => (await stack.cli(["vm", "console", name])).stdout;

  it("lists both hosts as online with their accelerator and capacity", async () => {
    const hosts = await stack.cliJson<{ items: Host[] } | Host[]>(["host", "list"]);
    const items = Array.isArray(hosts) ? hosts : hosts.items;
    expect(items.map((h) => [h.id, h.state, h.accelerator])).toEqual([
      ["host-a", "online", "tcg"],
      ["host-b", "online", "tcg"],
    ]);
    const table = await stack.cli(["host", "list"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/host-a\s+host-a\s+online\s+tcg/);
  });

  it("imports an image from a local file and shows it ready with its checksum", async () => {
    const r = await stack.cli(["image", "import", "boot", "--file", images.bootsector, "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    const image = await stack.cliJson<{ state: string; sourceFormat: string; virtualSize: number; sha256: string }>(["image", "show", "boot"]);
    expect(image.state).toBe("ready");
    expect(image.sourceFormat).toBe("raw");
    expect(image.virtualSize).toBe(1024 * 1024);
    expect(image.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("creates and starts VMs that land on both hosts and boot to their marker", async () => {
    for (const name of ["alpha", "beta"]) {
      const r = await stack.cli(["vm", "create", name, "--image", "boot", "--memory", "128M", "--start", "--wait"]);
      expect(r.code, `${r.stderr}\n${stack.logTail()}`).toBe(0);
    }
    const [alpha, beta] = [await vmShow("alpha"), await vmShow("beta")];
    expect(alpha.state).toBe("running");
    expect(beta.state).toBe("running");
    expect(new Set([alpha.hostId, beta.hostId])).toEqual(new Set(["host-a", "host-b"]));
    for (const name of ["alpha", "beta"]) {
      await eventually(`${name}'s boot marker on its console`, async () => (await consoleOf(name)).includes("IAAS-BOOT-OK"));
    }
  });

  it("prints the placement for --dry-run and creates nothing", async () => {
    const r = await stack.cli(["vm", "create", "ghost", "--image", "boot", "--memory", "128M", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/host-a|host-b/);
    expect((await stack.cli(["vm", "show", "ghost"])).code).toBe(3);
  });

  it("refuses a VM no host has room for, saying what each host lacks", async () => {
    const r = await stack.cli(["vm", "create", "huge", "--image", "boot", "--memory", "64G"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/host-a: needs 64 GiB memory/);
    expect(r.stderr).toMatch(/host-b: needs 64 GiB memory/);
  });

  it("reboots a running VM and the guest boots again", async () => {
    const r = await stack.cli(["vm", "reboot", "alpha", "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    await eventually("a second boot marker", async () => (await consoleOf("alpha")).split("IAAS-BOOT-OK").length > 2);
    expect((await vmShow("alpha")).state).toBe("running");
  });

  it("answers a conflicting request with 409 naming the job that holds the VM", async () => {
    // The boot sector ignores ACPI, so this stop holds the VM for its whole 20 s grace period.
    const stop = await stack.cliJson<{ job: Job }>(["vm", "stop", "beta", "--stop-timeout", "20"]);
    const r = await stack.cli(["vm", "reboot", "beta"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(stop.job.id);
    expect(r.stderr).toMatch(/iaas job wait/);
    const waited = await stack.cli(["job", "wait", stop.job.id, "--timeout", "1"]);
    expect(waited.code).toBe(4);
    expect(waited.stderr).toContain(`iaas job wait ${stop.job.id}`);
    const done = await stack.cli(["job", "wait", stop.job.id, "--timeout", "60"]);
    expect(done.code, done.stderr).toBe(0);
    expect((await vmShow("beta")).state).toBe("stopped");
  });

  it("returns the first job for a repeated Idempotency-Key", async () => {
    const first = await stack.cliJson<{ job: Job }>(["vm", "start", "beta", "--idempotency-key", "start-beta-once"]);
    const again = await stack.cliJson<{ job: Job }>(["vm", "start", "beta", "--idempotency-key", "start-beta-once"]);
    expect(again.job.id).toBe(first.job.id);
    expect((await stack.cli(["job", "wait", first.job.id])).code).toBe(0);
    expect((await vmShow("beta")).state).toBe("running");
  });

  it("exits 1 with the error and its hint when the job fails", async () => {
    // A stop with --force of a VM whose QEMU is gone still succeeds; a failing job: import garbage.
    const r = await stack.cli(["image", "import", "bad", "--file", "/etc/hostname", "--wait"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: /);
    expect(r.stderr).toMatch(/hint: /);
    const image = await stack.cliJson<{ state: string }>(["image", "show", "bad"]);
    expect(image.state).toBe("failed");
  });

  it("keeps a VM running when its worker is killed, and re-adopts it after a restart", async () => {
    const before = await vmShow("alpha");
    expect(before.pid).not.toBeNull();
    await stack.killWorker(before.hostId, "SIGKILL");
    expect(await isProcessAlive(before.pid ?? 0)).toBe(true);
    await stack.startWorker(before.hostId);
    const after = await vmShow("alpha");
    expect(after.state).toBe("running");
    expect(after.pid).toBe(before.pid);
    const stop = await stack.cli(["vm", "stop", "alpha", "--force", "--wait"]);
    expect(stop.code, stop.stderr).toBe(0);
    expect((await vmShow("alpha")).state).toBe("stopped");
    expect(await isProcessAlive(before.pid ?? 0)).toBe(false);
  });

  it("notices a VM whose QEMU went away and records why", async () => {
    const beta = await vmShow("beta");
    // A null pid must fail the test, never become kill(0): that would signal this whole process group.
    expect(beta.pid, `beta is ${beta.state}`).toBeGreaterThan(0);
    process.kill(beta.pid as number, "SIGTERM");
    await eventually("beta to be shown stopped", async () => (await vmShow("beta")).state === "stopped");
    const jobs = await stack.cliJson<{ items: Job[] } | Job[]>(["job", "list", "--vm", "beta"]);
    const items = Array.isArray(jobs) ? jobs : jobs.items;
    expect(items.some((j) => j.type === "vm.reconcile" && j.state === "succeeded")).toBe(true);
  });

  it("deletes VMs with their disks, and then the image they used", async () => {
    const inUse = await stack.cli(["image", "delete", "boot"]);
    expect(inUse.code).toBe(3);
    expect(inUse.stderr).toMatch(/alpha/);
    for (const name of ["alpha", "beta"]) {
      const r = await stack.cli(["vm", "delete", name, "--wait"]);
      expect(r.code, r.stderr).toBe(0);
      expect((await stack.cli(["vm", "show", name])).code).toBe(3);
    }
    expect(await stack.qemuPids()).toEqual([]);
    const del = await stack.cli(["image", "delete", "boot", "--wait"]);
    expect(del.code, del.stderr).toBe(0);
  });
});
