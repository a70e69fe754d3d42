import { mkdir, rm, stat, unlink } from "node:fs/promises";
import path from "node:path";
import {
  buildQemuArgv,
  isProcessAlive,
  isQemuProcess,
  QmpClient,
  readPidfile,
  run,
  waitForExit,
  waitForPidfile,
} from "@iaas/hypervisor";
import { IaasError, type Accelerator } from "@iaas/contracts";
import type { VmNic } from "@iaas/hypervisor";
import type { NetRunner } from "../net/NetRunner.js";

export interface VmFiles {
  dir: string;
  disk: string;
  pidfile: string;
  qmpSocket: string;
  console: string;
  /** Second serial port (a shell on the test guests, a login on others). */
  serialSocket: string;
  /** cloud-init NoCloud seed, rebuilt at each start. */
  seed: string;
}

/** What a VM needs to run; taken from its Postgres row. */
export interface VmRunSpec {
  id: string;
  name: string;
  cpus: number;
  memoryBytes: number;
  hostname?: string;
  nics?: VmNic[];
  /** Attach the cloud-init seed (files().seed), which the caller has built. */
  seed?: boolean;
  /** Resume from this memory snapshot (`-loadvm`). */
  loadvm?: string;
}

export interface RuntimeConfig {
  dataDir: string;
  qemuBinary: string;
  accelerator: Accelerator;
  /** Runs QEMU in the worker's network namespace, where its taps are. */
  runner: NetRunner;
}

/**
 * The QEMU processes of one host: where a VM's files live, whether its QEMU runs, and how to
 * start and stop it. QEMU runs daemonized with a pidfile and a QMP socket, so VMs outlive the
 * worker and a restarted worker finds them again from the files alone.
 */
export class VmRuntime {
  constructor(readonly config: RuntimeConfig) {}

  files(vmId: string): VmFiles {
    const dir = path.join(this.config.dataDir, "vms", vmId);
    return {
      dir,
      disk: path.join(dir, "disk.qcow2"),
      pidfile: path.join(dir, "qemu.pid"),
      qmpSocket: path.join(dir, "qmp.sock"),
      console: path.join(dir, "console.log"),
      serialSocket: path.join(dir, "ttyS1.sock"),
      seed: path.join(dir, "seed.img"),
    };
  }

  /** The pid of the VM's live QEMU, or null when none runs. */
  async runningPid(vm: Pick<VmRunSpec, "id" | "name">): Promise<number | null> {
    const pid = await readPidfile(this.files(vm.id).pidfile);
    if (pid === null) return null;
    return (await isQemuProcess(pid, vm.name)) ? pid : null;
  }

  async diskExists(vmId: string): Promise<boolean> {
    return stat(this.files(vmId).disk).then(
      () => true,
      () => false,
    );
  }

  /** Starts QEMU for the VM and returns its pid once QMP answers `running`. */
  async start(vm: VmRunSpec, signal: AbortSignal): Promise<number> {
    const f = this.files(vm.id);
    await mkdir(f.dir, { recursive: true });
    // Leftovers of a QEMU that died uncleanly would make QEMU refuse the socket or confuse the pid check.
    await Promise.all([f.pidfile, f.qmpSocket, f.serialSocket].map((file) => unlink(file).catch(() => undefined)));
    const argv = buildQemuArgv({
      name: vm.name,
      uuid: vm.id,
      cpus: vm.cpus,
      memoryBytes: vm.memoryBytes,
      accelerator: this.config.accelerator,
      diskPath: f.disk,
      nics: vm.nics ?? [],
      pidfile: f.pidfile,
      qmpSocket: f.qmpSocket,
      serialLog: f.console,
      serialSocket: f.serialSocket,
      ...(vm.seed ? { seedPath: f.seed } : {}),
      ...(vm.hostname !== undefined ? { hostname: vm.hostname } : {}),
      ...(vm.loadvm !== undefined ? { loadvm: vm.loadvm } : {}),
      binary: this.config.qemuBinary,
    });
    try {
      await run(this.config.runner.wrap(argv), { timeoutMs: 60_000, signal });
    } catch (err) {
      throw new IaasError("QEMU_FAILED", `QEMU did not start: ${(err as Error).message}`, {
        hint: "check the worker log and `iaas vm show`; the QEMU error above names the problem",
        cause: err,
      });
    }
    const pid = await waitForPidfile(f.pidfile, { timeoutMs: 10_000, signal });
    const qmp = await QmpClient.connect(f.qmpSocket, { timeoutMs: 10_000 });
    try {
      const status = await qmp.queryStatus();
      if (!status.running) throw new IaasError("QEMU_FAILED", `QEMU started but the VM is '${status.status}', not running`);
    } finally {
      qmp.close();
    }
    return pid;
  }

  /** Runs one QMP command against the VM's QEMU. */
  async qmp<T>(vmId: string, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
    const qmp = await QmpClient.connect(this.files(vmId).qmpSocket, { timeoutMs: 10_000 });
    try {
      return await fn(qmp);
    } finally {
      qmp.close();
    }
  }

  /**
   * Stops the VM's QEMU: ACPI powerdown, then `quit` once `gracefulMs` has passed (or at once
   * when `gracefulMs` is 0), then SIGKILL if QEMU still lingers. Returns whether it had to force.
   */
  async stop(vm: Pick<VmRunSpec, "id" | "name">, gracefulMs: number, signal: AbortSignal, onPhase: (phase: string) => Promise<void>): Promise<{ forced: boolean }> {
    const pid = await this.runningPid(vm);
    if (pid === null) return { forced: false };
    if (gracefulMs > 0) {
      await onPhase("acpi-powerdown");
      await this.qmp(vm.id, (q) => q.execute("system_powerdown"));
      const exited = await waitForExit(pid, { timeoutMs: gracefulMs, intervalMs: 100, signal }).then(
        () => true,
        (err: unknown) => {
          if (signal.aborted) throw err;
          return false;
        },
      );
      if (exited) {
        await this.cleanupRuntimeFiles(vm.id);
        return { forced: false };
      }
    }
    await onPhase("quit");
    await this.qmp(vm.id, (q) => q.execute("quit")).catch(() => undefined);
    const quit = await waitForExit(pid, { timeoutMs: 10_000, intervalMs: 50 }).then(
      () => true,
      () => false,
    );
    if (!quit && (await isProcessAlive(pid))) {
      await onPhase("kill");
      process.kill(pid, "SIGKILL");
      await waitForExit(pid, { timeoutMs: 10_000, intervalMs: 50 });
    }
    await this.cleanupRuntimeFiles(vm.id);
    return { forced: true };
  }

  private async cleanupRuntimeFiles(vmId: string): Promise<void> {
    const f = this.files(vmId);
    await Promise.all([f.pidfile, f.qmpSocket, f.serialSocket].map((file) => unlink(file).catch(() => undefined)));
  }

  /** Removes everything the VM has on this host (disk, console log, runtime files). */
  async removeFiles(vmId: string): Promise<void> {
    await rm(this.files(vmId).dir, { recursive: true, force: true });
  }
}
