import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import { IaasError } from "@iaas/contracts";
import { QEMU_SANDBOX } from "./qemuArgv.js";
import { runAsArgv, type QemuUser } from "./qemuUser.js";
import { QmpClient, type QmpEvent } from "./qmpClient.js";

/** Name of the persistent dirty bitmap that counts a VM disk's changes since its last backup. */
export const BACKUP_BITMAP = "iaas-backup";

/** A dirty bitmap of a block node, as `query-named-block-nodes` reports it. */
export interface DirtyBitmap {
  name: string;
  persistent: boolean;
  recording: boolean;
  /** Set when QEMU did not close the image cleanly: the bitmap cannot be trusted (nor cleared). */
  inconsistent: boolean;
  /** Dirty bytes. */
  count: number;
}

export interface DriveBackupOptions {
  /** The disk's format node (the VM's `fmt-disk0`). */
  node: string;
  /** An existing qcow2 of the disk's size: empty for a full backup, on its parent for an incremental. */
  target: string;
  /**
   * full: copy everything and, in the same transaction, start the bitmap anew (`add` it, or `clear`
   * the one there), so it counts changes from this exact point; incremental: copy what the bitmap
   * marks, which QEMU clears only when the copy succeeds.
   */
  sync: { mode: "full"; bitmap: "add" | "clear" | "none" } | { mode: "incremental" };
  /** Bytes per second at most (the block job's `speed`). */
  speed?: number;
  signal?: AbortSignal;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  pollMs?: number;
}

export interface DriveBackupResult {
  /** Bytes the job copied (the whole disk for a full backup, the dirty clusters for an incremental). */
  bytes: number;
}

/** The dirty bitmaps of `node`. */
export async function dirtyBitmaps(qmp: QmpClient, node: string): Promise<DirtyBitmap[]> {
  const nodes = (await qmp.execute("query-named-block-nodes", { flat: true })) as { "node-name"?: string; "dirty-bitmaps"?: Partial<DirtyBitmap>[] }[];
  const found = nodes.find((n) => n["node-name"] === node);
  if (!found) throw new IaasError("QEMU_FAILED", `QEMU has no block node '${node}'`, { hint: "the VM was started by another version; restart it" });
  return (found["dirty-bitmaps"] ?? []).map((b) => ({
    name: b.name ?? "",
    persistent: b.persistent === true,
    recording: b.recording === true,
    inconsistent: b.inconsistent === true,
    count: b.count ?? 0,
  }));
}

/**
 * A point-in-time copy of a disk QEMU holds, while the guest keeps running: QMP `drive-backup`
 * (copy-before-write, so the copy is the disk as it was when the job started), in a `transaction`
 * with the dirty bitmap for a full backup. Reports progress from `query-block-jobs`, and on abort
 * cancels the block job and waits until QEMU has let go of the target (the caller removes it).
 */
export async function runDriveBackup(qmp: QmpClient, opts: DriveBackupOptions): Promise<DriveBackupResult> {
  const jobId = `iaas-backup-${randomUUID()}`;
  const ended = waitForBlockJobEnd(qmp, jobId);
  const backup = {
    device: opts.node,
    "job-id": jobId,
    target: opts.target,
    format: "qcow2",
    mode: "existing",
    "auto-dismiss": false,
    ...(opts.speed !== undefined ? { speed: opts.speed } : {}),
    ...(opts.sync.mode === "full" ? { sync: "full" } : { sync: "incremental", bitmap: BACKUP_BITMAP, "bitmap-mode": "on-success" }),
  };
  try {
    if (opts.sync.mode === "full" && opts.sync.bitmap !== "none") {
      const bitmap =
        opts.sync.bitmap === "add"
          ? { type: "block-dirty-bitmap-add", data: { node: opts.node, name: BACKUP_BITMAP, persistent: true } }
          : { type: "block-dirty-bitmap-clear", data: { node: opts.node, name: BACKUP_BITMAP } };
      await qmp.execute("transaction", { actions: [bitmap, { type: "drive-backup", data: backup }] });
    } else {
      await qmp.execute("drive-backup", backup);
    }
  } catch (err) {
    ended.cancel();
    throw err;
  }
  let cancelling: Promise<unknown> | null = null;
  const onAbort = () => {
    cancelling = qmp.execute("block-job-cancel", { device: jobId, force: true }).catch(() => undefined);
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const poll = setInterval(() => {
    qmp
      .execute("query-block-jobs")
      .then((jobs) => {
        const job = (jobs as { device?: string; offset?: number; len?: number }[]).find((j) => j.device === jobId);
        if (job?.offset !== undefined && job.len !== undefined) opts.onProgress?.(job.offset, job.len);
      })
      .catch(() => undefined);
  }, opts.pollMs ?? 500);
  try {
    if (opts.signal?.aborted) onAbort();
    const end = await ended.promise;
    await cancelling;
    await qmp.execute("job-dismiss", { id: jobId }).catch(() => undefined);
    if (end.event === "BLOCK_JOB_CANCELLED") {
      throw opts.signal?.aborted ? opts.signal.reason : new IaasError("QEMU_FAILED", "the backup block job was cancelled", { hint: "retry the backup" });
    }
    const error = end.data["error"];
    if (typeof error === "string") throw new IaasError("QEMU_FAILED", `drive-backup failed: ${error}`, { hint: "see the worker log; the VM keeps running" });
    const len = Number(end.data["len"] ?? 0);
    opts.onProgress?.(len, len);
    return { bytes: len };
  } finally {
    clearInterval(poll);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** The COMPLETED or CANCELLED event of a block job, listened for before the job is started. */
function waitForBlockJobEnd(qmp: QmpClient, jobId: string): { promise: Promise<QmpEvent>; cancel(): void } {
  let cleanup = () => undefined as void;
  const promise = new Promise<QmpEvent>((resolve, reject) => {
    const onEvent = (e: QmpEvent) => {
      if ((e.event === "BLOCK_JOB_COMPLETED" || e.event === "BLOCK_JOB_CANCELLED") && e.data["device"] === jobId) {
        cleanup();
        resolve(e);
      }
    };
    const onClose = () => {
      cleanup();
      reject(new IaasError("QEMU_FAILED", "QEMU went away during the backup", { hint: "see `iaas vm show`; the partial backup was removed", retryable: true }));
    };
    cleanup = () => {
      qmp.off("event", onEvent);
      qmp.off("close", onClose);
    };
    qmp.on("event", onEvent);
    qmp.on("close", onClose);
  });
  return {
    promise,
    cancel() {
      cleanup();
      promise.catch(() => undefined);
    },
  };
}

export interface BlockNodeOptions {
  binary: string;
  disk: string;
  qmpSocket: string;
  node: string;
  signal?: AbortSignal;
  /**
   * Run QEMU as this unprivileged user (a root worker's IAAS_QEMU_USER): it then needs read-write
   * access to the disk, write access to the socket's directory and to block job targets.
   */
  user?: QemuUser;
}

/**
 * Opens a disk no VM runs in a QEMU without a machine (`-machine none`), so block jobs (an
 * incremental backup from the disk's dirty bitmap) run on a stopped VM's disk as on a running
 * one's; `quit` at the end writes the persistent bitmaps back into the qcow2. This QEMU parses a
 * guest-written qcow2 like a VM's, so it is confined the same way: the seccomp sandbox, the
 * unprivileged user when given, and an environment without the worker's secrets.
 */
export async function withBlockNode<T>(opts: BlockNodeOptions, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const argv = [
    ...(opts.user !== undefined ? runAsArgv(opts.user) : []),
    opts.binary,
    "-machine", "none", "-nodefaults", "-display", "none", "-S",
    "-sandbox", QEMU_SANDBOX,
    "-qmp", `unix:${opts.qmpSocket.replaceAll(",", ",,")},server=on,wait=off`,
    "-blockdev", `driver=file,filename=${opts.disk.replaceAll(",", ",,")},node-name=file-${opts.node}`,
    "-blockdev", `driver=qcow2,file=file-${opts.node},node-name=${opts.node}`,
  ];
  const child = spawn(argv[0] ?? opts.binary, argv.slice(1), {
    cwd: "/",
    env: { PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr = (stderr + c).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const spawnFailed = new Promise<never>((_, reject) => child.once("error", (err) => reject(new IaasError("QEMU_FAILED", `cannot run ${opts.binary}: ${err.message}`, { hint: "install qemu-system-x86" }))));
  spawnFailed.catch(() => undefined);
  let qmp: QmpClient | null = null;
  try {
    const deadline = Date.now() + 10_000;
    while (qmp === null) {
      const code = await Promise.race([exited, spawnFailed, new Promise((r) => setTimeout(r, 50, "wait"))]);
      if (code !== "wait") throw new IaasError("QEMU_FAILED", `QEMU could not open the disk: ${stderr.trim() || `exit ${String(code)}`}`, { hint: "check the disk with `qemu-img check`" });
      if (await stat(opts.qmpSocket).then(() => true, () => false)) qmp = await QmpClient.connect(opts.qmpSocket, { timeoutMs: 5000 }).catch(() => null);
      if (qmp === null && Date.now() > deadline) throw new IaasError("QEMU_FAILED", "QEMU did not open its QMP socket within 10 s", { hint: "see the worker log" });
    }
    const client: QmpClient = qmp;
    // `quit` also when fn failed: a killed QEMU would leave the bitmap inconsistent for good.
    const result = await fn(client).finally(() => client.execute("quit").catch(() => undefined));
    const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000, "timeout"))]);
    if (code !== 0) throw new IaasError("QEMU_FAILED", `QEMU did not close the disk cleanly (${String(code)}): ${stderr.trim()}`, { hint: "retry; the next backup may have to be full" });
    return result;
  } finally {
    qmp?.close();
    if (child.exitCode === null && child.signalCode === null) {
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    }
  }
}
