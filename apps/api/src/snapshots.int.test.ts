import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Problem, Snapshot } from "@iaas/contracts";
import { snapshotMachineOf } from "@iaas/contracts";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Snapshot requests through the REST API against the real Postgres and Redis; no worker runs, so
// jobs stay queued and the tests set VM and snapshot rows as a worker would have left them.
describe("VM snapshots over REST", () => {
  let api: TestApi;
  let vmId: string;

  beforeAll(async () => {
    api = await startTestApi();
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
    const res = await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    vmId = ((await res.json()) as { vm: { id: string } }).vm.id;
    await settle("running");
  });

  const json = async <T>(res: Response) => (await res.json()) as T;
  const settle = (state: "running" | "stopped") => api.db.vm.update({ where: { id: vmId }, data: { state, lockJobId: null } });
  const ready = (name: string) => api.db.snapshot.update({ where: { vmId_name: { vmId, name } }, data: { state: "ready" } });

  it("writes the snapshot row with its job under the VM lock, and refuses a second snapshot of that name", async () => {
    const res = await api.post("/v1/vms/web/snapshots", { name: "s1", memory: true, description: "first" });
    expect(res.status).toBe(202);
    const body = await json<{ job: { type: string; id: string }; snapshot: Snapshot; vm: { lockJobId: string } }>(res);
    expect(body.job.type).toBe("vm.snapshot.create");
    expect(body.snapshot).toMatchObject({ name: "s1", kind: "memory", state: "creating", vmState: "running", description: "first" });
    expect(body.vm.lockJobId).toBe(body.job.id);
    await settle("running");
    const again = await api.post("/v1/vms/web/snapshots", { name: "s1" });
    expect(again.status).toBe(409);
    expect((await json<Problem>(again)).code).toBe("NAME_TAKEN");
    const list = await json<{ items: Snapshot[] }>(await fetch(`${api.base}/v1/vms/web/snapshots`));
    expect(list.items.map((s) => s.name)).toEqual(["s1"]);
  });

  it("refuses --memory on a stopped VM, and a disk-only restore of a running VM without restart", async () => {
    await settle("stopped");
    const cold = await api.post("/v1/vms/web/snapshots", { name: "m", memory: true });
    expect(cold.status).toBe(400);
    expect((await json<Problem>(cold)).detail).toMatch(/no memory to save/);
    expect((await api.post("/v1/vms/web/snapshots", { name: "d" })).status).toBe(202);
    await ready("d");
    await settle("running");
    const refused = await api.post("/v1/vms/web/snapshots/d/restore", {});
    expect(refused.status).toBe(409);
    expect((await json<Problem>(refused)).hint).toMatch(/--restart/);
    const restart = await api.post("/v1/vms/web/snapshots/d/restore", { restart: true });
    expect(restart.status).toBe(202);
    expect((await json<{ job: { payload: { restart: boolean } } }>(restart)).job.payload.restart).toBe(true);
  });

  it("refuses to load a memory snapshot into a VM whose CPUs, memory or NICs changed since", async () => {
    expect((await api.post("/v1/vms/web/snapshots", { name: "m" , memory: true })).status).toBe(202);
    const nics = await api.db.nic.findMany({ where: { vmId }, orderBy: { index: "asc" } });
    await api.db.snapshot.update({
      where: { vmId_name: { vmId, name: "m" } },
      data: { state: "ready", machine: snapshotMachineOf({ cpus: 1, memoryBytes: 256 * 1024 * 1024 }, nics.map((n) => n.mac)) },
    });
    await settle("running");
    expect((await api.post("/v1/vms/web/snapshots/m/restore", {})).status).toBe(202);
    await settle("running");
    await api.db.vm.update({ where: { id: vmId }, data: { cpus: 2 } });
    const changed = await api.post("/v1/vms/web/snapshots/m/restore", {});
    expect(changed.status).toBe(409);
    expect((await json<Problem>(changed)).detail).toMatch(/changed since memory snapshot 'm'/);
  });

  it("answers 404 for an unknown snapshot, and marks one being deleted", async () => {
    expect((await fetch(`${api.base}/v1/vms/web/snapshots/nope`, { method: "DELETE" })).status).toBe(404);
    await api.post("/v1/vms/web/snapshots", { name: "s" });
    await ready("s");
    await settle("running");
    const res = await fetch(`${api.base}/v1/vms/web/snapshots/s`, { method: "DELETE" });
    expect(res.status).toBe(202);
    expect((await api.db.snapshot.findUniqueOrThrow({ where: { vmId_name: { vmId, name: "s" } } })).state).toBe("deleting");
  });
});
