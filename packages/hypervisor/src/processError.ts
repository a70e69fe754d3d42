/** Why a process did not succeed. */
export type ProcessFailure = "exit" | "signal" | "timeout" | "aborted" | "spawn" | "io";

const STDERR_TAIL_BYTES = 2048;

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
    case "io":
      what = `was killed because streaming its input or output failed (${f.cause instanceof Error ? f.cause.message : String(f.cause)})`;
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
