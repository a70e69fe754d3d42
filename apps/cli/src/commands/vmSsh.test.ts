import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HOST_ID, makeForward, makeHost, makeHostNetwork, makeVm } from "../testing/fixtures.js";
import { json, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";
import { runInheritingStdio } from "../runProcess.js";
import { sshArgv, sshForward } from "./vmSsh.js";

let server: ScriptedServer | null = null;
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "iaas-ssh-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await server?.close();
  server = null;
});

const ssh22 = makeForward({ hostPort: 2222, guestPort: 22 });
const running = makeVm({ state: "running" });

/** An API with web1 and its forwards, and the hosts. */
async function serve(options: { forwards?: ReturnType<typeof makeForward>[]; hosts?: ReturnType<typeof makeHost>[]; vm?: ReturnType<typeof makeVm> } = {}): Promise<ScriptedServer> {
  const table: Record<string, Route> = {
    "GET /v1/vms/web1": json(options.vm ?? running),
    "GET /v1/vms/web1/ports": json({ items: options.forwards ?? [ssh22] }),
    "GET /v1/hosts": json({ items: options.hosts ?? [makeHost()] }),
  };
  server = await startScriptedServer(routeTable(table));
  return server;
}

/** Runs `iaas argv` with a fake ssh that records its argv and exits with `code`. */
async function ssh(argv: string[], url: string, code = 0) {
  const calls: { command: string; args: readonly string[] }[] = [];
  const run = await runIaas(argv, url, {
    runProcess: (command, args) => {
      calls.push({ command, args });
      return Promise.resolve(code);
    },
  });
  return { ...run, calls };
}

describe("ssh argv", () => {
  it("puts the port, key, host key policy and destination before the extra arguments", () => {
    expect(sshArgv({ user: "debian", address: "10.0.0.5", port: 2222, extra: [] })).toEqual(["-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "debian@10.0.0.5"]);
    expect(sshArgv({ user: "root", address: "h", port: 22, identity: "/k", extra: ["-v", "uptime"] })).toEqual([
      "-p", "22", "-i", "/k", "-o", "StrictHostKeyChecking=accept-new", "root@h", "-v", "uptime",
    ]);
  });

  it("picks a tcp forward to guest port 22, preferring nic 0", () => {
    const udp = makeForward({ guestPort: 22, protocol: "udp" });
    const nic1 = makeForward({ id: "f1", guestPort: 22, nicIndex: 1, hostPort: 2223 });
    expect(sshForward([udp, makeForward()])).toBeUndefined();
    expect(sshForward([nic1, ssh22])).toBe(ssh22);
    expect(sshForward([nic1])).toBe(nic1);
  });
});

describe("vm ssh", () => {
  it("connects to the host's underlay address when the forward listens everywhere", async () => {
    const s = await serve({ hosts: [makeHost({ network: makeHostNetwork({ address: "192.168.1.10" }) })] });
    const run = await ssh(["vm", "ssh", "web1"], s.url);
    expect(run.code).toBe(0);
    expect(run.calls).toEqual([{ command: "ssh", args: ["-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "debian@192.168.1.10"] }]);
    expect(run.stdout).toBe("");
  });

  it("prefers the forward's own address, and --address over both", async () => {
    const s = await serve({ forwards: [makeForward({ hostPort: 2200, guestPort: 22, address: "10.1.2.3" })], hosts: [makeHost({ network: makeHostNetwork() })] });
    expect((await ssh(["vm", "ssh", "web1"], s.url)).calls[0]?.args.at(-1)).toBe("debian@10.1.2.3");
    expect((await ssh(["vm", "ssh", "web1", "--address", "jump.example.org"], s.url)).calls[0]?.args.at(-1)).toBe("debian@jump.example.org");
  });

  it("falls back to 127.0.0.1 when the host reported no address", async () => {
    const s = await serve({ hosts: [makeHost({ id: HOST_ID, network: null })] });
    expect((await ssh(["vm", "ssh", "web1"], s.url)).calls[0]?.args.at(-1)).toBe("debian@127.0.0.1");
  });

  it("passes --user, -i and the arguments after -- to ssh", async () => {
    const key = path.join(dir, "id_ed25519");
    await writeFile(key, "key");
    const s = await serve();
    const run = await ssh(["vm", "ssh", "web1", "--user", "root", "-i", key, "--", "-v", "cat", "/etc/hostname"], s.url);
    expect(run.code).toBe(0);
    expect(run.calls[0]?.args).toEqual(["-p", "2222", "-i", key, "-o", "StrictHostKeyChecking=accept-new", "root@127.0.0.1", "-v", "cat", "/etc/hostname"]);
  });

  it("exits with ssh's exit code, printing nothing of its own", async () => {
    const s = await serve();
    expect(await ssh(["vm", "ssh", "web1", "--", "false"], s.url, 255)).toMatchObject({ code: 255, stdout: "", stderr: "" });
  });

  it("exits 3 with a hint when no forward leads to port 22", async () => {
    const s = await serve({ forwards: [makeForward()] });
    const run = await ssh(["vm", "ssh", "web1"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe("error: vm web1 has no port forward to its port 22 (tcp)\nhint: add one with: iaas vm port add web1 2222:22 --wait\n");
    expect(run.calls).toHaveLength(0);
  });

  it("exits 3 when the VM is not running", async () => {
    const s = await serve({ vm: makeVm({ state: "stopped" }) });
    const run = await ssh(["vm", "ssh", "web1"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("hint: start it with: iaas vm start web1 --wait");
  });

  it("exits 2 for an identity file that cannot be read, before calling the API", async () => {
    const s = await serve();
    const run = await ssh(["vm", "ssh", "web1", "-i", path.join(dir, "missing")], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`error: cannot read the identity file ${path.join(dir, "missing")}\n`);
    expect(s.requests).toHaveLength(0);
  });

  it("exits 1 with a hint when ssh cannot be run", async () => {
    const s = await serve();
    const run = await runIaas(["vm", "ssh", "web1"], s.url, { runProcess: () => Promise.reject(new Error("spawn ssh ENOENT")) });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: cannot run ssh: spawn ssh ENOENT\nhint: install an OpenSSH client");
  });
});

describe("running a program with the terminal", () => {
  it("answers the program's exit code, with argv passed as is (no shell)", async () => {
    expect(await runInheritingStdio(process.execPath, ["-e", "process.exit(process.argv[1] === '$HOME; x' ? 7 : 1)", "$HOME; x"])).toBe(7);
  });

  it("rejects when the program does not exist", async () => {
    await expect(runInheritingStdio("/nonexistent/ssh", [])).rejects.toThrow(/ENOENT/);
  });
});
