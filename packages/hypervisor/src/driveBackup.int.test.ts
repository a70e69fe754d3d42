import { chown, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { BACKUP_BITMAP, dirtyBitmaps, runDriveBackup, withBlockNode } from "./driveBackup.js";
import type { QmpClient } from "./qmpClient.js";
import { QemuImg } from "./qemuImg.js";
import { resolveQemuUser } from "./qemuUser.js";
import { run } from "./run.js";

// Real QEMU: drive-backup with a persistent dirty bitmap in a machine-less QEMU, as the worker
// backs up a stopped VM's disk. Guest writes are made with the monitor's qemu-io.

const img = new QemuImg();
const NODE = "fmt-disk0";
const MIB = 1024 * 1024;
const dirs: string[] = [];

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function disk(): Promise<{ dir: string; disk: string; sock: string }> {
  const dir = await mkdtemp(join(tmpdir(), "db-"));
  dirs.push(dir);
  const file = join(dir, "disk.qcow2");
  await img.create(file, "qcow2", 32 * MIB);
  await run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", file]);
  return { dir, disk: file, sock: join(dir, "q.sock") };
}

const qemuIo = (q: QmpClient, cmd: string) => q.execute("human-monitor-command", { "command-line": `qemu-io ${NODE} "${cmd}"` });
const identical = async (a: string, b: string) => (await run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", a, b], { allowExitCodes: [1] })).code === 0;

/** The pid of the process whose command line holds `arg`, and the `Key:` lines of its /proc status. */
async function processWithArg(arg: string): Promise<{ pid: number; status: Record<string, string> }> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.split("\0").some((a) => a.includes(arg)) || !cmdline.includes("qemu-system")) continue;
    const text = await readFile(`/proc/${entry}/status`, "utf8");
    const status = Object.fromEntries(text.split("\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
    return { pid: Number(entry), status };
  }
  throw new Error(`no QEMU process with '${arg}' in its command line`);
}

const isRoot = process.getuid?.() === 0;

describe("drive-backup with a persistent dirty bitmap", () => {
  it("confines the machine-less QEMU like a VM's: seccomp sandbox, and the unprivileged user given (as root)", async () => {
    const d = await disk();
    const user = isRoot ? await resolveQemuUser("nobody") : undefined;
    const target = join(d.dir, "full.qcow2");
    // As the worker does: the disk and its directory (for the QMP socket) are the QEMU user's, and so is the target it opens.
    if (user !== undefined) for (const path of [d.dir, d.disk]) await chown(path, user.uid, user.gid);
    const bytes = await withBlockNode({ binary: "qemu-system-x86_64", disk: d.disk, qmpSocket: d.sock, node: NODE, user }, async (q) => {
      const { status } = await processWithArg(d.sock);
      expect(status["Seccomp"]).toBe("2");
      if (user !== undefined) {
        expect(status["Uid"]?.split(/\s+/)).toEqual(Array(4).fill(String(user.uid)));
        expect(status["CapEff"]).toBe("0000000000000000");
      }
      await img.create(target, "qcow2", 32 * MIB);
      if (user !== undefined) await chown(target, user.uid, user.gid);
      return (await runDriveBackup(q, { node: NODE, target, sync: { mode: "full", bitmap: "add" } })).bytes;
    });
    expect(bytes).toBe(32 * MIB);
    expect(await identical(d.disk, target)).toBe(true);
    // The unprivileged QEMU wrote the bitmap back into the disk on quit.
    expect((await img.info(d.disk, "qcow2")).bitmaps).toEqual([{ name: BACKUP_BITMAP, flags: ["auto"] }]);
  }, 60_000);

  it("copies the whole disk in a full backup, then only the clusters written since in an incremental on it", async () => {
    const d = await disk();
    const full = join(d.dir, "full.qcow2");
    const inc = join(d.dir, "inc.qcow2");
    const progress: number[] = [];
    const copied = await withBlockNode({ binary: "qemu-system-x86_64", disk: d.disk, qmpSocket: d.sock, node: NODE }, async (q) => {
      await img.create(full, "qcow2", 32 * MIB);
      const f = await runDriveBackup(q, { node: NODE, target: full, sync: { mode: "full", bitmap: "add" }, onProgress: (done) => progress.push(done) });
      await qemuIo(q, "write -P 0x22 8M 1M");
      const [bitmap] = await dirtyBitmaps(q, NODE);
      expect(bitmap).toMatchObject({ name: BACKUP_BITMAP, persistent: true, recording: true, inconsistent: false, count: MIB });
      await img.createOnSibling(inc, "full.qcow2", 32 * MIB);
      const i = await runDriveBackup(q, { node: NODE, target: inc, sync: { mode: "incremental" } });
      // on-success: the copied clusters are no longer dirty.
      expect((await dirtyBitmaps(q, NODE))[0]?.count).toBe(0);
      return [f.bytes, i.bytes];
    });
    expect(copied).toEqual([32 * MIB, MIB]);
    expect(progress.at(-1)).toBe(32 * MIB);
    expect(await identical(d.disk, inc)).toBe(true);
    expect(await identical(d.disk, full)).toBe(false);
    // quit wrote the bitmap back into the qcow2, consistent (no in-use flag).
    expect((await img.info(d.disk, "qcow2")).bitmaps).toEqual([{ name: BACKUP_BITMAP, flags: ["auto"] }]);
    expect((await img.info(inc, "qcow2")).backingFilename).toBe("full.qcow2");
  }, 60_000);

  it("cancels the block job when aborted, throwing the abort's reason", async () => {
    const d = await disk();
    const target = join(d.dir, "slow.qcow2");
    const controller = new AbortController();
    const reason = new IaasError("JOB_CANCELLED", "cancelled by the test");
    const outcome = await withBlockNode({ binary: "qemu-system-x86_64", disk: d.disk, qmpSocket: d.sock, node: NODE }, async (q) => {
      await img.create(target, "qcow2", 32 * MIB);
      setTimeout(() => controller.abort(reason), 300);
      // 256 KiB/s: 32 MiB would take two minutes.
      return runDriveBackup(q, { node: NODE, target, sync: { mode: "full", bitmap: "none" }, speed: 256 * 1024, signal: controller.signal }).catch((err: unknown) => err);
    });
    expect(outcome).toBe(reason);
    expect(await stat(target).then(() => true)).toBe(true);
  }, 60_000);

  it("says what is wrong when QEMU cannot open the disk", async () => {
    const d = await disk();
    await expect(withBlockNode({ binary: "qemu-system-x86_64", disk: join(d.dir, "missing.qcow2"), qmpSocket: d.sock, node: NODE }, async () => 1)).rejects.toThrow(
      /QEMU could not open the disk: .*missing\.qcow2/,
    );
  }, 30_000);
});
