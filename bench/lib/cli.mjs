// Runs the built `iaas` CLI (apps/cli/dist/main.js) against a bench stack and times it.
import { spawn } from "node:child_process";
import path from "node:path";

/**
 * A runner for `iaas ARGS` against `stack` (its baseUrl, a HOME of its own): `run(args)` resolves
 * with { stdout, seconds } (wall time of the whole process) and rejects on a non-zero exit.
 * `killAll()` kills the ones still running (for signal handlers).
 */
export function cliRunner(root) {
  const main = path.join(root, "apps/cli/dist/main.js");
  const running = new Set();
  const run = (stack, args, { timeoutMs = 300_000 } = {}) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn(process.execPath, [main, ...args], {
        env: { PATH: process.env.PATH, HOME: stack.tmp, IAAS_URL: stack.baseUrl },
        stdio: ["ignore", "pipe", "pipe"],
        timeout: timeoutMs,
      });
      running.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c) => (stdout += c));
      child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-4000)));
      child.once("error", (err) => {
        running.delete(child);
        reject(new Error(`iaas ${args.join(" ")}: ${err.message}`));
      });
      child.once("close", (code, signal) => {
        running.delete(child);
        const seconds = (performance.now() - t0) / 1000;
        if (code === 0) resolve({ stdout, seconds });
        else reject(new Error(`iaas ${args.join(" ")} exited with ${code ?? signal}: ${stderr.trim().split("\n").slice(-5).join("\n")}`));
      });
    });
  return { main, run, killAll: () => running.forEach((c) => c.kill("SIGKILL")) };
}
