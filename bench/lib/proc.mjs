// Child processes (API, worker) with prefixed output, crash detection and a bounded stop.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";

/** A free TCP port on 127.0.0.1 (the OS picks it; tiny race until the child binds it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Last resort if the bench exits without stopping them (e.g. an uncaught error).
const live = new Set();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/**
 * Starts `node script` with extra env. Its output goes to our stderr prefixed with `[name]`, and
 * the last lines are kept for error messages. `crashed` rejects if it exits before stop() is called.
 */
export function startChild(name, script, env) {
  if (!existsSync(script)) throw new Error(`${script} does not exist: build first (npm run build)`);
  // Own process group: a terminal's Ctrl-C reaches only the bench, which then stops the children in
  // order (otherwise the API could drop requests before the bench even sees the signal).
  // BENCH_CPU_PROF=DIR: the child writes a V8 CPU profile there when it exits (see cpuProfile.mjs).
  const profile = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...profile, script], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  live.add(child);
  child.once("exit", () => live.delete(child));
  const tail = [];
  let stopping = false;
  const onData = (chunk) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      process.stderr.write(`[${name}] ${line}\n`);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (err) => resolve({ err }));
  });
  const crashed = new Promise((_, reject) => {
    exited.then(({ code, signal, err }) => {
      if (err) reject(new Error(`${name}: could not start ${script}: ${err.message}`));
      else if (!stopping) reject(new Error(`${name} exited unexpectedly (code ${code}, signal ${signal}); last output:\n  ${tail.join("\n  ") || "(none)"}`));
    });
  });
  crashed.catch(() => undefined); // observed by whoever races it; avoid unhandled rejections
  return {
    name,
    crashed,
    /** From now on an exit is not a crash (the bench is being interrupted). */
    expectExit: () => (stopping = true),
    /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
    async stop(graceMs = 5000) {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever the child started in its process group and left behind (e.g. a qemu-img of a job
      // that was still running): the group id is the child's pid, since it was spawned detached.
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: nothing left
      }
    },
  };
}
