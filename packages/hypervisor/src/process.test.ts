import { spawn } from "node:child_process";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { guestNameFromArgv, isProcessAlive, isQemuProcess, readCmdline, readPidfile, waitForExit, waitForPidfile } from "./process.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "proc-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts a long-lived child running `argv0` (a path to node or a link to it) with extra args. */
function sleeper(argv0: string, extra: string[] = []): { pid: number; stop(): Promise<void> } {
  const child = spawn(argv0, ["-e", "setInterval(() => {}, 1000)", "--", ...extra], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  if (child.pid === undefined) throw new Error("spawn failed");
  return {
    pid: child.pid,
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

describe("readPidfile", () => {
  it("reads a pid, with or without a trailing newline", async () => {
    const p = join(dir, "a.pid");
    await writeFile(p, "12345\n");
    expect(await readPidfile(p)).toBe(12345);
    await writeFile(p, "7");
    expect(await readPidfile(p)).toBe(7);
  });

  it("returns null for a missing or still-empty pidfile", async () => {
    expect(await readPidfile(join(dir, "missing.pid"))).toBeNull();
    const p = join(dir, "empty.pid");
    await writeFile(p, "");
    expect(await readPidfile(p)).toBeNull();
  });

  it("refuses a pidfile holding something else", async () => {
    const p = join(dir, "bad.pid");
    for (const content of ["abc", "-1", "0", "12 34", "99999999999"]) {
      await writeFile(p, content);
      await expect(readPidfile(p), content).rejects.toBeInstanceOf(IaasError);
    }
  });
});

describe("isProcessAlive", () => {
  it("says this process is alive and a finished child is not", async () => {
    expect(await isProcessAlive(process.pid)).toBe(true);
    const s = sleeper(process.execPath);
    expect(await isProcessAlive(s.pid)).toBe(true);
    await s.stop();
    expect(await isProcessAlive(s.pid)).toBe(false);
  });

  it("treats impossible pids as dead", async () => {
    expect(await isProcessAlive(0)).toBe(false);
    expect(await isProcessAlive(-1)).toBe(false);
    expect(await isProcessAlive(2 ** 22 + 1)).toBe(false);
  });

  it("counts PID 1 as alive (EPERM for non-root users means alive too)", async () => {
    // PID 1 always exists; unless we are root, signalling it gives EPERM.
    expect(await isProcessAlive(1)).toBe(true);
  });
});

describe("isQemuProcess", () => {
  it("recognizes a qemu-system process by its -name guest=, unescaping commas", async () => {
    const link = join(dir, "qemu-system-x86_64");
    await symlink(process.execPath, link);
    const s = sleeper(link, ["-name", "guest=web,,1,process=iaas-web,,1"]);
    try {
      const deadline = Date.now() + 5000;
      while (!(await readCmdline(s.pid))?.includes("-name") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await isQemuProcess(s.pid, "web,1")).toBe(true);
      expect(await isQemuProcess(s.pid, "web")).toBe(false);
    } finally {
      await s.stop();
    }
    expect(await isQemuProcess(s.pid, "web,1")).toBe(false);
  });

  it("does not take a process that is not qemu-system for our QEMU, even with a matching -name", async () => {
    const s = sleeper(process.execPath, ["-name", "guest=web"]);
    try {
      expect(await isQemuProcess(s.pid, "web")).toBe(false);
    } finally {
      await s.stop();
    }
  });
});

describe("guestNameFromArgv", () => {
  it("reads guest= or the implied first key", () => {
    expect(guestNameFromArgv(["q", "-name", "guest=a,,b,process=x"])).toBe("a,b");
    expect(guestNameFromArgv(["q", "-name", "plain"])).toBe("plain");
    expect(guestNameFromArgv(["q", "-m", "1"])).toBeNull();
  });
});

describe("waitForPidfile / waitForExit", () => {
  it("returns the pid once the pidfile names a live process", async () => {
    const p = join(dir, "later.pid");
    setTimeout(() => void writeFile(p, `${process.pid}\n`), 50);
    expect(await waitForPidfile(p, { timeoutMs: 2000 })).toBe(process.pid);
  });

  it("times out when no pidfile appears", async () => {
    await expect(waitForPidfile(join(dir, "never.pid"), { timeoutMs: 100 })).rejects.toThrow(/within 100 ms/);
  });

  it("waits for a process to exit", async () => {
    const s = sleeper(process.execPath);
    setTimeout(() => void s.stop(), 50);
    await waitForExit(s.pid, { timeoutMs: 5000 });
    expect(await isProcessAlive(s.pid)).toBe(false);
  });
});
