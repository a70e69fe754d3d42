import { describe, expect, it } from "vitest";
import { findExecutable, ProcessError, prlimitAvailable, run, tailOf, withLimits } from "./run.js";

const node = process.execPath;

async function rejection(p: Promise<unknown>): Promise<ProcessError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProcessError) return err;
    throw err;
  }
  throw new Error("expected the promise to reject");
}

describe("run", () => {
  it("returns exit code, stdout and stderr of a successful process", async () => {
    const r = await run([node, "-e", "process.stdout.write('out'); process.stderr.write('err')"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("out");
    expect(r.stderr).toBe("err");
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("passes arguments through untouched, with no shell to interpret them", async () => {
    const tricky = ["$(touch /tmp/x)", "a b", "'\"", ";ls", "*"];
    const r = await run([node, "-e", "process.stdout.write(JSON.stringify(process.argv.slice(1)))", ...tricky]);
    expect(JSON.parse(r.stdout)).toEqual(tricky);
  });

  it("rejects a non-zero exit with the argv, the code and the end of stderr in the message", async () => {
    const err = await rejection(run([node, "-e", "process.stderr.write('x'.repeat(5000) + 'the real reason'); process.exit(3)"]));
    expect(err.reason).toBe("exit");
    expect(err.exitCode).toBe(3);
    expect(err.argv[0]).toBe(node);
    expect(err.message).toContain("exited with code 3");
    expect(err.message).toContain("the real reason");
    expect(Buffer.byteLength(err.stderrTail)).toBeLessThanOrEqual(2048);
  });

  it("accepts exit codes listed in allowExitCodes", async () => {
    const r = await run([node, "-e", "process.exit(63)"], { allowExitCodes: [63] });
    expect(r.code).toBe(63);
  });

  it("kills a process that runs past its timeout", async () => {
    const err = await rejection(run([node, "-e", "setInterval(() => {}, 1000)"], { timeoutMs: 200 }));
    expect(err.reason).toBe("timeout");
    expect(err.message).toContain("timed out");
    expect(err.durationMs).toBeLessThan(5000);
  });

  it("escalates to SIGKILL when the process ignores SIGTERM", async () => {
    const script = "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)";
    const ac = new AbortController();
    const p = run([node, "-e", script], {
      signal: ac.signal,
      killGraceMs: 200,
      onStdout: (c) => {
        if (c.includes("ready")) ac.abort();
      },
    });
    const err = await rejection(p);
    expect(err.reason).toBe("aborted");
    expect(err.exitSignal).toBe("SIGKILL");
  });

  it("does not start a process when the signal is already aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await rejection(run([node, "-e", "require('fs').writeFileSync('/nonexistent/x', '')"], { signal: ac.signal }));
    expect(err.reason).toBe("aborted");
  });

  it("reports a program that does not exist as a spawn failure", async () => {
    const err = await rejection(run(["/nonexistent/program-iaas"]));
    expect(err.reason).toBe("spawn");
    expect(err.message).toContain("could not be started");
  });

  it("streams output to callbacks and feeds input to stdin", async () => {
    const chunks: string[] = [];
    const r = await run([node, "-e", "process.stdin.pipe(process.stdout)"], { input: "hello", onStdout: (c) => chunks.push(c) });
    expect(r.stdout).toBe("hello");
    expect(chunks.join("")).toBe("hello");
  });

  it("uses cwd and env", async () => {
    const r = await run([node, "-e", "process.stdout.write(process.cwd() + '|' + process.env.IAAS_T)"], {
      cwd: "/",
      env: { IAAS_T: "v" },
    });
    expect(r.stdout).toBe("/|v");
  });

  it.runIf(prlimitAvailable() !== null)("applies CPU limits through prlimit", async () => {
    const r = await run([node, "-e", "process.stdout.write('ok')"], { limits: { cpuSeconds: 30, addressSpaceBytes: 8 * 2 ** 30 } });
    expect(r.stdout).toBe("ok");
    const err = await rejection(run([node, "-e", "for(;;){}"], { limits: { cpuSeconds: 1 }, timeoutMs: 10_000 }));
    expect(err.reason).toBe("signal");
  });
});

describe("withLimits", () => {
  it("prefixes prlimit flags when limits are given and prlimit exists", () => {
    expect(withLimits(["qemu-img", "info"], { cpuSeconds: 30, addressSpaceBytes: 1024 }, "/usr/bin/prlimit")).toEqual([
      "/usr/bin/prlimit",
      "--cpu=30",
      "--as=1024",
      "--",
      "qemu-img",
      "info",
    ]);
  });

  it("leaves argv alone without prlimit or without limits", () => {
    expect(withLimits(["a"], { cpuSeconds: 1 }, null)).toEqual(["a"]);
    expect(withLimits(["a"], undefined, "/usr/bin/prlimit")).toEqual(["a"]);
  });

  it("rejects a limit that is not a positive integer", () => {
    expect(() => withLimits(["a"], { cpuSeconds: 0.5 }, "/p")).toThrow(RangeError);
  });
});

describe("helpers", () => {
  it("tailOf keeps the last bytes on a character boundary", () => {
    expect(tailOf("abcdef", 3)).toBe("def");
    expect(tailOf("ééé", 3)).toBe("é");
  });

  it("findExecutable looks through the PATH", () => {
    expect(findExecutable("node", `/nonexistent:${process.execPath.replace(/\/node$/, "")}`)).toBe(process.execPath);
    expect(findExecutable("no-such-program-iaas", "/usr/bin")).toBeNull();
  });
});
