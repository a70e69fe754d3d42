import { randomUUID } from "node:crypto";
import { Queue } from "bullmq";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { hostQueueName, type HostEvacuation, type Job, type Vm as VmDto, type VmState } from "@iaas/contracts";
import { createJobRow, type PrismaClient } from "@iaas/db";
import { startTestApi, type TestApi } from "./testing/testApi.js";
import { TEST_HOST_NETWORK } from "./testing/hostNetwork.js";

// Hosts that go away, against the real Postgres and Redis with rows written directly (no worker):
// liveness on the database clock, VMs of a lost host shown `unknown`, `vm delete --force`,
// `vm migrate` and `host evacuate` planning and submission.
describe("hosts that go away", () => {
  let api: TestApi;
  let db: PrismaClient;
  let imageId: string;
  let networkId: string;

  beforeAll(async () => {
    api = await startTestApi();
    db = api.db;
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  beforeEach(async () => {
    await api.reset();
    await addHost("h2", "192.0.2.11");
    await addHost("h3", "192.0.2.12");
    imageId = (await db.image.findFirstOrThrow({ where: { name: "deb" } })).id;
    networkId = (await db.network.findFirstOrThrow({ where: { name: "default" } })).id;
  });

  async function addHost(id: string, address: string) {
    await db.host.create({
      data: { id, name: id, cpus: 8, memoryBytes: 8n * 1024n ** 3n, diskBytes: 100n * 1024n ** 3n, accelerator: "tcg", address, network: { ...TEST_HOST_NETWORK, address } },
    });
  }

  /** Sets a host's last heartbeat `seconds` before the database's now. */
  async function silence(hostId: string, seconds: number) {
    await db.$executeRaw`UPDATE "Host" SET "lastHeartbeatAt" = (now() AT TIME ZONE 'UTC') - make_interval(secs => ${seconds}) WHERE "id" = ${hostId}`;
  }

  let nextIp = 10;
  async function vmRow(name: string, hostId: string, state: VmState, extra: { lockJobId?: string } = {}) {
    const vm = await db.vm.create({ data: { name, hostId, state, imageId, cpus: 1, memoryBytes: 256n * 1024n ** 2n, diskBytes: 1024n ** 3n, ...extra } });
    const ip = `10.200.0.${nextIp++}`;
    const nic = await db.nic.create({ data: { vmId: vm.id, networkId, index: 0, mac: `52:54:00:00:00:${(nextIp % 256).toString(16).padStart(2, "0")}`, ip } });
    return { vm, nic };
  }

  async function queuedJob(vmId: string, hostId: string, name: string): Promise<string> {
    const jobId = randomUUID();
    await db.$transaction((tx) => createJobRow(tx, jobId, { type: "vm.start", payload: { vmId }, hostId, vmId, targetName: name }, {}));
    await db.vm.update({ where: { id: vmId }, data: { lockJobId: jobId } });
    return jobId;
  }

  async function readyBackup(vmId: string, vmName: string, hostId: string, createdAt: Date) {
    return db.backup.create({
      data: {
        vmId,
        vmName,
        hostId,
        kind: "full",
        state: "ready",
        live: false,
        path: `backups/${vmId}/${randomUUID()}.qcow2`,
        sizeBytes: 1000n,
        diskBytes: 1024n ** 3n,
        sha256: "a".repeat(64),
        jobId: randomUUID(),
        config: { cpus: 1, memoryBytes: 256 * 1024 ** 2, diskBytes: 1024 ** 3, image: { id: imageId, name: "deb" }, hostname: vmName, sshKeys: [], userData: null, nics: [] },
        createdAt,
        finishedAt: createdAt,
      },
    });
  }

  const get = async <T>(p: string) => (await fetch(`${api.base}${p}`)).json() as Promise<T>;
  const del = (p: string) => fetch(`${api.base}${p}`, { method: "DELETE" });

  describe("liveness", () => {
    it("lists hosts online, offline and lost by their heartbeat's age on the database clock", async () => {
      await silence("h2", 60);
      await silence("h3", 600);
      const { items } = await get<{ items: { id: string; state: string }[] }>("/v1/hosts");
      expect(Object.fromEntries(items.map((h) => [h.id, h.state]))).toEqual({ h1: "online", h2: "offline", h3: "lost" });
    });

    it("judges with the database's clock, not the API process's: a process clock an hour ahead changes nothing", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 3_600_000 });
      try {
        const { items } = await get<{ items: { id: string; state: string }[] }>("/v1/hosts");
        expect(items.find((h) => h.id === "h1")?.state).toBe("online");
        const { vm } = await vmRow("clocked", "h1", "stopped");
        const res = await api.post(`/v1/vms/${vm.name}/start`);
        expect(res.status).toBe(202);
      } finally {
        vi.useRealTimers();
      }
    });

    it("places nothing on a lost host", async () => {
      await silence("h1", 600);
      await silence("h2", 600);
      await silence("h3", 600);
      const res = await api.post("/v1/vms", { name: "nowhere", image: "deb", memory: "256M" });
      expect(res.status).toBe(409);
      const problem = (await res.json()) as { code: string; detail: string };
      expect(problem.code).toBe("NO_HOST_AVAILABLE");
      expect(problem.detail).toContain("offline (last heartbeat 600s ago)");
    });
  });

  describe("VMs of a lost host", () => {
    it("are shown unknown, with the state last recorded and the host's state", async () => {
      await vmRow("gone", "h3", "running");
      await vmRow("here", "h1", "running");
      await silence("h3", 600);
      const { items } = await get<{ items: VmDto[] }>("/v1/vms");
      expect(items.map((v) => [v.name, v.state, v.reportedState, v.hostState])).toEqual([
        ["gone", "unknown", "running", "lost"],
        ["here", "running", "running", "online"],
      ]);
      const shown = await get<VmDto>("/v1/vms/gone");
      expect(shown).toMatchObject({ state: "unknown", reportedState: "running", hostState: "lost" });
    });

    it("refuses actions with HOST_LOST, pointing at --force and evacuate; an offline host's with HOST_OFFLINE", async () => {
      await vmRow("gone", "h3", "running");
      await vmRow("away", "h2", "running");
      await silence("h3", 600);
      await silence("h2", 60);
      const lost = await api.post("/v1/vms/gone/stop", { force: true });
      expect(lost.status).toBe(409);
      const problem = (await lost.json()) as { code: string; detail: string; hint: string };
      expect(problem.code).toBe("HOST_LOST");
      expect(problem.detail).toMatch(/its host 'h3' is lost \(no heartbeat for 10 min\)/);
      expect(problem.hint).toContain("iaas vm delete gone --force");
      expect(problem.hint).toContain("iaas host evacuate h3");
      const offline = await api.post("/v1/vms/away/stop", { force: true });
      expect(offline.status).toBe(503);
      expect(((await offline.json()) as { code: string }).code).toBe("HOST_OFFLINE");
      const plainDelete = await del("/v1/vms/gone");
      expect(((await plainDelete.json()) as { code: string }).code).toBe("HOST_LOST");
      expect(await db.vm.count({ where: { name: "gone" } })).toBe(1);
    });
  });

  describe("vm delete --force", () => {
    it("is refused for a VM whose host is online, saying to delete it normally", async () => {
      await vmRow("web", "h1", "running");
      const res = await del("/v1/vms/web?force=true");
      expect(res.status).toBe(409);
      const problem = (await res.json()) as { code: string; hint: string };
      expect(problem.code).toBe("INVALID_STATE");
      expect(problem.hint).toContain("iaas vm delete web`");
      expect(await db.vm.count({ where: { name: "web" } })).toBe(1);
      expect(await db.job.count({ where: { type: "vm_delete" } })).toBe(0);
    });

    it("is refused while the host is offline but not lost yet", async () => {
      await vmRow("web", "h2", "running");
      await silence("h2", 60);
      const res = await del("/v1/vms/web?force=true");
      expect(res.status).toBe(503);
      expect(((await res.json()) as { detail: string }).detail).toContain("not lost yet");
      expect(await db.vm.count({ where: { name: "web" } })).toBe(1);
    });

    it("removes the records of a VM on a lost host at once, in a finished job that ends the jobs stuck there", async () => {
      const { vm, nic } = await vmRow("gone", "h3", "running");
      await db.portForward.create({ data: { nicId: nic.id, vmId: vm.id, hostId: "h3", protocol: "tcp", hostPort: 8080, guestPort: 80 } });
      await db.snapshot.create({ data: { vmId: vm.id, name: "before", kind: "disk", state: "ready", vmState: "running" } });
      await db.backupSchedule.create({ data: { vmId: vm.id, everyMs: 3_600_000, keepLast: 3 } });
      const stuck = await queuedJob(vm.id, "h3", vm.name);
      await silence("h3", 600);

      const res = await del("/v1/vms/gone?force=true");
      expect(res.status).toBe(200);
      const body = (await res.json()) as { job: Job };
      expect(res.headers.get("location")).toBe(`/v1/jobs/${body.job.id}`);
      expect(body.job).toMatchObject({ type: "vm.delete", state: "succeeded", vmId: vm.id, hostId: "h3", payload: { vmId: vm.id, force: true }, result: { vmId: vm.id, deleted: true } });

      expect(await db.vm.count({ where: { id: vm.id } })).toBe(0);
      expect(await db.nic.count({ where: { vmId: vm.id } })).toBe(0);
      expect(await db.portForward.count({ where: { vmId: vm.id } })).toBe(0);
      expect(await db.snapshot.count({ where: { vmId: vm.id } })).toBe(0);
      expect(await db.backupSchedule.count({ where: { vmId: vm.id } })).toBe(0);
      expect(await db.job.findUniqueOrThrow({ where: { id: stuck } })).toMatchObject({ state: "cancelled", errorCode: "JOB_CANCELLED" });

      const listed = await get<{ items: Job[] }>(`/v1/jobs?host=h3&type=vm.delete`);
      expect(listed.items.map((j) => j.id)).toEqual([body.job.id]);
      const events = await db.jobEvent.findMany({ where: { jobId: body.job.id }, orderBy: { seq: "asc" } });
      expect(events.map((e) => e.state)).toEqual(["queued", "succeeded"]);
      expect(events[1]?.message).toContain("its files there are removed when that host's worker comes back");
      await vi.waitFor(async () => {
        expect(await db.auditEvent.findFirst({ where: { jobId: body.job.id } })).toMatchObject({ method: "DELETE", action: "vm.delete", outcome: "allowed" });
      });
      // Its address is free again.
      const again = await api.post("/v1/vms", { name: "reuse", image: "deb", memory: "256M", networks: [{ network: "default", ip: nic.ip }] });
      expect(again.status).toBe(202);
    });

    it("answers the first job again for a replayed request", async () => {
      await vmRow("gone", "h3", "stopped");
      await silence("h3", 600);
      const first = await fetch(`${api.base}/v1/vms/gone?force=true`, { method: "DELETE", headers: { "idempotency-key": "force-1" } });
      const second = await fetch(`${api.base}/v1/vms/gone?force=true`, { method: "DELETE", headers: { "idempotency-key": "force-1" } });
      expect(second.status).toBe(200);
      expect(second.headers.get("idempotent-replayed")).toBe("true");
      expect(((await second.json()) as { job: Job }).job.id).toBe(((await first.json()) as { job: Job }).job.id);
    });
  });

  describe("vm migrate and host evacuate", () => {
    const evacuate = async (host: string, body: Record<string, unknown> = {}) => {
      const res = await api.post(`/v1/hosts/${host}/evacuate`, body);
      return { status: res.status, body: (await res.json()) as HostEvacuation & { code?: string; message?: string } };
    };

    it("plans an online host's evacuation without draining it or making jobs (--dry-run), with a reason for each VM that stays", async () => {
      await silence("h3", 600); // only h2 can take VMs
      await vmRow("a-stopped", "h1", "stopped");
      await vmRow("b-running", "h1", "running");
      const { vm: held } = await vmRow("c-held", "h1", "stopped");
      const holder = await queuedJob(held.id, "h1", held.name);
      const before = await db.job.count();

      const { status, body } = await evacuate("h1", { dryRun: true });
      expect(status).toBe(200);
      expect(body).toMatchObject({ hostId: "h1", hostState: "online", dryRun: true, drained: false });
      expect(body.items.map((i) => [i.vmName, i.action, i.toHostId, i.jobId])).toEqual([
        ["a-stopped", "migrate", "h2", null],
        ["b-running", "skip", null, null],
        ["c-held", "skip", null, null],
      ]);
      expect(body.items[1]?.reason).toContain("stop it first");
      expect(body.items[2]?.reason).toContain(`job ${holder}`);
      expect((await db.host.findUniqueOrThrow({ where: { id: "h1" } })).drained).toBe(false);
      expect(await db.job.count()).toBe(before);
      expect((await db.vm.findUniqueOrThrow({ where: { name_projectId: undefined as never, id: held.id } as never })).hostId).toBe("h1");
    });

    it("drains an online host and queues the cold migration of each stopped VM on it; the row is on the new host from then on", async () => {
      await silence("h3", 600);
      const { vm, nic } = await vmRow("mover", "h1", "stopped");
      await db.portForward.create({ data: { nicId: nic.id, vmId: vm.id, hostId: "h1", protocol: "tcp", hostPort: 2222, guestPort: 22 } });

      const { status, body } = await evacuate("h1");
      expect(status).toBe(200);
      expect(body.drained).toBe(true);
      const [item] = body.items;
      expect(item).toMatchObject({ vmName: "mover", action: "migrate", toHostId: "h2" });
      const job = await db.job.findUniqueOrThrow({ where: { id: item?.jobId ?? "" } });
      expect(job).toMatchObject({ type: "vm_migrate", state: "queued", hostId: "h1", payload: { vmId: vm.id, fromHostId: "h1", toHostId: "h2" } });
      expect(await db.vm.findUniqueOrThrow({ where: { id: vm.id } })).toMatchObject({ hostId: "h2", lockJobId: job.id, state: "stopped" });
      expect((await db.portForward.findFirstOrThrow({ where: { vmId: vm.id } })).hostId).toBe("h2");
      expect((await db.host.findUniqueOrThrow({ where: { id: "h1" } })).drained).toBe(true);
      const queued = await new Queue(hostQueueName("h1"), { connection: api.redis, prefix: api.prefix }).getJob(job.id);
      expect(queued?.data).toEqual({ jobId: job.id });
    });

    it("recreates a lost host's VMs from their newest ready backup on another host, and skips one without a backup", async () => {
      const { vm: backed } = await vmRow("backed", "h3", "running");
      await vmRow("bare", "h3", "stopped");
      const stuck = await queuedJob(backed.id, "h3", backed.name);
      await readyBackup(backed.id, backed.name, "h3", new Date("2026-11-01T10:00:00Z"));
      const newest = await readyBackup(backed.id, backed.name, "h3", new Date("2026-11-02T10:00:00Z"));
      await silence("h3", 600);
      await silence("h2", 600); // h1 is the only live host

      const { body } = await evacuate("h3");
      expect(body).toMatchObject({ hostId: "h3", hostState: "lost", drained: true });
      expect(body.items.map((i) => [i.vmName, i.action, i.toHostId, i.backupId, i.backupAt])).toEqual([
        ["backed", "restore", "h1", newest.id, "2026-11-02T10:00:00.000Z"],
        ["bare", "skip", null, null, null],
      ]);
      expect(body.items[1]?.reason).toBe("VM 'bare' has no backup; its disk is on the lost host 'h3': `iaas vm delete bare --force` or wait for the host");
      const job = await db.job.findUniqueOrThrow({ where: { id: body.items[0]?.jobId ?? "" } });
      expect(job).toMatchObject({ type: "vm_migrate", hostId: "h1", payload: { vmId: backed.id, fromHostId: "h3", toHostId: "h1", fromBackupId: newest.id } });
      expect((await db.backup.findUniqueOrThrow({ where: { id: newest.id } })).lockJobId).toBe(job.id);
      expect(await db.vm.findUniqueOrThrow({ where: { id: backed.id } })).toMatchObject({ hostId: "h1", lockJobId: job.id });
      expect(await db.job.findUniqueOrThrow({ where: { id: stuck } })).toMatchObject({ state: "cancelled" });
    });

    it("refuses to evacuate a host that is offline but not lost yet", async () => {
      await vmRow("x", "h2", "stopped");
      await silence("h2", 60);
      const { status, body } = await evacuate("h2");
      expect(status).toBe(503);
      expect(body.code).toBe("HOST_OFFLINE");
      expect((await db.host.findUniqueOrThrow({ where: { id: "h2" } })).drained).toBe(false);
    });

    it("migrates one VM to the host asked for, and refuses a running VM or its own host", async () => {
      await vmRow("one", "h1", "stopped");
      await vmRow("busy", "h1", "running");
      const same = await api.post("/v1/vms/one/migrate", { host: "h1" });
      expect(same.status).toBe(400);
      const running = await api.post("/v1/vms/busy/migrate", {});
      expect(running.status).toBe(409);
      expect(((await running.json()) as { hint: string }).hint).toContain("iaas vm stop busy");
      const res = await api.post("/v1/vms/one/migrate", { host: "h3" });
      expect(res.status).toBe(202);
      const body = (await res.json()) as { job: Job; vm: VmDto };
      expect(body.job).toMatchObject({ type: "vm.migrate", hostId: "h1", payload: { fromHostId: "h1", toHostId: "h3" } });
      expect(body.vm.hostId).toBe("h3");
    });
  });
});
