import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, Snapshot, Vm } from "@iaas/contracts";
import { eventually, guestImages, Stack } from "./harness.js";
import { GuestShell } from "./guestShell.js";

const execFileP = promisify(execFile);

// Internal qcow2 snapshots of a real busybox guest: disk-only of a stopped and of a running VM,
// and with memory (back to a running instant, live or by starting with -loadvm). The guest's root
// is in RAM, so disk changes are made with dd at the end of its disk and memory changes in /tmp.
describe("VM snapshots and size changes", () => {
  let stack: Stack;
  let shell: GuestShell | undefined;
  let vm: Vm;
  let imageSha256 = "";
  const imageFile = async () => {
    const image = await stack.cliJson<{ id: string }>(["image", "show", "linux"]);
    return path.join(stack.dir, "store", "images", `${image.id}.qcow2`);
  };
  const sha256Of = async (file: string) => (await execFileP("sha256sum", [file])).stdout.split(" ")[0] ?? "";

  beforeAll(async () => {
    const images = await guestImages(["linux"]);
    stack = await Stack.start(["host-s"]);
    const imported = await stack.cli(["image", "import", "linux", "--file", images.linux, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
    const created = await stack.cli(["vm", "create", "sv", "--image", "linux", "--memory", "192M", "--disk", "64M", "--start", "--wait"]);
    expect(created.code, created.stderr).toBe(0);
    vm = await stack.cliJson<Vm>(["vm", "show", "sv"]);
    imageSha256 = await sha256Of(await imageFile());
  }, 300_000);

  afterAll(async () => {
    shell?.close();
    await stack?.stop();
  }, 60_000);

  const disk = () => path.join(stack.dir, "host-s", "vms", vm.id, "disk.qcow2");
  const ok = async (args: string[]) => {
    const r = await stack.cli(args);
    expect(r.code, `iaas ${args.join(" ")}: ${r.stderr}\n${stack.logTail(10)}`).toBe(0);
    return r;
  };
  async function guest(): Promise<GuestShell> {
    shell ??= await GuestShell.connect(path.join(stack.dir, "host-s", "vms", vm.id, "ttyS1.sock"), { timeoutMs: 90_000 });
    return shell;
  }
  /** Drops the shell connection (the guest is about to power off or boot again). */
  function forgetShell(): void {
    shell?.close();
    shell = undefined;
  }
  const writeDisk = async (text: string) => {
    const r = await (await guest()).run(`printf '%-16s' ${text} | dd of=/dev/vda bs=1M seek=60 conv=fsync 2>/dev/null; sync; echo written`);
    expect(r.output).toContain("written");
  };
  const readDisk = async () => (await (await guest()).run("dd if=/dev/vda bs=1M skip=60 count=1 2>/dev/null | head -c 16")).output.trim();
  const snapshots = async () => (await stack.cliJson<{ items: Snapshot[] }>(["vm", "snapshot", "list", "sv"])).items;
  const qemuImgTags = async () => {
    const { stdout } = await execFileP("qemu-img", ["info", "-U", "-f", "qcow2", "--output=json", disk()]);
    return ((JSON.parse(stdout) as { snapshots?: { name: string; "vm-state-size": number }[] }).snapshots ?? []).map((s) => [s.name, s["vm-state-size"] > 0]);
  };
  const stop = async () => {
    forgetShell();
    await ok(["vm", "stop", "sv", "--wait"]);
  };
  const start = async () => {
    forgetShell();
    await ok(["vm", "start", "sv", "--wait"]);
  };

  it("snapshots a stopped VM's disk and goes back to it, agreeing with qemu-img", async () => {
    await writeDisk("DISK-ONE");
    await stop();
    await ok(["vm", "snapshot", "create", "sv", "cold", "--description", "before the change", "--wait"]);
    await start();
    await writeDisk("DISK-TWO");
    expect(await readDisk()).toBe("DISK-TWO");
    await stop();
    const list = await snapshots();
    expect(list.map((s) => [s.name, s.kind, s.state, s.vmState, s.description])).toEqual([["cold", "disk", "ready", "stopped", "before the change"]]);
    expect(await qemuImgTags()).toEqual([["cold", false]]);
    const restored = await stack.cliJson<Job>(["vm", "snapshot", "restore", "sv", "cold", "--wait"]);
    expect(restored.result).toMatchObject({ name: "cold", state: "stopped" });
    await start();
    expect(await readDisk()).toBe("DISK-ONE");
  }, 240_000);

  it("takes a disk snapshot of a running VM without stopping it; restoring it needs the VM stopped or --restart", async () => {
    const before = await stack.cliJson<Vm>(["vm", "show", "sv"]);
    await ok(["vm", "snapshot", "create", "sv", "live", "--wait"]);
    expect((await stack.cliJson<Vm>(["vm", "show", "sv"])).pid).toBe(before.pid);
    await writeDisk("DISK-THREE");
    const refused = await stack.cli(["vm", "snapshot", "restore", "sv", "live"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/--restart/);
    forgetShell();
    const restarted = await stack.cliJson<Job>(["vm", "snapshot", "restore", "sv", "live", "--restart", "--wait"]);
    expect(restarted.result).toMatchObject({ name: "live", state: "running" });
    expect((await stack.cliJson<Vm>(["vm", "show", "sv"])).pid).not.toBe(before.pid);
    expect(await readDisk()).toBe("DISK-ONE");
    expect((await snapshots()).find((s) => s.name === "live")?.vmState).toBe("running");
  }, 240_000);

  it("saves memory too and returns the running VM to that instant, live and from a stopped VM (-loadvm)", async () => {
    await (await guest()).run("echo RAM-ONE > /tmp/marker");
    await ok(["vm", "snapshot", "create", "sv", "warm", "--memory", "--wait"]);
    const warm = (await snapshots()).find((s) => s.name === "warm");
    expect(warm).toMatchObject({ kind: "memory", state: "ready", vmState: "running" });
    expect(warm?.sizeBytes).toBeGreaterThan(0);
    expect(await qemuImgTags()).toContainEqual(["warm", true]);
    await (await guest()).run("echo RAM-TWO > /tmp/marker");
    const pid = (await stack.cliJson<Vm>(["vm", "show", "sv"])).pid;
    await ok(["vm", "snapshot", "restore", "sv", "warm", "--wait"]);
    expect((await stack.cliJson<Vm>(["vm", "show", "sv"])).pid).toBe(pid);
    expect((await (await guest()).run("cat /tmp/marker")).output).toBe("RAM-ONE");

    // From a stopped VM: QEMU starts with -loadvm and the guest goes on from the saved instant, not a boot.
    await (await guest()).run("echo RAM-THREE > /tmp/marker");
    await stop();
    const restored = await stack.cliJson<Job>(["vm", "snapshot", "restore", "sv", "warm", "--wait"]);
    expect(restored.result).toMatchObject({ state: "running" });
    expect((await stack.cliJson<Vm>(["vm", "show", "sv"])).state).toBe("running");
    await eventually("the guest shell after -loadvm", async () => (await (await guest()).run("cat /tmp/marker")).output === "RAM-ONE", 60_000, 1000);
  }, 300_000);

  it("refuses a taken name and --memory on a stopped VM, and deletes snapshots from the disk", async () => {
    const taken = await stack.cli(["vm", "snapshot", "create", "sv", "warm"]);
    expect(taken.code).toBe(3);
    expect(taken.stderr).toMatch(/already has a snapshot named 'warm'/);
    for (const name of ["cold", "live", "warm"]) await ok(["vm", "snapshot", "delete", "sv", name, "--wait"]);
    expect(await snapshots()).toEqual([]);
    expect(await qemuImgTags()).toEqual([]);
    await stop();
    const cold = await stack.cli(["vm", "snapshot", "create", "sv", "x", "--memory"]);
    expect(cold.code).toBe(2);
    expect(cold.stderr).toMatch(/no memory to save/);
  }, 180_000);

  it("grows a stopped VM's disk and sets its CPUs and memory, which its next start uses", async () => {
    const set = await stack.cliJson<Vm>(["vm", "set", "sv", "--cpus", "2", "--memory", "256M"]);
    expect([set.cpus, set.memoryBytes]).toEqual([2, 256 * 1024 * 1024]);
    const tooBig = await stack.cli(["vm", "set", "sv", "--memory", "64G"]);
    expect(tooBig.code).toBe(3);
    expect(tooBig.stderr).toMatch(/no room/);
    const grown = await stack.cliJson<Job>(["vm", "resize", "sv", "--disk", "96M", "--wait"]);
    expect(grown.result).toMatchObject({ diskBytes: 96 * 1024 * 1024, live: false });
    await start();
    expect((await (await guest()).run("nproc")).output).toBe("2");
    expect((await (await guest()).run("cat /sys/block/vda/size")).output).toBe(String((96 * 1024 * 1024) / 512));
    expect(await readDisk()).toBe("DISK-ONE");
  }, 180_000);

  it("grows a running VM's disk live, refuses to shrink it, and refuses CPU changes while it runs", async () => {
    const grown = await stack.cliJson<Job>(["vm", "resize", "sv", "--disk", "128M", "--wait"]);
    expect(grown.result).toMatchObject({ diskBytes: 128 * 1024 * 1024, live: true });
    await eventually("the guest to see the new size", async () => (await (await guest()).run("cat /sys/block/vda/size")).output === String((128 * 1024 * 1024) / 512), 20_000, 500);
    expect((await stack.cliJson<Vm>(["vm", "show", "sv"])).diskBytes).toBe(128 * 1024 * 1024);
    const shrink = await stack.cli(["vm", "resize", "sv", "--disk", "64M"]);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toMatch(/disks only grow/);
    const running = await stack.cli(["vm", "set", "sv", "--cpus", "1"]);
    expect(running.code).toBe(3);
    expect(running.stderr).toMatch(/not stopped/);
  }, 120_000);

  it("clones a snapshot of the running VM and a stopped VM into new VMs with their own identity", async () => {
    const refused = await stack.cli(["vm", "clone", "sv", "sv2"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/--snapshot/);
    await ok(["vm", "snapshot", "create", "sv", "base", "--wait"]);
    await ok(["vm", "clone", "sv", "sv2", "--snapshot", "base", "--start", "--wait"]);
    const [src, clone] = [await stack.cliJson<Vm>(["vm", "show", "sv"]), await stack.cliJson<Vm>(["vm", "show", "sv2"])];
    expect(clone.state).toBe("running");
    expect(clone.hostId).toBe(src.hostId);
    expect(clone.diskBytes).toBe(src.diskBytes);
    expect(clone.nics.map((n) => n.networkName)).toEqual(src.nics.map((n) => n.networkName));
    expect(clone.nics[0]?.mac).not.toBe(src.nics[0]?.mac);
    expect(clone.nics[0]?.ip).not.toBe(src.nics[0]?.ip);
    const cloneShell = await GuestShell.connect(path.join(stack.dir, "host-s", "vms", clone.id, "ttyS1.sock"), { timeoutMs: 90_000 });
    try {
      expect((await cloneShell.run("dd if=/dev/vda bs=1M skip=60 count=1 2>/dev/null | head -c 16")).output.trim()).toBe("DISK-ONE");
      expect((await cloneShell.run("hostname")).output).toBe("sv2");
    } finally {
      cloneShell.close();
    }
    await ok(["vm", "delete", "sv2", "--wait"]); // the test host has room for two 2-vCPU VMs only
    await stop();
    await ok(["vm", "clone", "sv", "sv3", "--wait"]);
    const cold = await stack.cliJson<Vm>(["vm", "show", "sv3"]);
    expect(cold.state).toBe("stopped");
    const { stdout } = await execFileP("qemu-img", ["info", "-U", "-f", "qcow2", "--output=json", path.join(stack.dir, "host-s", "vms", cold.id, "disk.qcow2")]);
    expect((JSON.parse(stdout) as { "backing-filename": string })["backing-filename"]).toBe(await imageFile());
    await ok(["vm", "delete", "sv3", "--wait"]);
  }, 240_000);

  it("never wrote the image under the VM's overlay", async () => {
    expect(await sha256Of(await imageFile())).toBe(imageSha256);
  });
});
