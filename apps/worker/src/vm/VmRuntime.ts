import { chmod, chown, mkdir, readdir, rm, stat, unlink } from "node:fs/promises";
import path from "node:path";
import {
  buildQemuArgv,
  isProcessAlive,
  isQemuProcess,
  launchQemu,
  QmpClient,
  readCmdline,
  readPidfile,
  runAsArgv,
  userCanOpen,
  waitForExit,
} from "@iaas/hypervisor";
import { IaasError, type Accelerator } from "@iaas/contracts";
import type { QemuUser, VmNic } from "@iaas/hypervisor";
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
  /** What QEMU prints (its stdout and stderr): start-up errors, warnings. */
  log: string;
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
  /**
   * The unprivileged account QEMU runs as (IAAS_QEMU_USER on a root worker); null or unset: the
   * worker's own user. The VM's directory, disk and seed are given to it at each start.
   */
  qemuUser?: QemuUser | null;
  /** The device QEMU opens for tap NICs (a test may point elsewhere). Default /dev/net/tun. */
  tunDevice?: string;
}

/**
 * The QEMU processes of one host: where a VM's files live, whether its QEMU runs, and how to
 * start and stop it. QEMU runs detached with a pidfile and a QMP socket, so VMs outlive the
 * worker and a restarted worker finds them again from the files alone. It runs confined: under
 * its seccomp sandbox, and on a root worker as the unprivileged IAAS_QEMU_USER.
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
      log: path.join(dir, "qemu.log"),
    };
  }

  /** The pid of the VM's live QEMU, or null when none runs. */
  async runningPid(vm: Pick<VmRunSpec, "id" | "name">): Promise<number | null> {
    const pid = await readPidfile(this.files(vm.id).pidfile);
    if (pid === null) return null;
    return (await isQemuProcess(pid, vm.name)) ? pid : null;
  }

  /**
   * QEMU processes alive on this host, from the VMs' pidfiles (one per VM directory, so the cost
   * is the number of VMs here): the `iaas_qemu_processes` gauge.
   */
  async countQemuProcesses(): Promise<number> {
    // No vms/ directory yet: no QEMU. Anything else (permissions, I/O) fails the scrape, so the
    // gauge never reads 0 for a host it could not look at.
    const dirs = await readdir(path.join(this.config.dataDir, "vms")).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as string[];
      throw err;
    });
    const alive = await Promise.all(
      dirs.map(async (vmId) => {
        // A pidfile that holds no process id is not a running QEMU (the monitor reports it for its VM).
        const pid = await readPidfile(this.files(vmId).pidfile).catch(() => null);
        if (pid === null || !(await isProcessAlive(pid))) return false;
        return path.basename((await readCmdline(pid))?.[0] ?? "").includes("qemu");
      }),
    );
    return alive.filter(Boolean).length;
  }

  async diskExists(vmId: string): Promise<boolean> {
    return stat(this.files(vmId).disk).then(
      () => true,
      () => false,
    );
  }

  /** The account QEMU runs as, or undefined when it runs as the worker's user. */
  get qemuUser(): QemuUser | undefined {
    return this.config.qemuUser ?? undefined;
  }

  /**
   * The account this VM's QEMU runs as. A tap NIC is opened through /dev/net/tun, which the
   * unprivileged user must be able to open (mode 0666 is the kernel's default; some containers
   * make it 0600): where it cannot, this VM's QEMU stays the worker's user, still under the seccomp
   * sandbox, and the job says so, rather than not starting at all.
   */
  private async userFor(vm: VmRunSpec, note?: (text: string) => Promise<void>): Promise<QemuUser | null> {
    const user = this.config.qemuUser ?? null;
    if (user === null || !(vm.nics ?? []).some((n) => n.type === "tap")) return user;
    const tun = this.config.tunDevice ?? "/dev/net/tun";
    if (await userCanOpen(user, tun)) return user;
    await note?.(
      `QEMU runs as the worker's user, not '${user.name}' (IAAS_QEMU_USER): '${user.name}' cannot open ${tun} for the VM's tap NICs; make ${tun} mode 0666 (the kernel's default) to confine QEMU to '${user.name}'`,
    );
    return null;
  }

  /**
   * Starts QEMU for the VM (detached, under the seccomp sandbox, as the QEMU user when there is
   * one) and returns its pid once QMP answers `running`. `note` hears of anything the job should
   * report (a weaker confinement than configured).
   */
  async start(vm: VmRunSpec, signal: AbortSignal, note?: (text: string) => Promise<void>): Promise<number> {
    const f = this.files(vm.id);
    await mkdir(f.dir, { recursive: true });
    // Leftovers of a QEMU that died uncleanly would make QEMU refuse the socket or confuse the pid check.
    await Promise.all([f.pidfile, f.qmpSocket, f.serialSocket].map((file) => unlink(file).catch(() => undefined)));
    const user = await this.userFor(vm, note);
    if (user !== null) {
      // QEMU no longer is root when it opens these: its directory (pidfile, sockets, console log),
      // the disk it writes and the seed it reads become its user's. The backing image in the
      // store only needs to be readable (it is, with the usual umask 022).
      await this.chownTo(user, [f.dir, f.disk, ...(vm.seed === true ? [f.seed] : [])]);
      await this.chownTo(user, [f.console], true);
    }
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
    let pid: number;
    try {
      pid = await launchQemu(this.config.runner.wrap([...(user !== null ? runAsArgv(user) : []), ...argv]), {
        pidfile: f.pidfile,
        qmpSocket: f.qmpSocket,
        logFile: f.log,
        timeoutMs: 60_000,
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const message = (err as Error).message;
      let hint = "check the worker log and `iaas vm show`; the QEMU error above names the problem";
      if (user !== null && /permission denied/i.test(message)) {
        hint = `QEMU runs as '${user.name}' (IAAS_QEMU_USER): that user must be able to read the VM's image in the store and search its directories (mode 0755 or o+x); or set IAAS_QEMU_USER='' to run QEMU as root`;
      } else if (user !== null && Number(/host forwarding rule '[a-z]+:[^:]*:(\d+)-/i.exec(message)?.[1] ?? NaN) < 1024) {
        hint = `QEMU runs as '${user.name}' (IAAS_QEMU_USER), which cannot bind host ports below 1024: move such port forwards to ports from 1024 up`;
      }
      throw new IaasError("QEMU_FAILED", `QEMU did not start: ${message}`, { hint, cause: err });
    }
    const qmp = await QmpClient.connect(f.qmpSocket, { timeoutMs: 10_000 });
    try {
      const status = await qmp.queryStatus();
      if (!status.running) throw new IaasError("QEMU_FAILED", `QEMU started but the VM is '${status.status}', not running`);
    } finally {
      qmp.close();
    }
    return pid;
  }

  private async chownTo(owner: { uid: number; gid: number }, files: readonly string[], ifPresent = false): Promise<void> {
    for (const file of files) {
      await chown(file, owner.uid, owner.gid).catch((err: NodeJS.ErrnoException) => {
        if (!(ifPresent && err.code === "ENOENT")) throw err;
      });
    }
  }

  /**
   * Lets the unprivileged QEMU open `file` by path while it runs, as a block job target
   * (drive-backup opens its target after QEMU dropped root): the file becomes the QEMU user's,
   * and each directory from `root` down to the file's gets the search bit for others, which
   * is all QEMU needs of them. No-op when QEMU runs as the worker's user. Take it back with
   * takeFromQemu once the job is over.
   */
  async giveToQemu(file: string, root?: string): Promise<void> {
    const user = this.config.qemuUser;
    if (user === null || user === undefined) return;
    if (root !== undefined) {
      const rel = path.relative(root, path.dirname(file));
      if (rel.startsWith("..") || path.isAbsolute(rel)) throw new Error(`${file} is not under ${root}`);
      let dir = root;
      for (const part of ["", ...rel.split(path.sep).filter((p) => p !== "")]) {
        dir = path.join(dir, part);
        const mode = (await stat(dir)).mode & 0o7777;
        if ((mode & 0o001) === 0) await chmod(dir, mode | 0o001);
      }
    }
    await this.chownTo(user, [file]);
  }

  /**
   * Gives `file` back to the worker's user: a finished backup or image must not stay writable by
   * the account every VM's QEMU shares.
   */
  async takeFromQemu(file: string): Promise<void> {
    const user = this.config.qemuUser;
    if (user === null || user === undefined) return;
    await this.chownTo({ uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, [file], true);
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
      try {
        process.kill(pid, "SIGKILL");
      } catch (err) {
        // Exited (and reaped) since the check.
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
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
