#!/usr/bin/env node
import { homedir } from "node:os";
import { runCli } from "./program.js";

const interrupt = new AbortController();
process.on("SIGINT", () => {
  // First Ctrl-C: stop waiting and report; a second one exits at once.
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
});
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // `iaas vm list | head`: the reader went away; that is not an error.
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  homedir: homedir(),
  interrupt: interrupt.signal,
});
