import { randomUUID } from "node:crypto";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { looksLikeUuid } from "@iaas/contracts";
import { createJobRow, finishJobIn, type Vm } from "@iaas/db";
import { isProcessAlive, readCmdline, readPidfile, waitForExit } from "@iaas/hypervisor";
import type { WorkerServices } from "../jobs/HandlerContext.js";

/** One VM directory the cleaner removed. */
export interface OrphanRemoval {
  vmId: string;
  /** Why it went: the VM's row is gone, or it is on another host now. */
  reason: string;
  /** The QEMU that still ran for it and was killed, if any. */
  killedPid: number | null;
}

type RowOf = Pick<Vm, "id" | "name" | "hostId" | "lockJobId" | "state" | "projectId">;

/**
 * Removes what this host keeps of VMs it no longer has: every `IAAS_DATA_DIR/vms/<id>` directory
 * whose VM row is gone (deleted with `--force` while this host was lost) or is on another host
 * (migrated or evacuated away), after killing a QEMU that still runs for it (a host that comes back
 * after being lost may still run the old copy). A VM that a job holds, or that has unfinished jobs
 * on this host, is left for a later pass; the directory of a VM whose row is on this host
 * (`creating` included) is never touched. Each removal is logged; one of a VM that lives on
 * elsewhere is also recorded as a finished `vm.reconcile` job, so `iaas job list --vm NAME`
 * shows it. Networking (bridges, taps, `IAAS_DATA_DIR/net/*`) is HostNetwork.sync's.
 */
export class OrphanCleaner {
  constructor(
    private readonly services: Pick<WorkerServices, "db" | "runtime" | "consoles" | "hostId">,
    private readonly log: Logger,
  ) {}

  /** One pass over the VM directories; answers what it removed. */
  async pass(): Promise<OrphanRemoval[]> {
    const ids = await this.vmDirectories();
    if (ids.length === 0) return [];
    const rows = new Map((await this.rowsOf(ids)).map((r) => [r.id, r]));
    const removed: OrphanRemoval[] = [];
    for (const id of ids) {
      const row = rows.get(id) ?? null;
      if (row !== null && row.hostId === this.services.hostId) continue;
      const done = await this.removeIfOrphan(id);
      if (done) removed.push(done);
    }
    return removed;
  }

  /** The VM ids that have a directory here (other names are not ours to judge, and stay). */
  private async vmDirectories(): Promise<string[]> {
    const root = path.join(this.services.runtime.config.dataDir, "vms");
    const entries = await readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
    return entries.filter((e) => e.isDirectory() && looksLikeUuid(e.name)).map((e) => e.name);
  }

  private rowsOf(ids: string[]): Promise<RowOf[]> {
    return this.services.db.vm.findMany({ where: { id: { in: ids } }, select: { id: true, name: true, hostId: true, lockJobId: true, state: true, projectId: true } });
  }

  /** Judges one directory again against its row (read just now) and removes it when it is an orphan. */
  private async removeIfOrphan(vmId: string): Promise<OrphanRemoval | null> {
    const { db, hostId, runtime } = this.services;
    const [row = null] = await this.rowsOf([vmId]);
    if (row !== null && row.hostId === hostId) return null;
    // A job may be reading this copy (the first stage of a migration), or be about to run here.
    if (row?.lockJobId) return null;
    if ((await db.job.count({ where: { vmId, hostId, state: { in: ["queued", "running"] } } })) > 0) return null;
    const reason = row === null ? "its VM no longer exists" : `VM '${row.name}' is on host '${row.hostId}' now`;
    const killedPid = await this.killQemu(vmId);
    await rm(runtime.files(vmId).dir, { recursive: true, force: true });
    const message = `removed ${runtime.files(vmId).dir}: ${reason}${killedPid !== null ? `; its QEMU (pid ${killedPid}) still ran here and was killed` : ""}`;
    if (row === null) {
      // The API served its console from this stream; nothing feeds it any more.
      await this.services.consoles.forget(vmId);
      this.log.info({ vmId, killedPid }, message);
    } else {
      await this.record(row, message);
      this.log.info({ vmId, vmName: row.name, killedPid }, message);
    }
    return { vmId, reason, killedPid };
  }

  /**
   * Kills the QEMU the VM's pidfile names, if it is alive and really this VM's (its command line
   * is a QEMU with `-uuid <vmId>`); answers its pid, or null when none ran.
   */
  private async killQemu(vmId: string): Promise<number | null> {
    const pid = await readPidfile(this.services.runtime.files(vmId).pidfile).catch((err: unknown) => {
      this.log.warn({ err, vmId }, "unreadable pidfile in an orphaned VM directory; no QEMU is killed for it");
      return null;
    });
    if (pid === null || !(await isQemuOf(pid, vmId))) return null;
    this.log.warn({ vmId, pid }, "a QEMU still runs for a VM this host no longer has; killing it");
    try {
      process.kill(pid, "SIGKILL");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    }
    await waitForExit(pid, { timeoutMs: 10_000, intervalMs: 50 });
    return pid;
  }

  /** A finished `vm.reconcile` job on the VM (which lives on elsewhere), so its job list shows the cleanup. */
  private async record(row: RowOf, reason: string): Promise<void> {
    const { db, hostId } = this.services;
    await db.$transaction(async (tx) => {
      const jobId = randomUUID();
      await createJobRow(tx, jobId, { type: "vm.reconcile", payload: { vmId: row.id, reason }, hostId, vmId: row.id, targetName: row.name, projectId: row.projectId }, {});
      await finishJobIn(tx, jobId, { state: "succeeded", result: { vmId: row.id, state: row.state, previousState: row.state }, message: `host '${hostId}': ${reason}` });
    });
  }
}

/** Whether `pid` is a live QEMU started for VM `vmId` (`-uuid` on its command line). */
export async function isQemuOf(pid: number, vmId: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const argv = await readCmdline(pid);
  if (argv === null || !path.basename(argv[0] ?? "").includes("qemu")) return false;
  const at = argv.indexOf("-uuid");
  return at >= 0 && argv[at + 1]?.toLowerCase() === vmId.toLowerCase();
}
