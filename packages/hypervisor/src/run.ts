import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { delimiter, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ProcessError, type ProcessFailure } from "./processError.js";

export { ProcessError, tailOf, type ProcessFailure } from "./processError.js";

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
  /** Written to the child's stdin, which is then closed. Without it (or `stdin`) stdin is /dev/null. */
  input?: string | Uint8Array;
  /**
   * Streamed into the child's stdin instead of `input` (e.g. a file's read stream). run() consumes
   * it and destroys it when the process ends; an error reading it kills the process (reason "io").
   */
  stdin?: Readable;
  /**
   * The child's stdout is piped into this stream instead of being collected (`onStdout` and
   * `RunResult.stdout` then see nothing). run() settles only after the stream has finished; an
   * error writing to it (a full disk, a size limit) kills the process (reason "io").
   */
  stdout?: Writable;
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

const STDERR_KEEP_CHARS = 64 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
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
  if (opts.input !== undefined && opts.stdin !== undefined) return Promise.reject(new TypeError("run: give either input or stdin, not both"));
  const allowed = new Set([0, ...(opts.allowExitCodes ?? [])]);
  const graceMs = opts.killGraceMs ?? 2000;
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);

  return new Promise<RunResult>((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const fail = (reason: ProcessFailure, exitCode: number | null, exitSignal: NodeJS.Signals | null, cause?: unknown): void => {
      opts.stdin?.destroy();
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
      stdio: [opts.input === undefined && opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      windowsHide: true,
    });

    let killedFor: "timeout" | "aborted" | "io" | null = null;
    let ioError: unknown;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const kill = (why: "timeout" | "aborted" | "io"): void => {
      if (killedFor !== null || settled) return;
      killedFor = why;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    };
    const ioFailed = (err: unknown): void => {
      if (killedFor !== null || settled) return;
      ioError = err;
      kill("io");
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

    // All three are pipes when used (stdio above); the types cannot see that through the computed stdio array.
    let stdoutDone: Promise<void> = Promise.resolve();
    if (opts.stdout !== undefined && child.stdout !== null) {
      stdoutDone = pipeline(child.stdout, opts.stdout).catch((err: unknown) => ioFailed(err));
    } else {
      child.stdout?.setEncoding("utf8");
      child.stdout?.on("data", (chunk: string) => {
        stdout += chunk;
        opts.onStdout?.(chunk);
      });
    }
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr += chunk;
      if (stderr.length > STDERR_KEEP_CHARS * 2) stderr = stderr.slice(-STDERR_KEEP_CHARS);
      opts.onStderr?.(chunk);
    });

    if (child.stdin !== null) {
      // A child that exits without reading its input gives EPIPE; its exit status tells the story.
      child.stdin.on("error", () => undefined);
      if (opts.stdin !== undefined) {
        opts.stdin.on("error", ioFailed);
        opts.stdin.pipe(child.stdin);
      } else {
        child.stdin.end(opts.input);
      }
    }

    child.on("error", (err) => {
      if (settled) return;
      cleanup();
      fail("spawn", null, null, err);
    });

    child.on("close", (code, sig) => {
      if (settled) return;
      // Output piped elsewhere must be flushed (or have failed) before the result is known.
      void stdoutDone.then(() => {
        if (settled) return;
        cleanup();
        opts.stdin?.destroy();
        if (killedFor !== null) {
          fail(killedFor, code, sig, killedFor === "io" ? ioError : undefined);
        } else if (sig !== null) {
          fail("signal", null, sig);
        } else if (code !== null && allowed.has(code)) {
          resolve({ code, stdout, stderr, durationMs: elapsed() });
        } else {
          fail("exit", code, null);
        }
      });
    });
  });
}
