import { spawn } from "node:child_process";
import { open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { IaasError } from "@iaas/contracts";
import { isProcessAlive, readPidfile } from "./process.js";
import { QmpClient } from "./qmpClient.js";

export interface LaunchQemuOptions {
  /** The pidfile the argv names (`-pidfile`); stale ones must be removed before. */
  pidfile: string;
  /** The QMP socket the argv names: QEMU is up once it greets there. */
  qmpSocket: string;
  /** QEMU's stdout and stderr are appended here (it has no terminal): where its messages go. */
  logFile: string;
  /** How long QEMU may take to come up (open its disks, load a snapshot) before it is killed. Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * QEMU's whole environment. Default: PATH only. QEMU needs nothing else, and a guest that
   * escapes into QEMU must not find the worker's database and Redis credentials there.
   */
  env?: NodeJS.ProcessEnv;
}

const LOG_TAIL_CHARS = 4000;

/** What QEMU wrote to its log since `from` (its last few KiB), trimmed. */
async function logSince(file: string, from: number): Promise<string> {
  const handle = await open(file, "r").catch(() => null);
  if (handle === null) return "";
  try {
    const size = (await handle.stat()).size;
    const start = Math.max(from, size - LOG_TAIL_CHARS);
    const buf = Buffer.alloc(Math.max(0, size - start));
    await handle.read(buf, 0, buf.length, start);
    return buf.toString("utf8").trim();
  } finally {
    await handle.close();
  }
}

/**
 * Starts a VM's QEMU detached from the worker and resolves with its pid once it answers on QMP
 * (its devices, disks and any `-loadvm` are then in place): the job `-daemonize` used to do, which
 * the seccomp sandbox forbids (see QEMU_SANDBOX). QEMU gets its own session (setsid before exec),
 * `/` as working directory, /dev/null as stdin, `logFile` as stdout and stderr and a minimal
 * environment, so it outlives the worker; a restarted worker finds it from the pidfile.
 *
 * `argv` is the whole command line, wrappers first (`ip netns exec NS`, `setpriv …`): they must
 * exec QEMU, not fork it. If QEMU exits before it is up, rejects with QEMU_FAILED holding what
 * QEMU printed; on timeout or abort it is killed and the promise rejects.
 */
export async function launchQemu(argv: readonly string[], opts: LaunchQemuOptions): Promise<number> {
  const program = argv[0];
  if (program === undefined || program === "") throw new TypeError("launchQemu: argv must name a program");
  opts.signal?.throwIfAborted();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const logStart = await stat(opts.logFile).then(
    (s) => s.size,
    () => 0,
  );
  const log = await open(opts.logFile, "a", 0o640);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | Error | null = null;
  let exited: Promise<null>;
  let child;
  try {
    child = spawn(program, argv.slice(1), {
      cwd: "/",
      env: opts.env ?? { PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    // Listening before anything is awaited: a spawn error is emitted on the next tick.
    const spawned = child;
    exited = new Promise<null>((resolve) => {
      spawned.once("exit", (code, signal) => {
        exit ??= { code, signal };
        resolve(null);
      });
      spawned.once("error", (err) => {
        exit ??= err;
        resolve(null);
      });
    });
    // A later 'error' (signalling a process that is gone) is no concern of the caller.
    spawned.on("error", () => undefined);
  } finally {
    // The child has its own copies of the descriptor.
    await log.close();
  }

  const failure = async (): Promise<IaasError> => {
    const printed = await logSince(opts.logFile, logStart);
    const how =
      exit instanceof Error
        ? `cannot run ${program}: ${exit.message}`
        : exit?.signal
          ? `QEMU was killed by ${exit.signal}`
          : `QEMU exited with code ${String(exit?.code)}`;
    return new IaasError("QEMU_FAILED", printed === "" ? how : `${how}: ${printed}`, {
      hint: "the message above is QEMU's; check the VM's disk and settings",
      details: { logFile: opts.logFile },
    });
  };

  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (exit !== null) throw await failure();
      opts.signal?.throwIfAborted();
      const pid = await readPidfile(opts.pidfile).catch(() => null);
      if (pid !== null && (await isProcessAlive(pid))) {
        const connecting = QmpClient.connect(opts.qmpSocket, { timeoutMs: Math.max(1000, deadline - Date.now()) }).catch(() => null);
        const qmp = await Promise.race([connecting, exited]);
        if (qmp !== null) {
          qmp.close();
          child.unref();
          return pid;
        }
        void connecting.then((late) => late?.close());
      }
      if (exit !== null) throw await failure();
      if (Date.now() > deadline) {
        throw new IaasError("QEMU_FAILED", `QEMU did not answer on ${opts.qmpSocket} within ${timeoutMs} ms; it was killed`, {
          hint: "the host may be overloaded; retry, and see QEMU's log",
          retryable: true,
          details: { logFile: opts.logFile },
        });
      }
      await sleep(50, undefined, opts.signal === undefined ? undefined : { signal: opts.signal });
    }
  } catch (err) {
    if (exit === null) {
      child.kill("SIGKILL");
      await exited;
    }
    throw err;
  }
}
