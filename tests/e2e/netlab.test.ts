import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GuestShell } from "./guestShell.js";
import { LISTENER_GREETING, namespaces, NetLab, netlabAvailable } from "./netlab.js";

const execFileP = promisify(execFile);
const available = await netlabAvailable();
const ROOT = path.resolve(import.meta.dirname, "../..");

// What harness.guestImages(["linux"]) does, without importing the harness: it loads @iaas/db, which
// needs the workspace built, and this self-check needs nothing built.
async function linuxGuest(): Promise<string> {
  const dir = process.env.IAAS_GUEST_DIR ?? path.join(ROOT, ".cache/guests");
  await execFileP("bash", [path.join(ROOT, "scripts/guest/build-linux.sh"), "--out", dir], { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
  return path.join(dir, "linux.qcow2");
}

// A killed process nobody reaped yet (a zombie, state Z) counts as gone.
async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat !== "" && !/^\d+ \(.*\) Z/.test(stat);
}

// The helpers the network tests stand on: namespaces as hosts, and a shell inside the test guest.
describe.skipIf(!available.ok)(`NetLab${available.ok ? "" : ` (skipped: ${available.reason})`}`, () => {
  let lab: NetLab;

  beforeAll(async () => {
    lab = await NetLab.create(["host-1", "host-2"]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it("joins the hosts on one underlay: host 1 pings host 2 and the lab address", async () => {
    expect(lab.hostAddress("host-1")).toBe("192.168.240.11");
    expect(lab.hostAddress("host-2")).toBe("192.168.240.12");
    for (const target of [lab.hostAddress("host-2"), lab.labAddress]) {
      const r = await lab.exec(lab.hostNs("host-1"), ["busybox", "ping", "-c1", "-W2", target]);
      expect(r.code, `ping ${target}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it("gives hosts a default route and forwarding, and the lab neither", async () => {
    const route = await lab.exec(lab.hostNs("host-1"), ["ip", "route", "show", "default"]);
    expect(route.stdout).toContain("default via 192.168.240.1 dev eth0");
    const forward = async (ns: string) => (await lab.exec(ns, ["sysctl", "-n", "net.ipv4.ip_forward"])).stdout.trim();
    expect(await forward(lab.hostNs("host-1"))).toBe("1");
    expect(await forward(lab.labNs)).toBe("0");
    expect((await lab.exec(lab.labNs, ["ip", "route", "show", "default"])).stdout).toBe("");
  });

  it("shows the lab listener the connecting host's underlay address", async () => {
    const listener = await lab.listen(lab.labNs, 8080);
    try {
      const script = `require("node:net").connect(8080, ${JSON.stringify(lab.labAddress)}).on("data", (d) => process.stdout.write(d)).on("error", (e) => { console.error(e.message); process.exit(1); });`;
      const r = await lab.exec(lab.hostNs("host-1"), [process.execPath, "-e", script], { timeoutMs: 10_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${LISTENER_GREETING}\n`);
      expect(listener.connections()).toEqual([lab.hostAddress("host-1")]);
    } finally {
      await listener.close();
    }
  });

  it("destroys every namespace it made, with the processes still inside them", async () => {
    const other = await NetLab.create(["a"]);
    expect(await namespaces()).toEqual(expect.arrayContaining([other.labNs, other.hostNs("a")]));
    // A process that left its parent behind, as a daemonized QEMU does.
    await other.exec(other.hostNs("a"), ["sh", "-c", "sleep 600 >/dev/null 2>&1 &"]);
    const pids = (await execFileP("ip", ["netns", "pids", other.hostNs("a")])).stdout.trim();
    expect(pids).toMatch(/^\d+$/);
    await other.destroy();
    await other.destroy();
    expect((await namespaces()).filter((n) => n.startsWith(`iaas-${other.tag}-`))).toEqual([]);
    expect(await isAlive(Number(pids))).toBe(false);
  });
});

// The busybox guest's root shell on its second UART, with no network at all.
describe("GuestShell", () => {
  let dir: string;
  let shell: GuestShell;
  let kernelVersion: string;
  let pid = 0;

  beforeAll(async () => {
    const linux = await linuxGuest();
    kernelVersion = (await readFile(path.join(path.dirname(linux), "linux.kernel-version"), "utf8")).trim();
    dir = await mkdtemp("/tmp/ie-gs-");
    const disk = path.join(dir, "vm.qcow2");
    await execFileP("qemu-img", ["create", "-q", "-f", "qcow2", "-b", linux, "-F", "qcow2", disk]);
    const sock = path.join(dir, "ttyS1.sock");
    await execFileP("qemu-system-x86_64", [
      "-accel", "tcg", "-machine", "q35", "-m", "256", "-nodefaults", "-display", "none",
      "-daemonize", "-pidfile", path.join(dir, "qemu.pid"),
      "-serial", `file:${path.join(dir, "console.log")}`,
      "-chardev", `socket,id=serial1,path=${sock},server=on,wait=off`, "-serial", "chardev:serial1",
      "-drive", `file=${disk},format=qcow2,if=virtio`,
    ]);
    pid = Number((await readFile(path.join(dir, "qemu.pid"), "utf8")).trim());
    shell = await GuestShell.connect(sock, { timeoutMs: 90_000 });
  }, 120_000);

  afterAll(async () => {
    shell?.close();
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      for (let i = 0; i < 100 && (await isAlive(pid)); i++) await new Promise((r) => setTimeout(r, 50));
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs a command and returns its output without echo or prompt", async () => {
    expect(await shell.run("uname -r")).toEqual({ output: kernelVersion, code: 0 });
  });

  it("returns the command's exit code", async () => {
    expect((await shell.run("false")).code).toBe(1);
    expect(await shell.run("echo oops >&2; exit_code=7; (exit $exit_code)")).toEqual({ output: "oops", code: 7 });
  });

  it("keeps quotes, newlines and shell state, and reads long output to its end", async () => {
    expect(await shell.run(`cd /tmp\nprintf '%s|%s\\n' "a b" 'c"d'`)).toEqual({ output: 'a b|c"d', code: 0 });
    expect((await shell.run("pwd")).output).toBe("/tmp");
    const many = await shell.run("seq 1 3000");
    expect(many.output.split("\n")).toHaveLength(3000);
    expect(many.output.endsWith("\n2999\n3000")).toBe(true);
  });

  it("sends scripts longer than the line editor takes", async () => {
    const script = Array.from({ length: 150 }, (_, i) => `echo line-${i}`).join("\n");
    const r = await shell.run(script);
    expect(r.code).toBe(0);
    expect(r.output.split("\n")).toEqual(Array.from({ length: 150 }, (_, i) => `line-${i}`));
  });

  it("rejects a command that outlives its timeout, and answers again once that command has ended", async () => {
    await expect(shell.run("sleep 3", { timeoutMs: 1_000 })).rejects.toThrow(/no end marker within 1000 ms/);
    expect(await shell.run("echo alive", { timeoutMs: 10_000 })).toEqual({ output: "alive", code: 0 });
  });
});
