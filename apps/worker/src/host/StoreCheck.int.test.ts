import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, type TestDatabase } from "@iaas/db/testing";
import { StoreCheck } from "./StoreCheck.js";

const HINT = (name: string) => `restore the file and run \`iaas image verify ${name}\`, or delete the image and import it again`;

// The store check against a real Postgres and a temporary image store.
describe("StoreCheck", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let store: string;
  const log = pino({ level: "silent" });

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    store = await mkdtemp("/tmp/isc-");
  });

  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
    await rm(store, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await db.jobEvent.deleteMany();
    await db.job.deleteMany();
    await db.image.deleteMany();
    await rm(path.join(store, "images"), { recursive: true, force: true });
    await mkdir(path.join(store, "images"), { recursive: true });
  });

  /** A ready image whose file holds `size` bytes, as an import leaves it. */
  async function readyImage(name: string, size = 4096, data: { lockJobId?: string } = {}) {
    const id = randomUUID();
    const relative = path.join("images", `${id}.qcow2`);
    await writeFile(path.join(store, relative), Buffer.alloc(size, 7));
    const updatedAt = new Date(Date.now() - 3_600_000);
    await db.image.create({ data: { id, name, state: "ready", sourceFormat: "qcow2", virtualSize: 1048576n, storedSize: BigInt(size), sha256: "a".repeat(64), path: relative, ...data } });
    // An hour old, so a check that touched updatedAt would show.
    await db.$executeRaw`UPDATE "Image" SET "updatedAt" = ${updatedAt} WHERE "id" = ${id}::uuid`;
    return { id, file: path.join(store, relative) };
  }

  it("marks a ready image whose file is gone as error with the code, the file, the expected size and the hint, and records it", async () => {
    const gone = await readyImage("gone");
    await rm(gone.file);
    const outcome = await new StoreCheck(db, store, "h1", log).pass();
    expect(outcome).toEqual({ checked: 1, marked: [{ imageId: gone.id, name: "gone", code: "IMAGE_FILE_MISSING" }], unreadable: 0 });
    const image = await db.image.findUniqueOrThrow({ where: { id: gone.id } });
    expect(image).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISSING", errorHint: HINT("gone"), lockJobId: null });
    expect(image.errorMessage).toBe(`the stored file of image 'gone' is missing: ${gone.file} (expected 4 KiB (4096 bytes))`);
    expect(image.checkedAt).not.toBeNull();
    const jobs = await db.job.findMany({ where: { imageId: gone.id } });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ type: "image_reconcile", state: "succeeded", hostId: "h1", targetName: "gone" });
    expect(jobs[0]?.result).toEqual({ imageId: gone.id, state: "error", previousState: "ready", code: "IMAGE_FILE_MISSING" });
  });

  it("marks a ready image whose file has another size as error IMAGE_FILE_MISMATCH, naming both sizes", async () => {
    const cut = await readyImage("cut", 8192);
    await truncate(cut.file, 1000);
    await new StoreCheck(db, store, "h1", log).pass();
    const image = await db.image.findUniqueOrThrow({ where: { id: cut.id } });
    expect(image).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISMATCH", errorHint: HINT("cut") });
    expect(image.errorMessage).toBe(`the stored file of image 'cut' has the wrong size: ${cut.file} is 1000 B (1000 bytes), 8 KiB (8192 bytes) were recorded when it was stored`);
  });

  it("leaves an image a job holds to that job, and a whole one ready with checkedAt set and updatedAt untouched", async () => {
    const held = await readyImage("held", 4096, { lockJobId: randomUUID() });
    await rm(held.file);
    const whole = await readyImage("whole");
    const before = await db.image.findUniqueOrThrow({ where: { id: whole.id } });
    const outcome = await new StoreCheck(db, store, "h1", log).pass();
    expect(outcome).toEqual({ checked: 1, marked: [], unreadable: 0 });
    expect(await db.image.findUniqueOrThrow({ where: { id: held.id } })).toMatchObject({ state: "ready", errorCode: null, checkedAt: null });
    const after = await db.image.findUniqueOrThrow({ where: { id: whole.id } });
    expect(after).toMatchObject({ state: "ready", errorCode: null });
    expect(after.checkedAt?.getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(after.updatedAt).toEqual(before.updatedAt);
    expect(await db.job.count()).toBe(0);
  });

  it("is idempotent across passes and workers: one error, one record; a file that comes back does not flip the image back", async () => {
    const gone = await readyImage("twice");
    await rm(gone.file);
    // Two workers sharing the store check at the same moment, then again.
    const [a, b] = await Promise.all([new StoreCheck(db, store, "h1", log).pass(), new StoreCheck(db, store, "h2", log).pass()]);
    expect(a.marked.length + b.marked.length).toBe(1);
    await new StoreCheck(db, store, "h1", log).pass();
    expect(await db.job.count({ where: { imageId: gone.id, type: "image_reconcile" } })).toBe(1);
    await writeFile(gone.file, Buffer.alloc(4096, 7));
    const outcome = await new StoreCheck(db, store, "h1", log).pass();
    expect(outcome.checked).toBe(0);
    expect(await db.image.findUniqueOrThrow({ where: { id: gone.id } })).toMatchObject({ state: "error", errorCode: "IMAGE_FILE_MISSING" });
  });

  it("joins a pass already running instead of starting a second one, and runs passes on its timer until stopped", async () => {
    const check = new StoreCheck(db, store, "h1", log);
    const first = check.pass();
    expect(check.pass()).toBe(first);
    await first;
    const gone = await readyImage("later");
    await rm(gone.file);
    check.start(100);
    try {
      for (let i = 0; i < 50 && (await db.image.findUniqueOrThrow({ where: { id: gone.id } })).state === "ready"; i++) await new Promise((r) => setTimeout(r, 100));
    } finally {
      check.stop();
    }
    expect((await db.image.findUniqueOrThrow({ where: { id: gone.id } })).state).toBe("error");
  });
});
