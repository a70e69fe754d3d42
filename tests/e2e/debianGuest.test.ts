import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, Vm } from "@iaas/contracts";
import { eventually, ROOT, Stack } from "./harness.js";
import { NetLab, netlabAvailable } from "./netlab.js";

const execFileP = promisify(execFile);
const available = await netlabAvailable();

// The path a user walks: a real Debian 12 cloud image built offline, a VM created with --ssh-key
// on a nat network, a port forward to its sshd, and a real ssh client running `hostname`.
// One boot under TCG takes a minute or two; the image is built once and cached.
describe.skipIf(!available.ok)(`a Debian cloud guest reached with ssh${available.ok ? "" : ` (skipped: ${available.reason})`}`, () => {
  let lab: NetLab;
  let stack: Stack;
  let keyDir: string;
  let image: string;

  beforeAll(async () => {
    const out = process.env.IAAS_GUEST_DIR ?? path.join(ROOT, ".cache/guests");
    await execFileP("bash", [path.join(ROOT, "scripts/guest/build-debian.sh"), "--out", out], { timeout: 1_500_000, maxBuffer: 64 * 1024 * 1024 });
    image = path.join(out, "debian-12.qcow2");
    keyDir = await mkdtemp("/tmp/iaas-key-");
    await execFileP("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", path.join(keyDir, "id")]);
    lab = await NetLab.create(["host-a"]);
    stack = await Stack.start(["host-a"], {
      hostEnv: { "host-a": { IAAS_NETNS: lab.hostNs("host-a"), IAAS_HOST_ADDRESS: lab.hostAddress("host-a"), IAAS_NETWORK_MODE: "bridge" } },
      workerEnv: { IAAS_HOST_MEMORY: "4G" },
    });
    const imported = await stack.cli(["image", "import", "debian-12", "--file", image, "--wait"], { timeoutMs: 300_000 });
    expect(imported.code, imported.stderr).toBe(0);
  }, 1_800_000);

  afterAll(async () => {
    await stack?.stop();
    await lab?.destroy();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  }, 120_000);

  it("boots with the SSH key from cloud-init, takes its name as host name, and answers ssh through a forward", async () => {
    const started = Date.now();
    const created = await stack.cli(
      ["vm", "create", "deb1", "--image", "debian-12", "--memory", "1G", "--cpus", "2", "--disk", "3G", "--ssh-key", path.join(keyDir, "id.pub"), "--start", "--wait"],
      { timeoutMs: 300_000 },
    );
    expect(created.code, `${created.stderr}\n${stack.logTail()}`).toBe(0);
    const forward = await stack.cliJson<Job>(["vm", "port", "add", "deb1", "2222:22", "--wait"]);
    expect(forward.state).toBe("succeeded");
    const waited = await stack.cli(["vm", "wait", "deb1", "--for", "port=22", "--timeout", "480"], { timeoutMs: 600_000 });
    expect(waited.code, `${waited.stderr}\n${(await stack.cli(["vm", "console", "deb1"])).stdout.slice(-3000)}`).toBe(0);
    const bootSeconds = (Date.now() - started) / 1000;
    const vm = await stack.cliJson<Vm>(["vm", "show", "deb1"]);
    expect(vm.nics[0]?.lease?.ip).toBe(vm.nics[0]?.ip);

    const ssh = (ns: string, address: string) =>
      lab.exec(
        ns,
        ["ssh", "-p", "2222", "-i", path.join(keyDir, "id"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", `debian@${address}`, "hostname; ip -4 -o addr show"],
        { timeoutMs: 60_000 },
      );
    // Wait for cloud-init to say it is done with the seed: sshd answers earlier, but cloud-init restarts it.
    await eventually("cloud-init to finish", async () => /Cloud-init v\. [\d.]+ finished/.test((await stack.cli(["vm", "console", "deb1"])).stdout), 120_000, 2000);
    // The key may still be on its way: retry for a while.
    let result = await ssh(lab.hostNs("host-a"), "127.0.0.1");
    for (let i = 0; i < 30 && result.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 5000));
      result = await ssh(lab.hostNs("host-a"), "127.0.0.1");
    }
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split("\n")[0]).toBe("deb1");
    expect(result.stdout).toContain(`${vm.nics[0]?.ip}/`);
    // From another machine (the lab), through the host's underlay address.
    const remote = await ssh(lab.labNs, lab.hostAddress("host-a"));
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout.split("\n")[0]).toBe("deb1");
    process.stdout.write(`debian guest: create --start to ssh answering in ${bootSeconds.toFixed(0)} s\n`);
    const key = (await readFile(path.join(keyDir, "id.pub"), "utf8")).trim().split(" ")[1] ?? "";
    const authorized = await lab.exec(lab.hostNs("host-a"), ["ssh", "-p", "2222", "-i", path.join(keyDir, "id"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "debian@127.0.0.1", "cat ~/.ssh/authorized_keys"]);
    expect(authorized.stdout).toContain(key);
  }, 900_000);
});
