import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleStreamKey } from "@iaas/contracts";
import { testRedisUrl } from "@iaas/db/testing";
import { QemuImg, run } from "@iaas/hypervisor";
import { NetRunner } from "../net/NetRunner.js";
import { ConsoleTailer } from "./ConsoleTailer.js";
import { VmRuntime } from "./VmRuntime.js";

// A real file appended to through an O_APPEND descriptor held open by another process, as QEMU's
// file chardev does with append=on, copied into Redis while the tailer rotates it.

const MAX = 64 * 1024;
let redis: Redis;
let dir: string;
const prefix = `ict-${randomBytes(4).toString("hex")}`;

beforeAll(async () => {
  redis = new Redis(await testRedisUrl(), { maxRetriesPerRequest: null });
  dir = await mkdtemp(path.join(os.tmpdir(), "iaas-console-"));
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

/** Reads a VM's console stream as a follower does: everything after the last entry seen. */
function follower(vmId: string) {
  let lastId = "0-0";
  let text = "";
  return {
    async read(): Promise<string> {
      for (;;) {
        const reply = (await redis.xread("COUNT", 1000, "STREAMS", consoleStreamKey(prefix, vmId), lastId)) as [string, [string, string[]][]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        if (entries.length === 0) return text;
        for (const [id, fields] of entries) {
          text += fields[1] ?? "";
          lastId = id;
        }
      }
    },
  };
}

const line = (i: number) => `[${String(i).padStart(7, "0")}] guest says something on its serial port\n`;

/** A process that appends `lines` numbered lines to `file` through one O_APPEND descriptor, in bursts. */
function appender(file: string, lines: number): Promise<void> {
  const script = `
    const fs = require("node:fs");
    const fd = fs.openSync(process.argv[1], "a");
    const line = ${line.toString()};
    let i = 0;
    const burst = () => {
      for (let n = 0; n < 50 && i < ${lines}; n++) fs.writeSync(fd, line(i++));
      if (i < ${lines}) setTimeout(burst, 1); else fs.closeSync(fd);
    };
    burst();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script, file], { stdio: "inherit" });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`appender exited ${code}`))));
  });
}

describe("ConsoleTailer", () => {
  it("rotates a console file QEMU keeps appending to without losing or repeating a byte", async () => {
    const vmId = randomUUID();
    const file = path.join(dir, `${vmId}.log`);
    await writeFile(file, "");
    const tailer = new ConsoleTailer(redis, prefix, { maxBytes: MAX });
    await tailer.reset(vmId);
    const reader = follower(vmId);
    const lines = 20_000; // ~1.1 MiB: about 30 rotations
    let writing = true;
    const writer = appender(file, lines).finally(() => (writing = false));
    let largest = 0;
    while (writing) {
      await tailer.pump(vmId, file);
      await reader.read();
      largest = Math.max(largest, (await stat(file)).size);
    }
    await writer;
    await tailer.pump(vmId, file);
    const expected = Array.from({ length: lines }, (_, i) => line(i)).join("");
    expect((await reader.read()) === expected).toBe(true);

    // The file stays bounded and dense (a cut, not a hole), and console.log.1 holds what came right before it.
    const now = await stat(file);
    expect(now.size).toBeLessThan(MAX);
    expect(largest).toBeLessThan(4 * MAX);
    expect(now.blocks * 512).toBeLessThanOrEqual(now.size + 64 * 1024);
    const kept = await readFile(`${file}.1`, "utf8");
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThanOrEqual(MAX / 2);
    expect(expected.endsWith(kept + (await readFile(file, "utf8")))).toBe(true);
  });

  it("finishes a cut that a crash interrupted, whether or not the cut was made", async () => {
    for (const madeBeforeCrash of [true, false]) {
      const vmId = randomUUID();
      const file = path.join(dir, `${vmId}.log`);
      const first = Array.from({ length: 2000 }, (_, i) => line(i)).join(""); // ~120 KiB
      await writeFile(file, first);
      const tailer = new ConsoleTailer(redis, prefix, { maxBytes: 0 });
      await tailer.reset(vmId);
      const reader = follower(vmId);
      await tailer.pump(vmId, file);
      // What a rotation records before cutting 64 KiB; the worker "dies" before or after the cut.
      const cut = 16 * 4096;
      const pending = {
        cut,
        before: first.length,
        head: Buffer.from(first.slice(0, 64)).toString("base64"),
        next: Buffer.from(first.slice(cut, cut + 64)).toString("base64"),
      };
      await redis.set(`${consoleStreamKey(prefix, vmId)}:cut`, JSON.stringify(pending));
      if (madeBeforeCrash) await run(["fallocate", "--collapse-range", "--offset", "0", "--length", String(cut), file]);
      const more = Array.from({ length: 500 }, (_, i) => line(100_000 + i)).join("");
      await appendFile(file, more);
      await new ConsoleTailer(redis, prefix, { maxBytes: 0 }).pump(vmId, file);
      expect((await reader.read()) === first + more).toBe(true);
      expect((await stat(file)).size).toBe(first.length + more.length - cut);
      expect(await redis.exists(`${consoleStreamKey(prefix, vmId)}:cut`)).toBe(0);
    }
  });

  it("truncates instead where the file system cannot cut a file's head, and says so", async () => {
    const shm = await mkdtemp("/dev/shm/iaas-console-");
    try {
      const vmId = randomUUID();
      const file = path.join(shm, "console.log");
      const content = Array.from({ length: 3000 }, (_, i) => line(i)).join(""); // ~180 KiB
      await writeFile(file, content);
      const warnings: string[] = [];
      const tailer = new ConsoleTailer(redis, prefix, { maxBytes: MAX, log: { warn: (_details, message) => void warnings.push(message) } });
      await tailer.reset(vmId);
      const reader = follower(vmId);
      await tailer.pump(vmId, file);
      expect((await reader.read()) === content).toBe(true);
      expect((await stat(file)).size).toBe(0);
      expect(content.endsWith(await readFile(`${file}.1`, "utf8"))).toBe(true);
      expect((await stat(`${file}.1`)).size).toBe(MAX / 2);
      expect(warnings).toEqual([expect.stringContaining("FALLOC_FL_COLLAPSE_RANGE")]);
      await appendFile(file, line(5));
      await tailer.pump(vmId, file);
      expect(await reader.read()).toBe(content + line(5));
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  it("rotates a real QEMU's console file while QEMU holds it open in append mode", async () => {
    // Short (socket paths) and searchable, like /var/lib/iaas.
    const data = await mkdtemp("/tmp/ct-");
    await chmod(data, 0o755);
    const runtime = new VmRuntime({ dataDir: data, qemuBinary: "qemu-system-x86_64", accelerator: "tcg", runner: new NetRunner(undefined) });
    const vm = { id: randomUUID(), name: `ct-${randomBytes(3).toString("hex")}`, cpus: 1, memoryBytes: 128 * 1024 * 1024, nics: [] };
    const f = runtime.files(vm.id);
    let pid: number | null = null;
    try {
      await run([process.execPath, path.resolve(import.meta.dirname, "../../../../scripts/guest/build-bootsector.mjs"), "--out", data]);
      await mkdir(f.dir, { recursive: true });
      await new QemuImg().createOverlay(f.disk, path.join(data, "bootsector.raw"), "raw");
      // What an earlier boot left: QEMU (append=on) writes after it instead of truncating it.
      const earlier = Array.from({ length: 2000 }, (_, i) => line(i)).join(""); // ~120 KiB
      await writeFile(f.console, earlier);
      const tailer = new ConsoleTailer(redis, prefix, { maxBytes: MAX });
      await tailer.reset(vm.id);
      const reader = follower(vm.id);
      pid = await runtime.start(vm, new AbortController().signal);
      // QEMU's descriptor of the console file is O_APPEND (02000 in /proc/PID/fdinfo flags).
      const fds = await readdir(`/proc/${pid}/fd`);
      const consoleFd = (await Promise.all(fds.map(async (fd) => ({ fd, target: await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "") })))).find((x) => x.target === f.console);
      expect(consoleFd).toBeDefined();
      const flags = /flags:\s+([0-7]+)/.exec(await readFile(`/proc/${pid}/fdinfo/${consoleFd?.fd ?? ""}`, "utf8"))?.[1] ?? "0";
      expect(parseInt(flags, 8) & 0o2000).toBe(0o2000);
      let text = "";
      for (let i = 0; i < 300 && !text.includes("IAAS-BOOT-OK"); i++) {
        await tailer.pump(vm.id, f.console);
        text = await reader.read();
        await new Promise((r) => setTimeout(r, 100));
      }
      // Everything arrived once, in order, though the file's head was cut while QEMU wrote to it.
      expect(text).toBe(`${earlier}IAAS-BOOT-OK\r\n`);
      const rest = await readFile(f.console, "utf8");
      expect(rest.length).toBeLessThan(MAX);
      expect(rest.endsWith("IAAS-BOOT-OK\r\n")).toBe(true);
      expect(rest.includes("\0")).toBe(false);
      expect((earlier + "IAAS-BOOT-OK\r\n").endsWith((await readFile(`${f.console}.1`, "utf8")) + rest)).toBe(true);
    } finally {
      if (pid !== null) process.kill(pid, "SIGKILL");
      await rm(data, { recursive: true, force: true });
    }
  }, 60_000);
});
