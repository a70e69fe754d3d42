// What every benchmark script starts and ends with: its settings from the environment, clean-up
// on Ctrl-C (or SIGTERM/SIGHUP), and a failure report that names the child process that died.

process.env.DATABASE_URL ||= "postgresql://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

/** A positive integer from the environment variable `name`, `dflt` when it is unset. */
export function intEnv(name, dflt) {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got '${process.env[name]}'`);
  return v;
}

/**
 * On SIGINT, SIGTERM or SIGHUP: `kill` the benchmark's own children, tear the stack down and exit
 * with 130; a second signal exits at once. Returns whether a signal came.
 */
export function cleanUpOnSignal(stack, kill = () => undefined) {
  let interrupted = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(sig, () => {
      interrupted = true;
      process.stderr.write(`\nbench: ${sig}, cleaning up…\n`);
      process.once(sig, () => process.exit(130)); // a second one: give up
      kill();
      void stack.interrupt().finally(() => process.exit(130));
    });
  }
  return () => interrupted;
}

/**
 * Runs `main`; on failure prints why (an error such as "socket hang up" is often the symptom of a
 * child dying, so the child's crash is named first); always runs `kill` and the stack's clean-up.
 * Resolves to the exit code: 0, 1, or 130 after a signal.
 */
export async function runBench(name, stack, interrupted, main, kill = () => undefined) {
  try {
    await main();
    return 0;
  } catch (err) {
    const crash = await Promise.race([stack.crashed?.then(() => null, (e) => e), new Promise((r) => setTimeout(r, 500, null))]);
    const message = err instanceof Error ? err.message : String(err);
    if (!interrupted()) process.stderr.write(`\nbench:${name} FAILED: ${crash && crash !== err ? `${crash.message}\n  (first error seen: ${message})` : message}\n`);
    return interrupted() ? 130 : 1;
  } finally {
    kill();
    await stack.cleanup();
  }
}
