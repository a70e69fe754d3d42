import { execFile } from "node:child_process";
import { appendFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backup, BackupSchedule, Job, Vm } from "@iaas/contracts";
import { eventually, guestImages, Stack } from "./harness.js";
import { GuestShell } from "./guestShell.js";

const execFileP = promisify(execFile);
const MIB = 1024 * 1024;

// Backups of a real busybox guest: live (QMP drive-backup with a persistent dirty bitmap) and
// stopped (qemu-img convert; an incremental through a machine-less QEMU), restored in place and
// into new VMs, verified, pruned, scheduled and cancelled. The guest's root is in RAM, so its disk
// is written with dd at fixed offsets: 16-byte markers the tests read back.
describe("VM backups", () => {
  let stack: Stack;
  let shell: GuestShell | undefined;
  let vm: Vm;
  let imageSha256 = "";
  const store = () => path.join(stack.dir, "store");
  const imageFile = async () => {
    const image = await stack.cliJson<{ id: string }>(["image", "show", "linux"]);
    return path.join(store(), "images", `${image.id}.qcow2`);
  };
  const sha256Of = async (file: string) => (await execFileP("sha256sum", [file])).stdout.split(" ")[0] ?? "";

  beforeAll(async () => {
    const images = await guestImages(["linux"]);
    stack = await Stack.start(["host-b"]);
    const imported = await stack.cli(["image", "import", "linux", "--file", images.linux, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
    const created = await stack.cli(["vm", "create", "bk", "--image", "linux", "--memory", "192M", "--disk", "64M", "--start", "--wait"]);
    expect(created.code, created.stderr).toBe(0);
    vm = await stack.cliJson<Vm>(["vm", "show", "bk"]);
    imageSha256 = await sha256Of(await imageFile());
  }, 300_000);

  afterAll(async () => {
    shell?.close();
    await stack?.stop();
  }, 60_000);

  const disk = () => path.join(stack.dir, "host-b", "vms", vm.id, "disk.qcow2");
  const ok = async (args: string[]) => {
    const r = await stack.cli(args);
    expect(r.code, `iaas ${args.join(" ")}: ${r.stderr}\n${stack.logTail(10)}`).toBe(0);
    return r;
  };
  async function guestOf(id: string): Promise<GuestShell> {
    return GuestShell.connect(path.join(stack.dir, "host-b", "vms", id, "ttyS1.sock"), { timeoutMs: 90_000 });
  }
  async function guest(): Promise<GuestShell> {
    shell ??= await guestOf(vm.id);
    return shell;
  }
  const stop = async () => {
    shell?.close();
    shell = undefined;
    await ok(["vm", "stop", "bk", "--wait"]);
  };
  const start = async () => {
    shell?.close();
    shell = undefined;
    await ok(["vm", "start", "bk", "--wait"]);
  };
  /** Writes a 16-byte marker at `mib` MiB into the guest's disk. */
  const write = async (g: GuestShell, mib: number, text: string) => {
    const r = await g.run(`printf '%-16s' ${text} | dd of=/dev/vda bs=1M seek=${mib} conv=fsync 2>/dev/null; sync; echo written`);
    expect(r.output).toContain("written");
  };
  const read = async (g: GuestShell, mib: number) => (await g.run(`dd if=/dev/vda bs=1M skip=${mib} count=1 2>/dev/null | head -c 16 | tr -d '\\000'`)).output.trim();
  const backupJob = async (args: string[]) => {
    const job = await stack.cliJson<Job>(["vm", "backup", "bk", ...args, "--wait"]);
    expect(job.state, JSON.stringify(job.error)).toBe("succeeded");
    return job.result as { backupId: string; kind: string; live: boolean; bytesCopied: number; sizeBytes: number; pruned: string[] };
  };
  const backups = async () => (await stack.cliJson<{ items: Backup[] }>(["backup", "list", "--vm", "bk"])).items;
  const backupPath = (b: Backup) => path.join(store(), "backups", b.vmId, `${b.id}.qcow2`);
  const identical = async (a: string, b: string) => {
    const r = await execFileP("qemu-img", ["compare", "-U", "-f", "qcow2", "-F", "qcow2", a, b]).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
    return r === 0;
  };

  let full: { backupId: string };
  let incremental: { backupId: string; bytesCopied: number };

  it("backs up the running VM live while it writes, full then incremental, copying only what changed", async () => {
    const g = await guest();
    await write(g, 40, "BEFORE-FULL");
    // Keep the guest writing all through the full backup: the copy is the disk at its start.
    await g.run("(i=0; while [ $i -lt 200 ]; do dd if=/dev/urandom of=/dev/vda bs=64k seek=800 count=8 2>/dev/null; i=$((i+1)); done) & echo started");
    const pid = (await stack.cliJson<Vm>(["vm", "show", "bk"])).pid;
    const f = await backupJob([]);
    expect(f).toMatchObject({ kind: "full", live: true });
    expect(f.bytesCopied).toBe(64 * MIB);
    expect((await stack.cliJson<Vm>(["vm", "show", "bk"])).pid).toBe(pid);
    await g.run("wait; echo done");
    await write(g, 41, "AFTER-FULL");
    const i = await backupJob(["--incremental"]);
    expect(i).toMatchObject({ kind: "incremental", live: true });
    // The change bitmap counts 64 KiB clusters: the marker plus what the loop wrote after the full began.
    expect(i.bytesCopied).toBeGreaterThan(0);
    expect(i.bytesCopied).toBeLessThanOrEqual(1 * MIB);
    full = f;
    incremental = i;
    const list = await backups();
    expect(list.map((b) => [b.id, b.kind, b.state, b.parentId])).toEqual([
      [i.backupId, "incremental", "ready", f.backupId],
      [f.backupId, "full", "ready", null],
    ]);
    const top = list[0] as Backup;
    expect(top.config).toMatchObject({ cpus: 1, memoryBytes: 192 * MIB, diskBytes: 64 * MIB, image: { name: "linux" } });
    expect(top.config.nics.map((n) => n.network)).toEqual(["default"]);
    const { stdout } = await execFileP("qemu-img", ["info", "-f", "qcow2", "--output=json", backupPath(top)]);
    expect((JSON.parse(stdout) as { "backing-filename": string })["backing-filename"]).toBe(`${f.backupId}.qcow2`);
    expect(top.sha256).toBe(await sha256Of(backupPath(top)));
  }, 240_000);

  it("an incremental chain read through compares equal to the disk at backup time", async () => {
    // Nothing writes after the incremental: stopped, the disk is what the backup copied.
    await stop();
    const [top] = await backups();
    expect(await identical(disk(), backupPath(top as Backup))).toBe(true);
  }, 120_000);

  it("backs up a stopped VM: an incremental from the bitmap kept in the disk, then a full with qemu-img convert", async () => {
    const inc = await backupJob(["--incremental"]);
    // Nothing was written since the last incremental: the bitmap is empty.
    expect(inc).toMatchObject({ kind: "incremental", live: false, bytesCopied: 0 });
    const { stdout } = await execFileP("qemu-img", ["info", "-f", "qcow2", "--output=json", disk()]);
    const bitmaps = (JSON.parse(stdout) as { "format-specific": { data: { bitmaps?: { name: string; flags: string[] }[] } } })["format-specific"].data.bitmaps ?? [];
    expect(bitmaps).toEqual([{ name: "iaas-backup", flags: ["auto"], granularity: 65536 }]);
    const cold = await backupJob(["--keep-last", "5"]);
    expect(cold).toMatchObject({ kind: "full", live: false, bytesCopied: 64 * MIB });
    expect(await identical(disk(), backupPath((await backups())[0] as Backup))).toBe(true);
  }, 120_000);

  it("verifies a chain, and finds a file changed in the store", async () => {
    const verified = await stack.cliJson<Job>(["backup", "verify", incremental.backupId, "--wait"]);
    expect(verified.state).toBe("succeeded");
    expect((verified.result as { chain: { id: string }[] }).chain.map((c) => c.id)).toEqual([incremental.backupId, full.backupId]);
    const shown = await stack.cliJson<Backup>(["backup", "show", full.backupId]);
    expect(shown.verifiedAt).not.toBeNull();
    // A byte appended to the full backup breaks its checksum, and the incremental's chain with it.
    const [fullRow] = (await backups()).filter((b) => b.id === full.backupId);
    await appendFile(backupPath(fullRow as Backup), Buffer.from([0]));
    const broken = await stack.cli(["backup", "verify", incremental.backupId, "--wait"]);
    expect(broken.code).toBe(1);
    const failed = await stack.cliJson<Job>(["job", "show", (await stack.cliJson<{ items: Job[] }>(["job", "list", "--type", "backup.verify"])).items[0]?.id ?? ""]);
    expect(failed.error).toMatchObject({ code: "BACKUP_CORRUPT" });
    expect(failed.error?.message).toContain(full.backupId);
    await execFileP("truncate", ["-s", String((fullRow as Backup).sizeBytes), backupPath(fullRow as Backup)]);
    await ok(["backup", "verify", incremental.backupId, "--wait"]);
  }, 120_000);

  it("refuses to delete a backup an incremental builds on", async () => {
    const refused = await stack.cli(["backup", "delete", full.backupId]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(incremental.backupId);
  });

  it("restores a backup in place (stopped VM, snapshots dropped only when asked) and the next backup is full", async () => {
    await start();
    await write(await guest(), 42, "AFTER-BACKUPS");
    await stop();
    await ok(["vm", "snapshot", "create", "bk", "s1", "--wait"]);
    const refused = await stack.cli(["backup", "restore", incremental.backupId, "bk"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/--discard-snapshots/);
    const restored = await stack.cliJson<Job>(["backup", "restore", incremental.backupId, "bk", "--discard-snapshots", "--start", "--wait"]);
    expect(restored.result).toMatchObject({ state: "running", backupId: incremental.backupId });
    expect((await stack.cliJson<{ items: unknown[] }>(["vm", "snapshot", "list", "bk"])).items).toEqual([]);
    const g = await guest();
    expect([await read(g, 40), await read(g, 41), await read(g, 42)]).toEqual(["BEFORE-FULL", "AFTER-FULL", ""]);
    // The restore dropped the change bitmap: an incremental asked for now is a full one.
    const next = await backupJob(["--incremental"]);
    expect(next.kind).toBe("full");
  }, 240_000);

  it("cancels a running backup and leaves no file and no record", async () => {
    const before = await backups();
    const accepted = await stack.cliJson<{ job: Job; backup: Backup }>(["vm", "backup", "bk", "--bwlimit", "1M"]);
    await eventually("the backup to copy, reporting bytes, rate and ETA", async () => {
      const p = (await stack.cliJson<Job>(["job", "show", accepted.job.id])).progress;
      return p?.phase === "copy" && (p.bytesDone ?? 0) > 0 && p.bytesTotal === 64 * MIB && p.rate !== undefined && p.etaSeconds !== undefined;
    }, 60_000, 500);
    await ok(["job", "cancel", accepted.job.id]);
    const done = await eventually("the job to end", async () => {
      const j = await stack.cliJson<Job>(["job", "show", accepted.job.id]);
      return j.state === "running" || j.state === "queued" ? null : j;
    }, 60_000, 500);
    expect(done.state).toBe("cancelled");
    expect((await backups()).map((b) => b.id)).toEqual(before.map((b) => b.id));
    const files = await readdir(path.join(store(), "backups", vm.id));
    expect(files.filter((f) => f.includes(accepted.backup.id))).toEqual([]);
    expect((await stack.cliJson<Vm>(["vm", "show", "bk"])).state).toBe("running");
  }, 120_000);

  it("keeps the last N: the oldest go, and a kept incremental is first made self-contained", async () => {
    // The cancelled full above restarted the change bitmap: the next backup has to be full.
    const f = await backupJob([]);
    await write(await guest(), 43, "RETENTION");
    const before = await backups();
    const a = await backupJob(["--incremental", "--keep-last", "1"]);
    expect(a.kind).toBe("incremental");
    expect(a.pruned.sort()).toEqual(before.map((x) => x.id).sort());
    const [kept, ...rest] = await backups();
    expect(rest).toEqual([]);
    // Its full went, so it was rewritten as a synthetic full, with a new checksum that verifies.
    expect([kept?.id, kept?.kind, kept?.parentId]).toEqual([a.backupId, "full", null]);
    const { stdout } = await execFileP("qemu-img", ["info", "-f", "qcow2", "--output=json", backupPath(kept as Backup)]);
    expect((JSON.parse(stdout) as { "backing-filename"?: string })["backing-filename"]).toBeUndefined();
    expect(await stat(path.join(store(), "backups", vm.id, `${f.backupId}.qcow2`)).then(() => true, () => false)).toBe(false);
    await ok(["backup", "verify", a.backupId, "--wait"]);
    const b = await backupJob(["--keep-last", "1"]);
    expect(b.pruned).toEqual([a.backupId]);
    expect((await backups()).map((x) => x.id)).toEqual([b.backupId]);
  }, 180_000);

  it("runs a schedule on its own, applying its retention", async () => {
    const set = await stack.cliJson<BackupSchedule>(["vm", "backup-schedule", "set", "bk", "--every", "10s", "--keep-last", "2", "--incremental"]);
    expect(set).toMatchObject({ everyMs: 10_000, keepLast: 2, incremental: true });
    expect(set.nextRunAt).not.toBeNull();
    const jobs = await eventually("three scheduled backups", async () => {
      const items = (await stack.cliJson<{ items: Job[] }>(["job", "list", "--type", "vm.backup", "--vm", "bk"])).items.filter((j) => j.payload["scheduleId"] !== undefined && j.state === "succeeded");
      return items.length >= 3 ? items : null;
    }, 90_000, 1000);
    await ok(["vm", "backup-schedule", "remove", "bk"]);
    expect(jobs.every((j) => (j.result as { pruned: string[] }).pruned !== undefined)).toBe(true);
    await eventually("running backups to finish", async () => (await stack.cliJson<{ items: Job[] }>(["job", "list", "--vm", "bk", "--state", "running"])).items.length === 0, 30_000);
    // keep-last 2 with incrementals: exactly the two newest, the older made self-contained.
    const list = await backups();
    expect(list.map((x) => [x.state, x.scheduleId !== null])).toEqual([
      ["ready", true],
      ["ready", true],
    ]);
    expect([list[0]?.kind, list[0]?.parentId, list[1]?.kind, list[1]?.parentId]).toEqual(["incremental", list[1]?.id, "full", null]);
    const shown = await stack.cli(["vm", "backup-schedule", "show", "bk"]);
    expect(shown.code).toBe(3);
  }, 150_000);

  it("clones a snapshot of the running VM onto another host, through the shared store", async () => {
    await stack.startWorker("host-c");
    await write(await guest(), 45, "TO-HOST-C");
    await ok(["vm", "snapshot", "create", "bk", "for-clone", "--wait"]);
    const waited = await ok(["vm", "clone", "bk", "bkc", "--snapshot", "for-clone", "--host", "host-c", "--start", "--wait"]);
    expect(waited.stderr).toMatch(/continued by job/);
    const clone = await stack.cliJson<Vm>(["vm", "show", "bkc"]);
    expect([clone.hostId, clone.state]).toEqual(["host-c", "running"]);
    const jobs = (await stack.cliJson<{ items: Job[] }>(["job", "list", "--vm", "bkc", "--type", "vm.clone"])).items;
    expect(jobs.map((j) => [j.hostId, j.state]).sort()).toEqual([
      ["host-b", "succeeded"],
      ["host-c", "succeeded"],
    ]);
    const gc = await GuestShell.connect(path.join(stack.dir, "host-c", "vms", clone.id, "ttyS1.sock"), { timeoutMs: 90_000 });
    try {
      expect(await read(gc, 45)).toBe("TO-HOST-C");
    } finally {
      gc.close();
    }
    expect(await readdir(path.join(store(), "transfers"))).toEqual([]);
    await ok(["vm", "delete", "bkc", "--wait"]);
    // Going back to a snapshot drops the disk's change bitmap (QEMU refuses to while it is there), so the next backup is full.
    shell?.close();
    shell = undefined;
    await ok(["vm", "snapshot", "restore", "bk", "for-clone", "--restart", "--wait"]);
    expect((await backupJob(["--incremental"])).kind).toBe("full");
    await ok(["vm", "snapshot", "delete", "bk", "for-clone", "--wait"]);
  }, 240_000);

  it("survives the VM's deletion: a new VM from the backup boots with the data; --as-image makes an image", async () => {
    const g = await guest();
    await write(g, 44, "LAST-WORDS");
    const last = await backupJob([]);
    const img = await stack.cliJson<Job>(["vm", "backup", "bk", "--as-image", "bk-image", "--wait"]);
    expect(img.state).toBe("succeeded");
    const oldNic = (await stack.cliJson<Vm>(["vm", "show", "bk"])).nics[0];
    shell?.close();
    shell = undefined;
    await ok(["vm", "delete", "bk", "--wait"]);
    const orphaned = await stack.cliJson<Backup>(["backup", "show", last.backupId]);
    expect(orphaned).toMatchObject({ vmExists: false, vmName: "bk", state: "ready" });
    await ok(["vm", "create", "bk2", "--from-backup", last.backupId, "--start", "--wait"]);
    const bk2 = await stack.cliJson<Vm>(["vm", "show", "bk2"]);
    expect([bk2.cpus, bk2.memoryBytes, bk2.diskBytes]).toEqual([1, 192 * MIB, 64 * MIB]);
    // The old VM is gone, so its MAC and address were free to keep.
    expect([bk2.nics[0]?.mac, bk2.nics[0]?.ip]).toEqual([oldNic?.mac, oldNic?.ip]);
    const g2 = await guestOf(bk2.id);
    try {
      expect([await read(g2, 40), await read(g2, 44)]).toEqual(["BEFORE-FULL", "LAST-WORDS"]);
    } finally {
      g2.close();
    }
    await ok(["vm", "delete", "bk2", "--wait"]);
    await ok(["vm", "create", "bk3", "--image", "bk-image", "--start", "--wait"]);
    const bk3 = await stack.cliJson<Vm>(["vm", "show", "bk3"]);
    const g3 = await guestOf(bk3.id);
    try {
      expect(await read(g3, 44)).toBe("LAST-WORDS");
    } finally {
      g3.close();
    }
    await ok(["vm", "delete", "bk3", "--wait"]);
    await ok(["backup", "delete", last.backupId, "--wait"]);
    expect(await stat(path.join(store(), "backups", vm.id, `${last.backupId}.qcow2`)).then(() => true, () => false)).toBe(false);
  }, 300_000);

  it("never wrote the image under the VM's overlay", async () => {
    expect(await sha256Of(await imageFile())).toBe(imageSha256);
  });
});
