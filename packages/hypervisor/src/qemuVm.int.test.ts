import { randomUUID } from "node:crypto";
import { chmod, chown, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { launchQemu } from "./launchQemu.js";
import { buildQemuArgv, type VmLaunchSpec } from "./qemuArgv.js";
import { resolveQemuUser, runAsArgv, type QemuUser } from "./qemuUser.js";
import { QmpClient, type QmpEvent } from "./qmpClient.js";
import { QemuImg } from "./qemuImg.js";
import { isProcessAlive, isQemuProcess, readPidfile, waitForExit } from "./process.js";

// Real QEMU under TCG. Each test gets its own short temp dir (unix socket paths must be < 108 bytes).

const img = new QemuImg();
const dirs: string[] = [];
const pids: number[] = [];
const clients: QmpClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const pid of pids.splice(0)) {
    try {
      if (await isProcessAlive(pid)) process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "iv-"));
  dirs.push(d);
  return d;
}

function launchSpec(dir: string, over: Partial<VmLaunchSpec> = {}): VmLaunchSpec {
  return {
    name: "t1",
    uuid: randomUUID(),
    cpus: 1,
    memoryBytes: 128 * 1024 * 1024,
    accelerator: "tcg",
    diskPath: join(dir, "disk.qcow2"),
    nics: [{ type: "user", restrict: true }],
    pidfile: join(dir, "qemu.pid"),
    qmpSocket: join(dir, "qmp.sock"),
    serialLog: join(dir, "serial.log"),
    ...over,
  };
}

/** Launches QEMU detached (as `user` when given) and returns its pid once it answers on QMP. */
async function launch(spec: VmLaunchSpec, user?: QemuUser): Promise<number> {
  const argv = [...(user !== undefined ? runAsArgv(user) : []), ...buildQemuArgv(spec)];
  const pid = await launchQemu(argv, { pidfile: spec.pidfile, qmpSocket: spec.qmpSocket, logFile: join(dirname(spec.pidfile), "qemu.log"), timeoutMs: 15_000 });
  pids.push(pid);
  return pid;
}

/** The `Key:` lines of /proc/PID/status. */
async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Object.fromEntries(text.split("\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
}

/** The session id of a process (field 6 of /proc/PID/stat). */
async function sessionOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

const isRoot = process.getuid?.() === 0;

async function connect(path: string): Promise<QmpClient> {
  const c = await QmpClient.connect(path, { timeoutMs: 5000 });
  clients.push(c);
  return c;
}

const MARKER = "IAAS-BOOT-OK";

/**
 * A 512-byte MBR whose real-mode code writes MARKER to COM1 (polling the line status register at
 * 0x3fd until the transmitter is empty, then writing 0x3f8) and halts.
 */
function bootSector(): Buffer {
  const code = [
    0xfa, //             cli
    0x31, 0xc0, //       xor ax, ax
    0x8e, 0xd8, //       mov ds, ax
    0xbe, 0x24, 0x7c, // mov si, 0x7c24 (msg)
    0xfc, //             cld
    // next (0x09):
    0xac, //             lodsb
    0x84, 0xc0, //       test al, al
    0x74, 0x12, //       jz done (0x20)
    0x88, 0xc3, //       mov bl, al
    // wait (0x10):
    0xba, 0xfd, 0x03, // mov dx, 0x3fd
    0xec, //             in al, dx
    0xa8, 0x20, //       test al, 0x20 (THR empty)
    0x74, 0xf8, //       jz wait
    0xba, 0xf8, 0x03, // mov dx, 0x3f8
    0x88, 0xd8, //       mov al, bl
    0xee, //             out dx, al
    0xeb, 0xe9, //       jmp next
    // done (0x20):
    0xfa, //             cli
    0xf4, //             hlt
    0xeb, 0xfc, //       jmp done
  ];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  Buffer.from(`${MARKER}\r\n\0`, "latin1").copy(sector, 0x24);
  sector.writeUInt16LE(0xaa55, 510);
  return sector;
}

/** The boot sector padded to 1 MiB (SeaBIOS ignores virtio disks of 128 KiB or less). */
async function bootableRawDisk(path: string): Promise<void> {
  const disk = Buffer.alloc(1024 * 1024);
  bootSector().copy(disk, 0);
  await writeFile(path, disk);
}

async function waitForSerial(path: string, text: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let content = "";
  while (Date.now() < deadline) {
    content = await readFile(path, "latin1").catch(() => "");
    if (content.includes(text)) return content;
    await sleep(50);
  }
  throw new Error(`'${text}' did not appear in ${path} within ${timeoutMs} ms; it holds: ${JSON.stringify(content)}`);
}

describe("a QEMU VM launched from buildQemuArgv (TCG)", () => {
  it("runs detached, answers QMP, resets, and quits cleanly removing its pidfile", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const spec = launchSpec(dir);
    await img.create(spec.diskPath, "qcow2", 1024 * 1024);

    const pid = await launch(spec);
    expect(await readPidfile(spec.pidfile)).toBe(pid);
    // Its own session, as -daemonize gave it: the worker's process group and terminal are not its.
    expect(await sessionOf(pid)).toBe(pid);
    expect(await isQemuProcess(pid, spec.name)).toBe(true);
    expect(await isQemuProcess(pid, "some-other-vm")).toBe(false);

    const qmp = await connect(spec.qmpSocket);
    expect(await qmp.queryStatus()).toMatchObject({ status: "running", running: true });

    // The running VM holds a write lock: info needs -U (allowShared).
    await expect(img.info(spec.diskPath, "qcow2")).rejects.toThrow(/lock/);
    expect((await img.info(spec.diskPath, "qcow2", { allowShared: true })).virtualSize).toBe(1024 * 1024);

    const events: QmpEvent[] = [];
    qmp.on("event", (e) => events.push(e));
    const reset = qmp.waitForEvent("RESET", 5000);
    await qmp.execute("system_reset");
    expect((await reset).data).toMatchObject({ guest: false });

    const shutdown = qmp.waitForEvent("SHUTDOWN", 5000);
    const closed = new Promise<void>((r) => qmp.once("close", () => r()));
    await qmp.execute("quit");
    expect((await shutdown).data).toMatchObject({ guest: false, reason: "host-qmp-quit" });
    await closed;
    await waitForExit(pid, { timeoutMs: 10_000 });
    expect(await readPidfile(spec.pidfile)).toBeNull();
    await expect(stat(spec.qmpSocket)).rejects.toThrow(/ENOENT/);
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(["RESET", "SHUTDOWN"]));
  });

  it.each([
    ["q35", "qcow2"],
    ["pc", "raw"],
  ] as const)("boots a boot sector from the virtio-blk disk on %s (%s) and writes the marker to the serial log", { timeout: 30_000 }, async (machine, format) => {
    const dir = await tempDir();
    const raw = join(dir, "boot.raw");
    await bootableRawDisk(raw);
    let diskPath = raw;
    if (format === "qcow2") {
      diskPath = join(dir, "boot.qcow2");
      await img.convert(raw, "raw", diskPath, "qcow2");
    }
    const spec = launchSpec(dir, { machine, diskPath, diskFormat: format, nics: [] });
    const pid = await launch(spec);
    const serial = await waitForSerial(spec.serialLog, MARKER, 15_000);
    expect(serial).toContain(`${MARKER}\r\n`);
    const qmp = await connect(spec.qmpSocket);
    await qmp.execute("quit");
    await waitForExit(pid, { timeoutMs: 10_000 });
  });

  it("keeps paths with commas intact (escaped in -chardev and -drive)", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const diskPath = join(dir, "d,x.raw");
    await bootableRawDisk(diskPath);
    const spec = launchSpec(dir, {
      name: "a,b",
      diskPath,
      diskFormat: "raw",
      serialLog: join(dir, "s,1.log"),
      qmpSocket: join(dir, "q,1.sock"),
      pidfile: join(dir, "p,1.pid"),
      nics: [],
    });
    const pid = await launch(spec);
    await waitForSerial(spec.serialLog, MARKER, 15_000);
    expect(await isQemuProcess(pid, "a,b")).toBe(true);
    const qmp = await connect(spec.qmpSocket);
    expect((await qmp.queryStatus()).running).toBe(true);
    await qmp.execute("quit");
    await waitForExit(pid, { timeoutMs: 10_000 });
  });

  it("fails with QEMU's message, leaving no process, when the disk is missing", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const spec = launchSpec(dir, { diskPath: join(dir, "missing.qcow2") });
    const err = await launchQemu(buildQemuArgv(spec), { pidfile: spec.pidfile, qmpSocket: spec.qmpSocket, logFile: join(dir, "qemu.log"), timeoutMs: 15_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).code).toBe("QEMU_FAILED");
    expect((err as IaasError).message).toMatch(/exited with code 1: .*missing\.qcow2/);
    expect(await readPidfile(spec.pidfile)).toBeNull();
  });

  it("says a program that cannot be run cannot be run", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const spec = launchSpec(dir, { binary: "/nonexistent/qemu-system-x86_64" });
    await expect(launchQemu(buildQemuArgv(spec), { pidfile: spec.pidfile, qmpSocket: spec.qmpSocket, logFile: join(dir, "qemu.log") })).rejects.toThrow(
      /cannot run \/nonexistent\/qemu-system-x86_64: .*ENOENT/,
    );
  });

  it("rejects QMP commands QEMU does not know with QEMU's description", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const spec = launchSpec(dir, { nics: [] });
    await img.create(spec.diskPath, "qcow2", 1024 * 1024);
    const pid = await launch(spec);
    const qmp = await connect(spec.qmpSocket);
    const err = await qmp.execute("no-such-command").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).message).toContain("no-such-command");
    await qmp.execute("quit");
    await waitForExit(pid, { timeoutMs: 10_000 });
  });
});

describe("QEMU's confinement", () => {
  it("runs under QEMU's seccomp sandbox (filter mode), with PATH as its whole environment", { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const spec = launchSpec(dir, { nics: [] });
    await img.create(spec.diskPath, "qcow2", 1024 * 1024);
    const pid = await launch(spec);
    const status = await procStatus(pid);
    // 2 = SECCOMP_MODE_FILTER; 0 without -sandbox.
    expect(status["Seccomp"]).toBe("2");
    expect(Number(status["Seccomp_filters"])).toBeGreaterThan(0);
    // The environment is PATH only: nothing of the worker's (its database URL, say) is inherited.
    const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0").filter((e) => e !== "");
    expect(environ.map((e) => e.slice(0, e.indexOf("=")))).toEqual(["PATH"]);
    const qmp = await connect(spec.qmpSocket);
    expect((await qmp.queryStatus()).running).toBe(true);
    await qmp.execute("quit");
    await waitForExit(pid, { timeoutMs: 10_000 });
  });

  it.skipIf(!isRoot)("drops from root to an unprivileged user, with no capabilities, before QEMU runs", { timeout: 30_000 }, async () => {
    const nobody = await resolveQemuUser("nobody");
    const dir = await tempDir();
    const raw = join(dir, "boot.raw");
    await bootableRawDisk(raw);
    // What the worker does at VM start: the VM's directory and disk become the QEMU user's.
    for (const path of [dir, raw]) await chown(path, nobody.uid, nobody.gid);
    const spec = launchSpec(dir, { diskPath: raw, diskFormat: "raw", nics: [] });
    const pid = await launch(spec, nobody);
    const status = await procStatus(pid);
    expect(status["Uid"]?.split(/\s+/)).toEqual(Array(4).fill(String(nobody.uid)));
    expect(status["Gid"]?.split(/\s+/)).toEqual(Array(4).fill(String(nobody.gid)));
    expect(status["CapEff"]).toBe("0000000000000000");
    expect(status["CapBnd"]).toBe("0000000000000000");
    expect(status["NoNewPrivs"]).toBe("1");
    expect(status["Seccomp"]).toBe("2");
    // It opened its disk, serial log, pidfile and QMP socket as that user; root still reaches QMP.
    await waitForSerial(spec.serialLog, MARKER, 15_000);
    expect((await stat(spec.serialLog)).uid).toBe(nobody.uid);
    expect((await stat(spec.qmpSocket)).uid).toBe(nobody.uid);
    const qmp = await connect(spec.qmpSocket);
    expect((await qmp.queryStatus()).running).toBe(true);
    await qmp.execute("quit");
    await waitForExit(pid, { timeoutMs: 10_000 });
  });

  it.skipIf(!isRoot)("cannot open what its user may not: a disk only root may read stops it with QEMU's message", { timeout: 30_000 }, async () => {
    const nobody = await resolveQemuUser("nobody");
    const dir = await tempDir();
    await chown(dir, nobody.uid, nobody.gid);
    const spec = launchSpec(dir, { nics: [] });
    await img.create(spec.diskPath, "qcow2", 1024 * 1024);
    await chown(spec.diskPath, 0, 0);
    await chmod(spec.diskPath, 0o600);
    await expect(launch(spec, nobody)).rejects.toThrow(/Permission denied/);
  });
});
