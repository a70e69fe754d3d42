import { Queue } from "bullmq";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Backup, BackupSchedule, Job, Problem } from "@iaas/contracts";
import { SCHEDULE_QUEUE } from "./services/BackupScheduler.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Backup and schedule requests through the REST API against the real Postgres and Redis; no
// worker runs, so the tests set the rows as a worker would have left them.
describe("VM backups and schedules over REST", () => {
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
    await api.db.backupSchedule.deleteMany();
    const res = await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M", disk: "2G" });
    vmId = ((await res.json()) as { vm: { id: string } }).vm.id;
    await settle("running");
  });

  const json = async <T>(res: Response) => (await res.json()) as T;
  const settle = (state: "running" | "stopped") => api.db.vm.update({ where: { id: vmId }, data: { state, lockJobId: null } });
  const get = (p: string) => fetch(`${api.base}${p}`);
  const send = (method: string, p: string, body?: unknown) =>
    fetch(`${api.base}${p}`, { method, headers: { "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  /** What the worker records when a backup job succeeds. */
  const finish = async (id: string) => {
    const b = await api.db.backup.update({ where: { id }, data: { state: "ready", path: `backups/${vmId}/${id}.qcow2`, sizeBytes: 1000n, sha256: "a".repeat(64), finishedAt: new Date() } });
    await api.db.vm.update({ where: { id: vmId }, data: { backupBaseId: b.id, lockJobId: null } });
    return b;
  };
  const backup = async (body: Record<string, unknown> = {}) => {
    const res = await api.post("/v1/vms/web/backups", body);
    expect(res.status).toBe(202);
    return json<{ job: Job; backup: Backup }>(res);
  };

  it("records the VM's configuration with the job, full first, then incremental on the last backup", async () => {
    const first = await backup({ incremental: true, keepLast: 3 });
    // No backup to build on yet: an incremental asked for is a full one.
    expect(first.backup).toMatchObject({ kind: "full", parentId: null, state: "creating", live: true, vmName: "web", keepLast: 3, diskBytes: 2 * 1024 ** 3 });
    expect(first.backup.config).toMatchObject({ cpus: 1, memoryBytes: 256 * 1024 ** 2, image: { name: "deb" }, nics: [{ index: 0, network: "default" }] });
    expect(first.job.payload).toMatchObject({ vmId, backupId: first.backup.id, keepLast: 3 });
    const busy = await api.post("/v1/vms/web/backups", {});
    expect(busy.status).toBe(409);
    expect((await json<Problem>(busy)).code).toBe("VM_BUSY");
    await finish(first.backup.id);
    const second = await backup({ incremental: true });
    expect(second.backup).toMatchObject({ kind: "incremental", parentId: first.backup.id });
    const list = await json<{ items: Backup[] }>(await get("/v1/backups?vm=web"));
    expect(list.items.map((b) => b.id)).toEqual([second.backup.id, first.backup.id]);
    // Found by a prefix of the id, as `backup list` prints it.
    expect((await json<Backup>(await get(`/v1/backups/${first.backup.id.slice(0, 8)}`))).id).toBe(first.backup.id);
  });

  it("refuses what cannot work, saying what to do", async () => {
    const asImage = await api.post("/v1/vms/web/backups", { asImage: "x", incremental: true });
    expect(asImage.status).toBe(400);
    const slow = await api.post("/v1/vms/web/backups", { bwlimit: "1K" });
    expect(slow.status).toBe(400);
    expect((await json<Problem>(slow)).detail).toMatch(/below 64 KiB/);
    const f = await backup();
    await finish(f.backup.id);
    const i = await backup({ incremental: true });
    await finish(i.backup.id);
    const del = await send("DELETE", `/v1/backups/${f.backup.id}`);
    expect(del.status).toBe(409);
    expect((await json<Problem>(del)).detail).toContain(i.backup.id);
    const running = await api.post(`/v1/backups/${i.backup.id}/restore`, { vm: "web" });
    expect(running.status).toBe(409);
    expect((await json<Problem>(running)).hint).toMatch(/vm stop web/);
    await settle("stopped");
    await api.db.snapshot.create({ data: { vmId, name: "s1", kind: "disk", state: "ready", vmState: "stopped" } });
    const snaps = await api.post(`/v1/backups/${i.backup.id}/restore`, { vm: "web" });
    expect(snaps.status).toBe(409);
    expect((await json<Problem>(snaps)).hint).toMatch(/--discard-snapshots/);
    const restore = await api.post(`/v1/backups/${i.backup.id}/restore`, { vm: "web", discardSnapshots: true });
    expect(restore.status).toBe(202);
    // The restore job holds the backup: deleting or verifying it waits for that job.
    const held = await send("DELETE", `/v1/backups/${i.backup.id}`);
    expect(held.status).toBe(409);
    expect((await json<Problem>(held)).code).toBe("BACKUP_IN_USE");
    const missing = await get("/v1/backups/00000000-0000-4000-8000-000000000000");
    expect(missing.status).toBe(404);
  });

  it("a new VM from a backup takes its CPUs, memory, disk and networks, keeping a free MAC and address", async () => {
    const f = await backup();
    await finish(f.backup.id);
    const recorded = f.backup.config.nics[0];
    await api.db.vm.delete({ where: { id: vmId } });
    const res = await api.post(`/v1/backups/${f.backup.id}/vms`, { name: "web2" });
    expect(res.status).toBe(202);
    const body = await json<{ job: Job; vm: { cpus: number; memoryBytes: number; diskBytes: number; nics: { mac: string; ip: string }[] } }>(res);
    expect(body.job.payload).toMatchObject({ fromBackupId: f.backup.id });
    expect([body.vm.cpus, body.vm.memoryBytes, body.vm.diskBytes]).toEqual([1, 256 * 1024 ** 2, 2 * 1024 ** 3]);
    expect([body.vm.nics[0]?.mac, body.vm.nics[0]?.ip]).toEqual([recorded?.mac, recorded?.ip]);
    const small = await api.post(`/v1/backups/${f.backup.id}/vms`, { name: "web3", disk: "1G" });
    expect(small.status).toBe(400);
    expect((await json<Problem>(small)).detail).toMatch(/smaller than the backup's disk/);
  });

  it("keeps a schedule in Postgres and its job scheduler in Redis, and records a run Redis lost", async () => {
    const bad = await send("PUT", "/v1/vms/web/backup-schedule", { cron: "61 * * * *", keepLast: 3 });
    expect(bad.status).toBe(400);
    expect((await json<Problem>(bad)).detail).toMatch(/not a cron pattern/);
    const set = await send("PUT", "/v1/vms/web/backup-schedule", { every: "1h", keepLast: 3, incremental: true });
    expect(set.status).toBe(200);
    const schedule = await json<BackupSchedule>(set);
    expect(schedule).toMatchObject({ everyMs: 3_600_000, keepLast: 3, incremental: true });
    expect(schedule.nextRunAt).not.toBeNull();
    const queue = new Queue(SCHEDULE_QUEUE, { connection: api.redis, prefix: api.prefix });
    try {
      expect((await queue.getJobSchedulers()).map((s) => s.key)).toEqual([`backup-${vmId}`]);
      // Redis restarted empty, and the schedule was due two hours ago.
      await queue.removeJobScheduler(`backup-${vmId}`);
      await api.db.backupSchedule.update({ where: { vmId }, data: { createdAt: new Date(Date.now() - 3 * 3_600_000) } });
      await api.backupScheduler.reconcile();
      expect((await queue.getJobSchedulers()).map((s) => s.key)).toEqual([`backup-${vmId}`]);
      const missed = await api.db.job.findMany({ where: { type: "backup_missed" } });
      expect(missed.map((j) => [j.state, j.errorCode, j.vmId])).toEqual([["failed", "SERVICE_UNAVAILABLE", vmId]]);
      await api.backupScheduler.reconcile();
      expect(await api.db.job.count({ where: { type: "backup_missed" } })).toBe(1);
      expect((await send("DELETE", "/v1/vms/web/backup-schedule")).status).toBe(204);
      expect((await get("/v1/vms/web/backup-schedule")).status).toBe(404);
      expect(await queue.getJobSchedulers()).toEqual([]);
    } finally {
      await queue.close();
    }
  });
});
