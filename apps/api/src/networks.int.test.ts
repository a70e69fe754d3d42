import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Network, Problem, Vm } from "@iaas/contracts";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Networks, IPAM, NICs and port forwards through the REST API, in-process against the real Postgres
// and Redis; host rows stand in for workers (jobs stay queued).
describe("networks, NICs and port forwards over REST", () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi();
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
  });

  const json = async <T>(res: Response) => (await res.json()) as T;
  const createVm = (name: string, extra: Record<string, unknown> = {}) => api.post("/v1/vms", { name, image: "deb", memory: "256M", ...extra });
  const del = (p: string) => fetch(`${api.base}${p}`, { method: "DELETE" });
  /** Puts a VM in a resting state and frees its lock, as a worker finishing its job would. */
  const settle = (name: string, state: "stopped" | "running") => api.db.vm.updateMany({ where: { name }, data: { state, lockJobId: null } });

  it("creates a network with a free private /24 when no subnet is given, and lists it", async () => {
    const res = await api.post("/v1/networks", { name: "lan" });
    expect(res.status).toBe(201);
    const lan = await json<Network>(res);
    expect(lan).toMatchObject({ name: "lan", mode: "nat", mtu: 1450, dnsDomain: "iaas.internal" });
    expect(lan.subnet).toMatch(/^10\.\d+\.\d+\.0\/24$/);
    expect(lan.subnet).not.toBe("10.200.0.0/24");
    expect(lan.gateway).toBe(lan.subnet.replace(/0\/24$/, "1"));
    const list = await json<{ items: Network[] }>(await fetch(`${api.base}/v1/networks`));
    expect(list.items.map((n) => n.name)).toEqual(["default", "lan"]);
  });

  it("refuses a subnet that overlaps another network, a host's route, or a public range, saying which", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ name: "a", subnet: "10.200.0.128/25" }, /overlaps network 'default'/],
      [{ name: "b", subnet: "192.168.1.0/24" }, /overlaps 192\.168\.1\.0\/24 on eth0 of host 'h1'/],
      [{ name: "c", subnet: "8.8.8.0/24" }, /not a private/],
      [{ name: "d", subnet: "10.1.2.3/24" }, /host bits set/],
    ];
    for (const [body, message] of cases) {
      const res = await api.post("/v1/networks", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const problem = await json<Problem>(res);
      expect(problem.detail).toMatch(message);
      expect(problem.hint).toBeTruthy();
    }
    const allowed = await api.post("/v1/networks", { name: "e", subnet: "8.8.8.0/24", allowPublicSubnet: true });
    expect(allowed.status).toBe(201);
  });

  it("allocates each NIC a MAC and the lowest free address in the submitting transaction, honouring ip= and mac=", async () => {
    const first = await json<{ vm: Vm }>(await createVm("web1"));
    expect(first.vm.nics).toHaveLength(1);
    expect(first.vm.nics[0]).toMatchObject({ index: 0, networkName: "default", ip: "10.200.0.2", lease: null, forwards: [] });
    expect(first.vm.nics[0]?.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const second = await json<{ vm: Vm }>(await createVm("web2", { networks: [{ network: "default", ip: "10.200.0.9", mac: "52:54:00:AA:BB:CC" }] }));
    expect(second.vm.nics[0]).toMatchObject({ ip: "10.200.0.9", mac: "52:54:00:aa:bb:cc" });
    const third = await json<{ vm: Vm }>(await createVm("web3"));
    expect(third.vm.nics[0]?.ip).toBe("10.200.0.3");
    const taken = await createVm("web4", { networks: [{ network: "default", ip: "10.200.0.9" }] });
    expect(taken.status).toBe(409);
    expect((await json<Problem>(taken)).code).toBe("ADDRESS_TAKEN");
    const gateway = await createVm("web5", { networks: [{ network: "default", ip: "10.200.0.1" }] });
    expect(gateway.status).toBe(400);
    const none = await json<{ vm: Vm }>(await createVm("bare", { networks: [] }));
    expect(none.vm.nics).toEqual([]);
    // A refused create leaves no VM and no NIC behind.
    expect(await api.db.vm.findFirst({ where: { name: "web4" } })).toBeNull();
    expect(await api.db.nic.count()).toBe(3);
  });

  it("refuses a create without --network when there is no 'default' network, saying what to do", async () => {
    await api.db.network.deleteMany({ where: { name: "default" } });
    const res = await createVm("lonely");
    expect(res.status).toBe(400);
    expect((await json<Problem>(res)).hint).toMatch(/iaas network create default/);
  });

  it("refuses bad cloud-init input: a key that is not public, a hostname that is no DNS label, user-data over 64 KiB", async () => {
    const bad = [
      { sshKeys: ["-----BEGIN OPENSSH PRIVATE KEY-----"] },
      { hostname: "Not_A_Label" },
      { userData: `#cloud-config\n${"x".repeat(65 * 1024)}` },
    ];
    for (const extra of bad) {
      const res = await createVm("guest", extra);
      expect(res.status, JSON.stringify(extra).slice(0, 60)).toBe(400);
      expect((await json<Problem>(res)).code).toBe("VALIDATION_FAILED");
    }
    expect(await api.db.vm.count()).toBe(0);
  });

  it("keeps out a host whose routes overlap the VM's network, and says why", async () => {
    await api.db.network.create({ data: { name: "clash", subnet: "192.168.1.0/24", gateway: "192.168.1.1", mtu: 1450, dnsDomain: "x.internal" } });
    const res = await createVm("vm1", { networks: [{ network: "clash" }] });
    expect(res.status).toBe(409);
    const problem = await json<Problem>(res);
    expect(problem.code).toBe("NO_HOST_AVAILABLE");
    expect(problem.detail).toMatch(/h1: network 'clash' \(192\.168\.1\.0\/24\) overlaps 192\.168\.1\.0\/24 on eth0/);
  });

  it("adds and removes NICs only on a stopped VM, releasing the address", async () => {
    await api.post("/v1/networks", { name: "lan", subnet: "10.9.0.0/24" });
    await createVm("web1");
    const busy = await api.post("/v1/vms/web1/nics", { network: "lan" });
    expect(busy.status).toBe(409);
    await settle("web1", "running");
    const running = await api.post("/v1/vms/web1/nics", { network: "lan" });
    expect(running.status).toBe(409);
    expect((await json<Problem>(running)).hint).toMatch(/iaas vm stop web1/);
    await settle("web1", "stopped");
    const added = await api.post("/v1/vms/web1/nics", { network: "lan" });
    expect(added.status).toBe(202);
    const body = await json<{ job: { type: string }; vm: Vm }>(added);
    expect(body.job.type).toBe("vm.nic.add");
    expect(body.vm.nics.map((n) => [n.index, n.networkName, n.ip])).toEqual([
      [0, "default", "10.200.0.2"],
      [1, "lan", "10.9.0.2"],
    ]);
    await settle("web1", "stopped");
    const removed = await del("/v1/vms/web1/nics/lan");
    expect(removed.status).toBe(202);
    expect((await json<{ vm: Vm }>(removed)).vm.nics.map((n) => n.networkName)).toEqual(["default"]);
    expect(await api.db.nic.count({ where: { ip: "10.9.0.2" } })).toBe(0);
  });

  it("refuses a host port another VM's forward or a host process holds, naming the holder", async () => {
    await createVm("web1");
    await createVm("web2");
    await settle("web1", "running");
    await settle("web2", "running");
    const ok = await api.post("/v1/vms/web1/ports", { hostPort: 8080, guestPort: 80 });
    expect(ok.status, await ok.clone().text()).toBe(202);
    const created = await json<{ job: { type: string }; forward: { hostPort: number; guestPort: number; protocol: string } }>(ok);
    expect(created.job.type).toBe("vm.port.add");
    expect(created.forward).toMatchObject({ hostPort: 8080, guestPort: 80, protocol: "tcp" });
    await settle("web1", "running");
    const clash = await api.post("/v1/vms/web2/ports", { hostPort: 8080, guestPort: 80 });
    expect(clash.status).toBe(409);
    expect((await json<Problem>(clash)).detail).toMatch(/already forwarded to VM 'web1'/);
    const udp = await api.post("/v1/vms/web2/ports", { hostPort: 8080, guestPort: 80, protocol: "udp" });
    expect(udp.status).toBe(202);
    await settle("web2", "running");
    const sshd = await api.post("/v1/vms/web2/ports", { hostPort: 22, guestPort: 22 });
    expect(sshd.status).toBe(409);
    expect((await json<Problem>(sshd)).detail).toMatch(/held by a process listening on the host/);
    const list = await json<{ items: { hostPort: number }[] }>(await fetch(`${api.base}/v1/vms/web1/ports`));
    expect(list.items.map((p) => p.hostPort)).toEqual([8080]);
    const removed = await del("/v1/vms/web1/ports/8080");
    expect(removed.status).toBe(202);
    expect(await api.db.portForward.count({ where: { vmId: (await api.db.vm.findFirstOrThrow({ where: { name: "web1" } })).id } })).toBe(0);
  });

  it("refuses to delete a network that NICs use, naming the VMs, and deletes it once unused", async () => {
    await api.post("/v1/networks", { name: "lan", subnet: "10.9.0.0/24" });
    await createVm("web1", { networks: [{ network: "lan" }] });
    await createVm("web2", { networks: [{ network: "lan" }] });
    const refused = await del("/v1/networks/lan");
    expect(refused.status).toBe(409);
    const problem = await json<Problem>(refused);
    expect(problem.code).toBe("NETWORK_IN_USE");
    expect(problem.detail).toMatch(/'web1', 'web2'/);
    await api.db.vm.deleteMany({ where: { name: { in: ["web1", "web2"] } } });
    expect((await del("/v1/networks/lan")).status).toBe(204);
    expect((await fetch(`${api.base}/v1/networks/lan`)).status).toBe(404);
  });
});
