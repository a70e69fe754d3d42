// The API and worker processes of the fault suite, supervised the way systemd would: a process
// that exits on its own is recorded (a crash) and started again; one the chaos script kills is
// started again by the chaos script.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { exited, sleep } from "./services.js";

export interface ProcessExit {
  name: string;
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether it happened while the process was starting (before it was ready). */
  starting: boolean;
  logTail: string;
}

export class ManagedProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream;
  /** Set while the suite itself stops or kills the process: that exit is no crash. */
  private expectExit = false;
  private closed = false;
  starting = false;
  readonly exits: ProcessExit[] = [];
  starts = 0;

  constructor(
    readonly name: string,
    private readonly main: string,
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
    private readonly t0: number,
    /** Called after the process exited on its own (and was restarted). */
    private readonly onCrash: (exit: ProcessExit) => void,
  ) {
    this.log = createWriteStream(logFile, { flags: "a" });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawn(): void {
    if (this.closed) return;
    this.expectExit = false;
    this.starts += 1;
    this.log.write(`\n===== [fault suite] start #${this.starts} at +${((Date.now() - this.t0) / 1000).toFixed(1)}s =====\n`);
    const child = spawn(process.execPath, [this.main], { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.child = child;
    child.once("exit", (code, signal) => {
      if (this.child !== child || this.expectExit || this.closed) return;
      void (async () => {
        // Let the pipes drain into the log first.
        await sleep(200);
        const exit: ProcessExit = { name: this.name, at: Date.now() - this.t0, code, signal, starting: this.starting, logTail: await this.tail(30) };
        this.exits.push(exit);
        // While starting, whoever started it decides (FaultStack.startWorker retries).
        if (exit.starting) return;
        this.onCrash(exit);
        await sleep(1000);
        if (this.child === child && !this.closed) this.spawn();
      })();
    });
  }

  /** Sends a signal and, for a deadly one, waits for the exit (that exit is not a crash). */
  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    if (signal === "SIGSTOP" || signal === "SIGCONT") {
      child.kill(signal);
      return;
    }
    this.expectExit = true;
    child.kill(signal);
    await exited(child);
  }

  async tail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, "utf8").catch(() => "");
    return text.split("\n").slice(-lines).join("\n");
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    if (child && this.alive) {
      this.expectExit = true;
      // A stopped process cannot handle SIGTERM; wake it first.
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 8_000);
      await exited(child);
      clearTimeout(killer);
    }
    await new Promise<void>((r) => this.log.end(() => r()));
  }
}
