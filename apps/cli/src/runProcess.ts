import { spawn } from "node:child_process";
import { constants } from "node:os";

/** Runs a program with the CLI's stdin, stdout and stderr, and answers its exit code. */
export type RunProcess = (command: string, args: readonly string[]) => Promise<number>;

/**
 * Spawns `command` with `args` as an argv array (no shell), stdio inherited. Answers its exit
 * code, or 128 + the signal number when a signal ended it (as shells report it). Rejects when it
 * cannot be started (e.g. ENOENT).
 */
export const runInheritingStdio: RunProcess = (command, args) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: "inherit", shell: false });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code !== null) resolve(code);
      else resolve(128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
