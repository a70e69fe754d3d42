import { createServer, type Server } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Host, Job, Vm } from "@iaas/contracts";
import { eventually, guestImages, Stack } from "./harness.js";
import { GuestShell } from "./guestShell.js";

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

// A worker that is not root cannot make bridges or taps: it falls back to user-mode NICs that are
// isolated from the host (restrict=on), get their IPAM address by DHCP, and take port forwards.
// Nothing here leaves the loopback: the forward listens on 127.0.0.1 only.
describe.skipIf(!isRoot)("a worker without root: isolated user-mode NICs", () => {
  let stack: Stack;
  let shell: GuestShell | undefined;
  let hostService: Server;
  let hostServicePort = 0;
  let hostServiceConnections = 0;

  beforeAll(async () => {
    const images = await guestImages(["linux"]);
    hostService = createServer((s) => {
      hostServiceConnections++;
      s.end("IAAS-HOST-SECRET\n");
    });
    await new Promise<void>((r) => hostService.listen(0, "127.0.0.1", r));
    const address = hostService.address();
    hostServicePort = typeof address === "object" && address ? address.port : 0;
    // IAAS_NETWORK_MODE=auto: the worker must find out by itself that it cannot do bridges.
    stack = await Stack.start(["host-u"], { hostUser: { "host-u": NOBODY }, hostEnv: { "host-u": { IAAS_NETWORK_MODE: "auto" } } });
    const imported = await stack.cli(["image", "import", "linux", "--file", images.linux, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    shell?.close();
    await stack?.stop();
    await new Promise((r) => hostService?.close(r));
  }, 60_000);

  it("reports the host in user mode, saying why", async () => {
    const hosts = await stack.cliJson<{ items: Host[] }>(["host", "list"]);
    const host = hosts.items[0];
    expect(host?.network?.mode).toBe("user");
    expect(host?.network?.capabilities.root).toBe(false);
    expect(host?.network?.notes.join("; ")).toMatch(/does not run as root/);
    const table = await stack.cli(["host", "list"]);
    expect(table.stdout).toMatch(/host-u.*user/);
  });

  it("gives the guest its IPAM address by DHCP, forwards a port, and keeps the host's loopback closed", async () => {
    const created = await stack.cli(["vm", "create", "iso", "--image", "linux", "--memory", "192M", "--start", "--wait"]);
    expect(created.code, `${created.stderr}\n${stack.logTail()}`).toBe(0);
    const vm = await stack.cliJson<Vm>(["vm", "show", "iso"]);
    expect(vm.userModeNetworking).toBe(true);
    const nic = vm.nics[0];
    expect(nic?.networkName).toBe("default");
    shell = await GuestShell.connect(path.join(stack.dir, "host-u", "vms", vm.id, "ttyS1.sock"), { timeoutMs: 90_000 });
    await eventually("the guest's DHCP address", async () => (await shell?.run("ip -4 -o addr show eth0"))?.output.includes(`${nic?.ip}/`), 30_000, 1000);

    // The host's loopback service, through the user-mode gateway (QEMU's host address), is closed.
    const gateway = (await stack.cliJson<{ items: { name: string; gateway: string }[] }>(["network", "list"])).items.find((n) => n.name === "default")?.gateway;
    const probe = await shell.run(`nc -w 2 ${gateway} ${hostServicePort} </dev/null`, { timeoutMs: 20_000 });
    expect(probe.code).not.toBe(0);
    expect(probe.output).not.toContain("IAAS-HOST-SECRET");
    expect(hostServiceConnections).toBe(0);

    // A forward added while the VM runs (QEMU's hostfwd_add) reaches a guest service from the host.
    await shell.run("mkdir -p /tmp/www && echo IAAS-USERMODE-PAGE > /tmp/www/index.html && httpd -p 8080 -h /tmp/www");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const added = await stack.cliJson<Job>(["vm", "port", "add", "iso", `${port}:8080`, "--address", "127.0.0.1", "--wait"]);
    expect(added.state).toBe("succeeded");
    const page = await eventually("the forwarded page", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return res.ok ? res.text() : null;
    }, 20_000);
    expect(page).toContain("IAAS-USERMODE-PAGE");
    const removed = await stack.cli(["vm", "port", "remove", "iso", String(port), "--wait"]);
    expect(removed.code, removed.stderr).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  }, 240_000);
});
