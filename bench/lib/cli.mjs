// Runs the built `iaas` CLI against a bench stack, as a user would, and kills what still runs on cleanup.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../apps/cli/dist/main.js");
const clis = new Set(); // running `iaas` processes

/** Kills every `iaas` process still running (cleanup, Ctrl-C). */
export const killClis = () => clis.forEach((c) => c.kill("SIGKILL"));

/** Runs `iaas ARGS` against the stack: { stdout, seconds } (wall time of the whole process); throws on a non-zero exit. */
export function cli(s, args, { timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, HOME: s.tmp, IAAS_URL: s.baseUrl },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    clis.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-4000)));
    child.once("error", (err) => {
      clis.delete(child);
      reject(new Error(`iaas ${args.join(" ")}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clis.delete(child);
      const seconds = (performance.now() - t0) / 1000;
      if (code === 0) resolve({ stdout, seconds });
      else reject(new Error(`iaas ${args.join(" ")} exited with ${code ?? signal}: ${stderr.trim().split("\n").slice(-5).join("\n")}`));
    });
  });
}

/** `cli` with `-o json`: { json, seconds }. */
export const cliJson = async (s, args, opts) => {
  const r = await cli(s, [...args, "-o", "json"], opts);
  return { json: JSON.parse(r.stdout), seconds: r.seconds };
};
