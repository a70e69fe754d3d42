import { runCli } from "../program.js";
import type { RunProcess } from "../runProcess.js";
import { FakeWriter } from "./FakeWriter.js";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Pauses before resuming a transfer (default five of 5 ms); [] gives up at the first break. */
  transferBackoffMs?: readonly number[];
  /** stderr is a terminal. */
  tty?: boolean;
  /** Pause between polls of `vm wait` (default 10 ms). */
  pollIntervalMs?: number;
  /** Stands in for running ssh (default: refuses to run anything). */
  runProcess?: RunProcess;
}

/** Runs `iaas argv` against the API at `url` with fakes for the terminal, fast retries and a fixed clock. */
export async function runIaas(argv: string[], url: string, options: RunOptions = {}): Promise<Run> {
  const stdout = new FakeWriter();
  const stderr = new FakeWriter(options.tty === true, 200);
  const code = await runCli(argv, {
    env: { IAAS_URL: url, ...options.env },
    stdout,
    stderr,
    homedir: "/nonexistent-home",
    retryDelaysMs: [5],
    reconnectDelaysMs: [5],
    transferBackoffMs: options.transferBackoffMs ?? [5, 5, 5, 5, 5],
    animate: false,
    pollIntervalMs: options.pollIntervalMs ?? 10,
    runProcess: options.runProcess ?? (() => Promise.reject(new Error("tests run no programs"))),
    now: () => new Date("2025-01-01T00:01:00.000Z"),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}
