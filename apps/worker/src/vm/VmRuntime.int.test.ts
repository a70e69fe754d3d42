import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isProcessAlive, QemuImg, resolveQemuUser, run, type QemuUser } from "@iaas/hypervisor";
import { NetRunner } from "../net/NetRunner.js";
import { VmRuntime, type VmRunSpec } from "./VmRuntime.js";

// Real QEMU under TCG, started the way the worker starts VMs. The unprivileged-user cases need root.

const isRoot = process.getuid?.() === 0;
const img = new QemuImg();
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function dataDir(): Promise<string> {
  // Short (socket paths) and, like /var/lib/iaas, searchable by the QEMU user.
  const dir = await mkdtemp("/tmp/vr-");
  await chmod(dir, 0o755);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Object.fromEntries(text.split("\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
}

/** A VM with a fresh 1 MiB qcow2 disk (nothing boots: the firmware idles, which is enough). */
async function vmOn(runtime: VmRuntime, over: Partial<VmRunSpec> = {}): Promise<VmRunSpec> {
  const vm: VmRunSpec = { id: randomUUID(), name: `vr-${randomBytes(3).toString("hex")}`, cpus: 1, memoryBytes: 128 * 1024 * 1024, nics: [], ...over };
  const f = runtime.files(vm.id);
  await mkdir(f.dir, { recursive: true });
  await img.create(f.disk, "qcow2", 1024 * 1024);
  cleanups.push(async () => {
    const pid = await runtime.runningPid(vm);
    if (pid !== null) process.kill(pid, "SIGKILL");
  });
  return vm;
}

const stopNow = (runtime: VmRuntime, vm: VmRunSpec) => runtime.stop(vm, 0, new AbortController().signal, async () => undefined);

describe("VmRuntime: how the worker starts QEMU", () => {
  it("runs QEMU detached under its seccomp sandbox, as the worker's user when it has no QEMU user", async () => {
    const runtime = new VmRuntime({ dataDir: await dataDir(), qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: new NetRunner(undefined) });
    const vm = await vmOn(runtime);
    const pid = await runtime.start(vm, new AbortController().signal);
    expect(await runtime.runningPid(vm)).toBe(pid);
    const status = await procStatus(pid);
    expect(status["Seccomp"]).toBe("2");
    expect(status["Uid"]?.split(/\s+/)[0]).toBe(String(process.getuid?.()));
    expect(runtime.qemuUser).toBeUndefined();
    expect(await stopNow(runtime, vm)).toEqual({ forced: true });
    expect(await isProcessAlive(pid)).toBe(false);
  }, 60_000);

  it.skipIf(!isRoot)("drops a root worker's QEMU to IAAS_QEMU_USER, giving that user the VM's directory and disk", async () => {
    const nobody = await resolveQemuUser("nobody");
    const runtime = new VmRuntime({ dataDir: await dataDir(), qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: new NetRunner(undefined), qemuUser: nobody });
    const vm = await vmOn(runtime, { nics: [{ type: "user", restrict: true }] });
    const f = runtime.files(vm.id);
    const pid = await runtime.start(vm, new AbortController().signal);
    const status = await procStatus(pid);
    expect(status["Seccomp"]).toBe("2");
    expect(status["Uid"]?.split(/\s+/)).toEqual(Array(4).fill(String(nobody.uid)));
    expect(status["CapEff"]).toBe("0000000000000000");
    for (const file of [f.dir, f.disk, f.pidfile, f.qmpSocket]) expect((await stat(file)).uid, file).toBe(nobody.uid);
    // The worker (root) still drives it over QMP and stops it.
    expect(await runtime.qmp(vm.id, (q) => q.queryStatus())).toMatchObject({ running: true });
    expect(await stopNow(runtime, vm)).toEqual({ forced: true });
    expect(await isProcessAlive(pid)).toBe(false);
  }, 60_000);

  it.skipIf(!isRoot)("lends a block job target to the QEMU user, with searchable directories, and takes it back", async () => {
    const nobody = await resolveQemuUser("nobody");
    const root = await dataDir();
    const runtime = new VmRuntime({ dataDir: root, qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: new NetRunner(undefined), qemuUser: nobody });
    const store = path.join(root, "store");
    const target = path.join(store, "backups", "vm-1", "b.qcow2.part");
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await chmod(store, 0o700);
    await writeFile(target, "");
    await runtime.giveToQemu(target, store);
    expect((await stat(target)).uid).toBe(nobody.uid);
    for (const dir of [store, path.join(store, "backups"), path.dirname(target)]) expect((await stat(dir)).mode & 0o777, dir).toBe(0o701);
    // Now nobody can open it by path, as QEMU's drive-backup does.
    expect((await run(["setpriv", `--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, "--clear-groups", "--", "test", "-w", target], { allowExitCodes: [1] })).code).toBe(0);
    await runtime.takeFromQemu(target);
    expect((await stat(target)).uid).toBe(0);
    await expect(runtime.giveToQemu("/etc/passwd", store)).rejects.toThrow(/not under/);
  });

  it.skipIf(!isRoot)("keeps a VM with tap NICs as the worker's user, saying why, when the QEMU user cannot open the tun device", async () => {
    const ns = `vrt-${randomBytes(3).toString("hex")}`;
    const added = await run(["ip", "netns", "add", ns]).then(
      () => true,
      () => false,
    );
    if (!added) return; // no network namespaces here: nothing to show
    cleanups.push(() => run(["ip", "netns", "del", ns]));
    const root = await dataDir();
    // A tun device only root may open (as some containers have /dev/net/tun).
    const tun = path.join(root, "tun-root-only");
    await writeFile(tun, "", { mode: 0o600 });
    const nobody: QemuUser = await resolveQemuUser("nobody");
    const runtime = new VmRuntime({ dataDir: root, qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: new NetRunner(ns), qemuUser: nobody, tunDevice: tun });
    // QEMU (root) makes the tap itself when it is missing, inside the throw-away namespace.
    const vm = await vmOn(runtime, { nics: [{ type: "tap", ifname: "vrtap0", mac: "52:54:00:12:34:56" }] });
    const notes: string[] = [];
    const pid = await runtime.start(vm, new AbortController().signal, async (text) => void notes.push(text));
    expect((await procStatus(pid))["Uid"]?.split(/\s+/)[0]).toBe("0");
    expect((await procStatus(pid))["Seccomp"]).toBe("2");
    expect(notes.join("\n")).toMatch(/QEMU runs as the worker's user, not 'nobody'.*cannot open .*tun-root-only/);
    await stopNow(runtime, vm);
  }, 60_000);
});
