import { IaasError, sameSnapshotMachine, snapshotMachineOf, type SnapshotMachine } from "@iaas/contracts";
import type { Snapshot, Vm } from "@iaas/db";
import { runQmpJob } from "@iaas/hypervisor";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { dropBackupBitmap } from "./vmBackup.js";
import { startVm } from "./vmPower.js";
import { loadVm, setVmState, settleVm } from "./vmState.js";

type SnapJob = "vm.snapshot.create" | "vm.snapshot.restore" | "vm.snapshot.delete";

/** The VM's disk as QEMU names it (`-drive … node-name=fmt-disk0`): every snapshot command names it. */
const DISK_NODE = "fmt-disk0";
const QMP_JOB_TIMEOUT_MS = 20 * 60_000;

async function load(ctx: HandlerContext<SnapJob>): Promise<{ vm: Vm; snap: Snapshot }> {
  const vm = await loadVm(ctx);
  if (!vm) throw new IaasError("NOT_FOUND", `VM ${ctx.payload.vmId} no longer exists`, { hint: "run `iaas vm list`" });
  const snap = await ctx.db.snapshot.findUnique({ where: { id: ctx.payload.snapshotId } });
  if (!snap) throw new IaasError("NOT_FOUND", `snapshot ${ctx.payload.snapshotId} no longer exists`, { hint: `see \`iaas vm snapshot list ${vm.name}\`` });
  return { vm, snap };
}

/** The snapshot's entry in the overlay (qemu-img info -U works while QEMU holds it). */
async function imageSnapshot(ctx: HandlerContext<SnapJob>, vm: Vm, name: string) {
  const info = await ctx.qemuImg.info(ctx.runtime.files(vm.id).disk, "qcow2", { allowShared: true });
  return info.snapshots.find((s) => s.name === name) ?? null;
}

/** What a memory snapshot can be loaded into: this machine type, CPUs, memory and NICs. */
async function machineOf(ctx: HandlerContext<SnapJob>, vm: Vm): Promise<SnapshotMachine> {
  const nics = await ctx.db.nic.findMany({ where: { vmId: vm.id }, orderBy: { index: "asc" }, select: { mac: true } });
  return snapshotMachineOf(vm, nics.map((n) => n.mac));
}

/**
 * Takes an internal snapshot of the VM's overlay: `qemu-img snapshot -c` when it is stopped, QMP
 * `blockdev-snapshot-internal-sync` (disk only) or `snapshot-save` (with RAM and device state, a
 * short pause) while it runs. A redelivered job finds the tag made already and does not make it twice.
 */
export const vmSnapshotCreate: JobHandler<"vm.snapshot.create"> = {
  async run(ctx) {
    const { vm, snap } = await load(ctx);
    const done = { vmId: vm.id, snapshotId: snap.id, name: snap.name };
    if (snap.state === "ready") return done;
    const pid = await ctx.runtime.runningPid(vm);
    if ((await imageSnapshot(ctx, vm, snap.name)) === null) {
      if (pid === null) {
        if (snap.kind === "memory") {
          throw new IaasError("INVALID_STATE", `VM '${vm.name}' stopped before its memory could be saved`, { hint: "take a disk snapshot, or start the VM first" });
        }
        await ctx.progress({ phase: "snapshot", percent: 30, message: `qemu-img snapshot -c ${snap.name}` });
        await ctx.qemuImg.snapshot("create", ctx.runtime.files(vm.id).disk, snap.name);
      } else if (snap.kind === "disk") {
        await ctx.progress({ phase: "snapshot", percent: 30, message: "disk snapshot of the running VM" });
        await ctx.runtime.qmp(vm.id, (q) => q.execute("blockdev-snapshot-internal-sync", { device: DISK_NODE, name: snap.name }));
      } else {
        await ctx.progress({ phase: "snapshot", percent: 30, message: "saving RAM and device state (the VM pauses briefly)" });
        await ctx.runtime.qmp(vm.id, (q) => runQmpJob(q, "snapshot-save", { tag: snap.name, vmstate: DISK_NODE, devices: [DISK_NODE] }, QMP_JOB_TIMEOUT_MS));
      }
    }
    const entry = await imageSnapshot(ctx, vm, snap.name);
    if (!entry) throw new IaasError("QEMU_FAILED", `snapshot '${snap.name}' is not in the disk after it was taken`, { hint: "retry; the worker log has details" });
    await ctx.db.snapshot.update({
      where: { id: snap.id },
      data: { state: "ready", sizeBytes: BigInt(entry.vmStateSize), ...(snap.kind === "memory" ? { machine: await machineOf(ctx, vm) } : {}) },
    });
    return done;
  },
  async settle(ctx, error) {
    // A snapshot that was not taken leaves no record; a tag made halfway is removed with it.
    const snap = await ctx.db.snapshot.findUnique({ where: { id: ctx.payload.snapshotId } });
    const vm = await loadVm(ctx);
    if (snap && snap.state !== "ready" && vm) {
      // Said in the job's events, not thrown: the job's own error is the one to report.
      const partial = await imageSnapshot(ctx, vm, snap.name).catch(async (err: unknown) => {
        await ctx.note(`could not check the disk for a partial snapshot '${snap.name}': ${(err as Error).message}`, "warn");
        return null;
      });
      if (partial) await removeTag(ctx, vm, snap.name).catch((err: unknown) => ctx.note(`could not remove the partial snapshot: ${(err as Error).message}`, "warn"));
    }
    if (snap && snap.state !== "ready") await ctx.db.snapshot.delete({ where: { id: snap.id } });
    await settleVm(ctx, error);
  },
  describe: (r) => `snapshot '${r.name}' taken`,
};

async function removeTag(ctx: HandlerContext<SnapJob>, vm: Vm, name: string): Promise<void> {
  if ((await ctx.runtime.runningPid(vm)) === null) await ctx.qemuImg.snapshot("delete", ctx.runtime.files(vm.id).disk, name);
  else await ctx.runtime.qmp(vm.id, (q) => q.execute("blockdev-snapshot-delete-internal-sync", { device: DISK_NODE, name }));
}

/**
 * Goes back to a snapshot. Disk only: the VM must be stopped (or is stopped and started again with
 * `restart`), then `qemu-img snapshot -a`. With memory: `snapshot-load` into the running VM, or a
 * start with `-loadvm`, so the VM is running at that instant again.
 */
export const vmSnapshotRestore: JobHandler<"vm.snapshot.restore"> = {
  async run(ctx) {
    const { vm, snap } = await load(ctx);
    if (snap.state !== "ready") throw new IaasError("INVALID_STATE", `snapshot '${snap.name}' is ${snap.state}`, { hint: "wait for its job to finish" });
    if ((await imageSnapshot(ctx, vm, snap.name)) === null) {
      throw new IaasError("NOT_FOUND", `snapshot '${snap.name}' is missing from VM '${vm.name}''s disk`, { hint: `delete its record: \`iaas vm snapshot delete ${vm.name} ${snap.name}\`` });
    }
    const done = (state: "running" | "stopped") => ({ vmId: vm.id, snapshotId: snap.id, name: snap.name, state });
    let pid = await ctx.runtime.runningPid(vm);
    // QEMU refuses to go back to a snapshot while the disk has a dirty bitmap; the disk's content
    // changes anyway, so the change count is void: the VM's next backup is full.
    await dropBackupBitmap(ctx, vm, pid !== null);
    if (snap.kind === "memory") {
      if (!sameSnapshotMachine(snap.machine, await machineOf(ctx, vm))) {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' changed since memory snapshot '${snap.name}' (CPUs, memory or NICs): its saved state cannot be loaded`, {
          hint: "restore a disk-only snapshot instead, or put the VM's configuration back",
        });
      }
      if (pid !== null) {
        await ctx.progress({ phase: "restore", percent: 40, message: "loading RAM and device state" });
        await ctx.runtime.qmp(vm.id, async (q) => {
          await runQmpJob(q, "snapshot-load", { tag: snap.name, vmstate: DISK_NODE, devices: [DISK_NODE] }, QMP_JOB_TIMEOUT_MS);
          if (!(await q.queryStatus()).running) await q.execute("cont");
        });
        return done("running");
      }
      await ctx.progress({ phase: "restore", percent: 20, message: "starting the VM from its saved state (-loadvm)" });
      await startVm(ctx, vm, 30, { loadvm: snap.name });
      return done("running");
    }
    const restart = ctx.payload.restart && pid !== null;
    if (pid !== null) {
      if (!ctx.payload.restart) {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' is running: a disk-only snapshot is restored on a stopped VM`, {
          hint: `stop it first, or pass --restart: \`iaas vm snapshot restore ${vm.name} ${snap.name} --restart\``,
        });
      }
      await setVmState(ctx, "stopping");
      await ctx.progress({ phase: "stop", percent: 20, message: "stopping the VM (its disk is about to be replaced)" });
      await ctx.runtime.stop(vm, 0, ctx.signal, async () => undefined);
      await setVmState(ctx, "stopped", { pid: null });
      pid = null;
    }
    await ctx.progress({ phase: "restore", percent: 50, message: `qemu-img snapshot -a ${snap.name}` });
    await ctx.qemuImg.snapshot("apply", ctx.runtime.files(vm.id).disk, snap.name);
    if (restart) {
      await startVm(ctx, vm, 70);
      return done("running");
    }
    return done("stopped");
  },
  settle: settleVm,
  describe: (r) => `VM back at snapshot '${r.name}' (${r.state})`,
};

export const vmSnapshotDelete: JobHandler<"vm.snapshot.delete"> = {
  async run(ctx) {
    const { vm, snap } = await load(ctx);
    if ((await imageSnapshot(ctx, vm, snap.name)) !== null) {
      await ctx.progress({ phase: "delete", percent: 50, message: `removing snapshot '${snap.name}' from the disk` });
      await removeTag(ctx, vm, snap.name);
    }
    await ctx.db.snapshot.delete({ where: { id: snap.id } });
    return { vmId: vm.id, snapshotId: snap.id, name: snap.name };
  },
  async settle(ctx, error) {
    await ctx.db.snapshot.updateMany({ where: { id: ctx.payload.snapshotId, state: "deleting" }, data: { state: "ready" } });
    await settleVm(ctx, error);
  },
  describe: (r) => `snapshot '${r.name}' deleted`,
};
