import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPrismaClient, isUniqueViolation, JobState, type PrismaClient } from "./index.js";
import { createTestDatabase, type TestDatabase } from "./testing.js";

describe("createTestDatabase + createPrismaClient", () => {
  let database: TestDatabase;
  let db: PrismaClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
  });

  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  it("gives a fresh, migrated database with its own name", () => {
    expect(new URL(database.url).pathname).toMatch(/^\/iaas_t_[0-9a-f]{12}$/);
  });

  it("stores a host and a job with an event and reads them back", async () => {
    await db.host.create({
      data: { id: "host-1", name: "host-1", cpus: 4, memoryBytes: 8n << 30n, diskBytes: 100n << 30n, accelerator: "tcg" },
    });
    const job = await db.$transaction(async (tx) => {
      const created = await tx.job.create({
        data: { type: "vm_create", hostId: "host-1", payload: { name: "vm-1" }, maxAttempts: 3, timeoutMs: 60_000, idempotencyKey: "k-1" },
      });
      await tx.jobEvent.create({ data: { jobId: created.id, seq: 1, type: "state", state: JobState.queued, message: "queued" } });
      return tx.job.update({ where: { id: created.id }, data: { eventSeq: 1 } });
    });

    const host = await db.host.findUniqueOrThrow({ where: { id: "host-1" } });
    expect(host.memoryBytes).toBe(8n << 30n);
    expect(host.labels).toEqual({});
    expect(host.drained).toBe(false);

    const stored = await db.job.findUniqueOrThrow({ where: { id: job.id }, include: { events: true } });
    expect(stored.state).toBe(JobState.queued);
    expect(stored.payload).toEqual({ name: "vm-1" });
    expect(stored.eventSeq).toBe(1);
    expect(stored.events).toHaveLength(1);
    expect(stored.events[0]).toMatchObject({ seq: 1, type: "state", level: "info", state: "queued", message: "queued" });
  });

  it("reports unique violations, by field", async () => {
    const err = await db.job
      .create({ data: { type: "vm_create", payload: {}, maxAttempts: 1, timeoutMs: 1000, idempotencyKey: "k-1" } })
      .then(() => undefined, (e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect(isUniqueViolation(err, "idempotencyKey")).toBe(true);
    expect(isUniqueViolation(err, "name")).toBe(false);
    expect(isUniqueViolation(new Error("x"))).toBe(false);
  });
});
