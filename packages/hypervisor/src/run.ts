import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { delimiter, join } from "node:path";

/** Resource limits applied to the child with `prlimit` (util-linux), when it is installed. */
export interface ResourceLimits {
  /** RLIMIT_CPU: CPU seconds before the kernel kills the process. */
  cpuSeconds?: number;
  /** RLIMIT_AS: bytes of address space. */
  addressSpaceBytes?: number;
}

export interface RunOptions {
  /** Kill the process (SIGTERM, then SIGKILL after `killGraceMs`) when it runs longer. */
  timeoutMs?: number;
  /** Kill the process the same way when this signal aborts. */
  signal?: AbortSignal;
  cwd?: string;
  /** The child's whole environment (defaults to this process's environment). */
  env?: NodeJS.ProcessEnv;
  onStdout?(chunk: string): void;
  onStderr?(chunk: string): void;
  /** Written to the child's stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string | Uint8Array;
  /** Exit codes besides 0 that count as success (`qemu-img check` exits 63 on formats it cannot check). */
  allowExitCodes?: readonly number[];
  /** Time between SIGTERM and SIGKILL when the process is killed. Default 2000 ms. */
  killGraceMs?: number;
  /**
   * Limits for a process that reads untrusted input. Applied through `prlimit` when it is on the
   * PATH; without it the process runs unlimited (see `prlimitAvailable()`).
   */
  limits?: ResourceLimits;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Why a process did not succeed. */
export type ProcessFailure = "exit" | "signal" | "timeout" | "aborted" | "spawn";

const STDERR_TAIL_BYTES = 2048;
const STDERR_KEEP_CHARS = 64 * 1024;

/** A process that could not start, exited non-zero, died of a signal, timed out or was aborted. */
export class ProcessError extends Error {
  readonly argv: readonly string[];
  readonly reason: ProcessFailure;
  readonly exitCode: number | null;
  readonly exitSignal: NodeJS.Signals | null;
  /** The last ~2 KB of stderr. */
  readonly stderrTail: string;
  readonly stdout: string;
  readonly durationMs: number;

  constructor(fields: {
    argv: readonly string[];
    reason: ProcessFailure;
    exitCode: number | null;
    exitSignal: NodeJS.Signals | null;
    stderr: string;
    stdout: string;
    durationMs: number;
    cause?: unknown;
  }) {
    const tail = tailOf(fields.stderr, STDERR_TAIL_BYTES);
    super(describeFailure(fields.argv, fields, tail), fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = "ProcessError";
    this.argv = fields.argv;
    this.reason = fields.reason;
    this.exitCode = fields.exitCode;
    this.exitSignal = fields.exitSignal;
    this.stderrTail = tail;
    this.stdout = fields.stdout;
    this.durationMs = fields.durationMs;
  }
}

function describeFailure(
  argv: readonly string[],
  f: { reason: ProcessFailure; exitCode: number | null; exitSignal: NodeJS.Signals | null; durationMs: number; cause?: unknown },
  tail: string,
): string {
  const cmd = argv.map(quoteForDisplay).join(" ");
  let what: string;
  switch (f.reason) {
    case "exit":
      what = `exited with code ${String(f.exitCode)}`;
      break;
    case "signal":
      what = `was killed by ${String(f.exitSignal)}`;
      break;
    case "timeout":
      what = `timed out after ${f.durationMs} ms and was killed`;
      break;
    case "aborted":
      what = "was aborted and killed";
      break;
    case "spawn":
      what = `could not be started (${f.cause instanceof Error ? f.cause.message : String(f.cause)})`;
      break;
  }
  const trimmed = tail.trim();
  return `${cmd} ${what}${trimmed === "" ? "" : `: ${trimmed}`}`;
}

function quoteForDisplay(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** The last `maxBytes` bytes of `text` (cut at a character boundary). */
export function tailOf(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, "utf8");
  if (buf.length <= maxBytes) return text;
  let start = buf.length - maxBytes;
  // Skip UTF-8 continuation bytes so the tail starts on a whole character.
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString("utf8");
}

let prlimitCache: string | null | undefined;

/** Absolute path of `prlimit` if it is on the PATH, else null (looked up once). */
export function prlimitAvailable(): string | null {
  if (prlimitCache === undefined) prlimitCache = findExecutable("prlimit");
  return prlimitCache;
}

/** Finds an executable on the PATH without a shell. */
export function findExecutable(name: string, pathVar: string = process.env.PATH ?? ""): string | null {
  if (name.includes("/")) return isExecutable(name) ? name : null;
  for (const dir of pathVar.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The argv actually executed: `argv` itself, or `prlimit --cpu=N --as=N -- argv...`. */
export function withLimits(argv: readonly string[], limits: ResourceLimits | undefined, prlimit: string | null): string[] {
  if (limits === undefined || prlimit === null) return [...argv];
  const flags: string[] = [];
  if (limits.cpuSeconds !== undefined) flags.push(`--cpu=${positiveInt(limits.cpuSeconds, "cpuSeconds")}`);
  if (limits.addressSpaceBytes !== undefined) flags.push(`--as=${positiveInt(limits.addressSpaceBytes, "addressSpaceBytes")}`);
  if (flags.length === 0) return [...argv];
  return [prlimit, ...flags, "--", ...argv];
}

function positiveInt(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${what} must be a positive integer, got ${n}`);
  return n;
}

/**
 * Runs a program without a shell and collects its output. Resolves when it exits with 0 (or an
 * allowed code); otherwise rejects with a ProcessError holding the argv and the end of stderr.
 */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const program = argv[0];
  if (program === undefined || program === "") return Promise.reject(new TypeError("run: argv must name a program"));
  const allowed = new Set([0, ...(opts.allowExitCodes ?? [])]);
  const graceMs = opts.killGraceMs ?? 2000;
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);

  return new Promise<RunResult>((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const fail = (reason: ProcessFailure, exitCode: number | null, exitSignal: NodeJS.Signals | null, cause?: unknown): void => {
      reject(new ProcessError({ argv, reason, exitCode, exitSignal, stderr, stdout, durationMs: elapsed(), cause }));
    };

    if (opts.signal?.aborted === true) {
      fail("aborted", null, null);
      return;
    }

    const prlimit = opts.limits === undefined ? null : prlimitAvailable();
    if (prlimit !== null && findExecutable(program, opts.env?.PATH ?? process.env.PATH) === null) {
      // prlimit would report this as its own exit status; report it as the spawn failure it is.
      const enoent = Object.assign(new Error(`spawn ${program} ENOENT`), { code: "ENOENT" });
      fail("spawn", null, null, enoent);
      return;
    }
    const actual = withLimits(argv, opts.limits, prlimit);
    const child = spawn(actual[0] ?? program, actual.slice(1), {
      cwd: opts.cwd,
      env: opts.env,
      shell: false,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      windowsHide: true,
    });

    let killedFor: "timeout" | "aborted" | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const kill = (why: "timeout" | "aborted"): void => {
      if (killedFor !== null || settled) return;
      killedFor = why;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    };

    const timeoutTimer = opts.timeoutMs === undefined ? undefined : setTimeout(() => kill("timeout"), opts.timeoutMs);
    const onAbort = (): void => kill("aborted");
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    const cleanup = (): void => {
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener("abort", onAbort);
    };

    // Both are pipes (stdio above); the types cannot see that through the computed stdio array.
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      stdout += chunk;
      opts.onStdout?.(chunk);
    });
    child.stderr?.on("data", (chunk: string) => {
      stderr += chunk;
      if (stderr.length > STDERR_KEEP_CHARS * 2) stderr = stderr.slice(-STDERR_KEEP_CHARS);
      opts.onStderr?.(chunk);
    });

    if (child.stdin !== null) {
      // A child that exits without reading its input gives EPIPE; its exit status tells the story.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input);
    }

    child.on("error", (err) => {
      if (settled) return;
      cleanup();
      fail("spawn", null, null, err);
    });

    child.on("close", (code, sig) => {
      if (settled) return;
      cleanup();
      if (killedFor !== null) {
        fail(killedFor, code, sig);
      } else if (sig !== null) {
        fail("signal", null, sig);
      } else if (code !== null && allowed.has(code)) {
        resolve({ code, stdout, stderr, durationMs: elapsed() });
      } else {
        fail("exit", code, null);
      }
    });
  });
}
