import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { IaasError } from "@iaas/contracts";
import { parseOptionString } from "./qemuArgv.js";

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

/**
 * The pid in a pidfile, or null when the file does not exist or is still empty (QEMU is writing
 * it). Throws IaasError QEMU_FAILED when it holds something other than a pid.
 */
export async function readPidfile(path: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  }
  const trimmed = text.trim();
  if (trimmed === "") return null;
  const pid = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 1) {
    throw new IaasError("QEMU_FAILED", `pidfile ${path} holds '${trimmed.slice(0, 40)}' instead of a process id`, {
      hint: "remove the stale pidfile if no QEMU runs for this VM",
      details: { pidfile: path },
    });
  }
  return pid;
}

/** State letter from /proc/PID/stat ('R', 'S', 'Z', ...), or null if unreadable. */
async function procState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ..." — comm may contain spaces and parentheses, so look after the last ')'.
    const after = stat.slice(stat.lastIndexOf(")") + 2);
    return after.charAt(0) || null;
  } catch {
    return null;
  }
}

/** Signal 0: false for ESRCH, true when the pid exists (EPERM: someone else's). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ESRCH") return false;
    if (code !== "EPERM") throw err;
    return true;
  }
}

/**
 * Whether a process with this pid exists (signal 0: ESRCH → no, EPERM → yes, someone else's).
 * A zombie (exited, not yet reaped by its parent) counts as dead, and so does one reaped while
 * this looked (QEMU is the worker's child: the worker reaps it as soon as it exits).
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid < 1) return false;
  if (!pidExists(pid)) return false;
  const state = await procState(pid);
  // No /proc entry: gone since the signal, unless /proc hides it (hidepid); ask again.
  if (state === null) return pidExists(pid);
  return state !== "Z";
}

/** argv of a running process from /proc/PID/cmdline, or null when it is gone or unreadable. */
export async function readCmdline(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    if (raw === "") return null; // kernel threads and zombies
    const parts = raw.split("\0");
    if (parts.at(-1) === "") parts.pop();
    return parts;
  } catch {
    return null;
  }
}

/** The guest name in an argv's `-name guest=NAME,...` (commas unescaped), or null. */
export function guestNameFromArgv(argv: readonly string[]): string | null {
  const i = argv.indexOf("-name");
  const value = i >= 0 ? argv[i + 1] : undefined;
  if (value === undefined) return null;
  for (const [k, v] of parseOptionString(value)) {
    if (k === "guest" || k === "") return v;
  }
  return null;
}

/**
 * Whether `pid` is a live QEMU started for the VM `expectedName` (its argv0 names a qemu binary
 * and its `-name guest=` matches), so a recycled pid is not mistaken for our VM.
 */
export async function isQemuProcess(pid: number, expectedName: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const argv = await readCmdline(pid);
  if (argv === null || argv.length === 0) return false;
  // qemu-system-x86_64, or a distribution's name for it such as qemu-kvm.
  if (!basename(argv[0] ?? "").includes("qemu")) return false;
  return guestNameFromArgv(argv) === expectedName;
}

export interface WaitOptions {
  timeoutMs: number;
  /** Poll interval. Default 25 ms. */
  intervalMs?: number;
  signal?: AbortSignal;
}

async function poll<T>(what: string, opts: WaitOptions, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() >= deadline) {
      throw new IaasError("QEMU_FAILED", `${what} within ${opts.timeoutMs} ms`, { retryable: true });
    }
    await sleep(opts.intervalMs ?? 25, undefined, opts.signal === undefined ? undefined : { signal: opts.signal });
  }
}

/** Waits until the pidfile names a live process and returns its pid. */
export function waitForPidfile(path: string, opts: WaitOptions): Promise<number> {
  return poll(`QEMU did not write a live pid to ${path}`, opts, async () => {
    const pid = await readPidfile(path);
    return pid !== null && (await isProcessAlive(pid)) ? pid : null;
  });
}

/** Waits until a process has exited (or is a zombie). */
export async function waitForExit(pid: number, opts: WaitOptions): Promise<void> {
  await poll(`process ${pid} did not exit`, opts, async () => ((await isProcessAlive(pid)) ? null : true));
}
