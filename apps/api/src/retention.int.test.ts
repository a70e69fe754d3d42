import { randomUUID } from "node:crypto";
import { mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { JobState } from "@iaas/db";
import { pruneJobs, removeAbandonedUploads } from "./maintenance/retention.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;

describe("job retention and abandoned uploads", () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi();
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.db.backupSchedule.deleteMany();
    await api.reset();
  });

  describe("pruneJobs", () => {
    const now = new Date("2031-06-15T12:00:00Z");
    const ago = (days: number) => new Date(now.getTime() - days * DAY);

    async function job(state: JobState, finishedDaysAgo: number | null, events = 2): Promise<string> {
      const createdAt = ago((finishedDaysAgo ?? 60) + 1);
      const row = await api.db.job.create({
        data: { type: "vm_start", payload: {}, maxAttempts: 1, timeoutMs: 60_000, state, createdAt, finishedAt: finishedDaysAgo === null ? null : ago(finishedDaysAgo), eventSeq: events },
      });
      for (let seq = 1; seq <= events; seq++) await api.db.jobEvent.create({ data: { jobId: row.id, seq, type: "log", message: `step ${seq}` } });
      return row.id;
    }

    it("deletes finished jobs older than the retention with their events, and keeps newer, unfinished and referenced ones", async () => {
      const image = await api.db.image.findFirstOrThrow({ where: { name: "deb" } });
      const old = { succeeded: await job("succeeded", 40), failed: await job("failed", 31), cancelled: await job("cancelled", 365) };
      const kept = {
        recent: await job("succeeded", 29),
        queued: await job("queued", null),
        running: await job("running", null),
        vmLock: await job("failed", 90),
        imageLock: await job("failed", 90),
        exportJob: await job("succeeded", 90),
        backupJob: await job("succeeded", 90),
        backupLock: await job("failed", 90),
        scheduleLast: await job("succeeded", 90),
      };
      const vm = await api.db.vm.create({
        data: { name: "v1", state: "stopped", hostId: "h1", imageId: image.id, cpus: 1, memoryBytes: 1n << 28n, diskBytes: 1n << 30n, lockJobId: kept.vmLock },
      });
      await api.db.image.update({ where: { id: image.id }, data: { lockJobId: kept.imageLock } });
      await api.db.export.create({ data: { jobId: kept.exportJob, sourceType: "image", sourceId: image.id, sourceName: "deb", format: "qcow2", state: "expired" } });
      await api.db.backup.create({
        data: { vmId: vm.id, vmName: "v1", hostId: "h1", kind: "full", state: "ready", diskBytes: 1n << 30n, config: {}, jobId: kept.backupJob, lockJobId: kept.backupLock },
      });
      await api.db.backupSchedule.create({ data: { vmId: vm.id, everyMs: 3_600_000, keepLast: 3, lastJobId: kept.scheduleLast } });

      expect(await pruneJobs(api.db, { retentionDays: 30, now })).toBe(3);
      const left = new Set((await api.db.job.findMany({ select: { id: true } })).map((j) => j.id));
      expect(left).toEqual(new Set(Object.values(kept)));
      expect(await api.db.jobEvent.count({ where: { jobId: { in: Object.values(old) } } })).toBe(0);
      expect(await api.db.jobEvent.count({ where: { jobId: kept.recent } })).toBe(2);
      // Nothing left to do: a second pass deletes nothing.
      expect(await pruneJobs(api.db, { retentionDays: 30, now })).toBe(0);
    });

    it("works through a backlog in batches, and by default against the database clock", async () => {
      const realNow = Date.now();
      const finished = async (daysAgo: number) =>
        (await api.db.job.create({ data: { type: "vm_start", payload: {}, maxAttempts: 1, timeoutMs: 1, state: "succeeded", finishedAt: new Date(realNow - daysAgo * DAY) } })).id;
      for (let i = 0; i < 7; i++) await finished(31 + i);
      const young = await finished(29);
      expect(await pruneJobs(api.db, { retentionDays: 30, batchSize: 3 })).toBe(7);
      expect((await api.db.job.findMany({ select: { id: true } })).map((j) => j.id)).toEqual([young]);
    });

    it("refuses a retention that is not a positive number of days", async () => {
      await expect(pruneJobs(api.db, { retentionDays: 0 })).rejects.toThrow(/positive number of days/);
    });
  });

  describe("removeAbandonedUploads", () => {
    const staging = () => path.join(api.store, "staging");
    const stagedNames = async () => (await readdir(staging())).sort();

    async function uploadImage(name: string, opts: { activityHoursAgo?: number; createdHoursAgo?: number; bytes?: number; fileHoursAgo?: number; lockJobId?: string } = {}) {
      const now = Date.now();
      const image = await api.db.image.create({
        data: {
          name,
          state: "importing",
          originType: "upload",
          uploadLength: 1000n,
          createdAt: new Date(now - (opts.createdHoursAgo ?? 48) * HOUR),
          uploadActivityAt: opts.activityHoursAgo === undefined ? null : new Date(now - opts.activityHoursAgo * HOUR),
          lockJobId: opts.lockJobId ?? null,
        },
      });
      if (opts.bytes !== undefined) {
        const file = path.join(staging(), `${image.id}.upload`);
        await writeFile(file, Buffer.alloc(opts.bytes, 1));
        const at = new Date(now - (opts.fileHoursAgo ?? opts.activityHoursAgo ?? 48) * HOUR);
        await utimes(file, at, at);
      }
      return image;
    }

    it("fails uploads idle past the TTL and removes their staging files and orphans, leaving live uploads alone", async () => {
      await mkdir(staging(), { recursive: true });
      const idle = await uploadImage("idle", { activityHoursAgo: 25, bytes: 300 });
      const neverSent = await uploadImage("never-sent", { createdHoursAgo: 30 });
      const active = await uploadImage("active", { activityHoursAgo: 1, bytes: 200 });
      // The database says idle, but bytes reached the file lately: an upload still streaming.
      const streaming = await uploadImage("streaming", { activityHoursAgo: 30, bytes: 200, fileHoursAgo: 0 });
      const queuedJob = await api.db.job.create({ data: { type: "image_import", payload: {}, maxAttempts: 1, timeoutMs: 1 } });
      const importing = await uploadImage("importing", { activityHoursAgo: 30, bytes: 1000, lockJobId: queuedJob.id });
      // Orphans: a file for an image that no longer exists, a leftover of a ready image; and a file that is not ours.
      const gone = randomUUID();
      await writeFile(path.join(staging(), `${gone}.upload`), "x");
      await writeFile(path.join(staging(), `${gone}.download`), "x");
      const ready = await api.db.image.findFirstOrThrow({ where: { name: "deb" } });
      await writeFile(path.join(staging(), `${ready.id}.decompressed`), "x");
      await writeFile(path.join(staging(), "notes.txt"), "operator's");

      const report = await removeAbandonedUploads(api.db, api.store, { ttlHours: 24 });

      expect(report.abandoned.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { id: idle.id, name: "idle", receivedBytes: 300 },
        { id: neverSent.id, name: "never-sent", receivedBytes: 0 },
      ]);
      const failed = await api.db.image.findUniqueOrThrow({ where: { id: idle.id } });
      expect(failed).toMatchObject({ state: "failed", errorCode: "UPLOAD_INCOMPLETE", lockJobId: null });
      expect(failed.errorMessage).toMatch(/upload was abandoned: no bytes arrived for 24 h \(300 B of 1000 B received\)/);
      expect(failed.errorHint).toContain("create the image again");
      expect(failed.errorHint).toContain("iaas image delete idle");
      expect((await api.db.image.findUniqueOrThrow({ where: { id: neverSent.id } })).state).toBe("failed");
      for (const id of [active.id, streaming.id, importing.id]) {
        expect((await api.db.image.findUniqueOrThrow({ where: { id } })).state).toBe("importing");
      }
      expect(await stagedNames()).toEqual([`${active.id}.upload`, `${importing.id}.upload`, `${streaming.id}.upload`, "notes.txt"].sort());
      expect(report.removedFiles.sort()).toEqual(
        [`${idle.id}.upload`, `${gone}.upload`, `${gone}.download`, `${ready.id}.decompressed`].map((f) => path.join("staging", f)).sort(),
      );

      // Nothing more to do on a second pass.
      expect(await removeAbandonedUploads(api.db, api.store, { ttlHours: 24 })).toEqual({ abandoned: [], removedFiles: [] });
    });

    it("judges the TTL against the time it is given, and copes with no staging directory", async () => {
      await rm(staging(), { recursive: true, force: true });
      const image = await uploadImage("late", { activityHoursAgo: 2, createdHoursAgo: 3 });
      expect((await removeAbandonedUploads(api.db, api.store, { ttlHours: 24 })).abandoned).toEqual([]);
      const later = new Date(Date.now() + 23 * HOUR);
      expect((await removeAbandonedUploads(api.db, api.store, { ttlHours: 24, now: later })).abandoned.map((a) => a.id)).toEqual([image.id]);
      await expect(stat(staging())).rejects.toThrow(/ENOENT/);
    });
  });
});
