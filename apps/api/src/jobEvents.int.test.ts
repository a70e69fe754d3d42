import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "./testing/testApi.js";

/** One parsed Server-Sent Event. */
interface Sse {
  id: string | null;
  event: string;
  data: string;
}

/** Reads an event stream one event at a time. */
function sseReader(res: Response): { next(): Promise<Sse> } {
  const reader = res.body?.getReader();
  if (!reader) throw new Error("no body");
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(":")) continue; // comment (keep-alive)
          const field = (name: string) => block.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? null;
          return { id: field("id"), event: field("event") ?? "message", data: field("data") ?? "" };
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error(`stream ended; left: ${buffer}`);
        buffer += decoder.decode(chunk.value, { stream: true });
      }
    },
  };
}

// The safety poll is set to ten minutes: whatever reaches a stream or a wait within the test's
// time came pushed (LISTEN/NOTIFY), and the hub's counters show no poll ran.
describe("pushed job events", () => {
  let api: TestApi;
  let writer: pg.Client;
  let jobId: string;

  beforeAll(async () => {
    api = await startTestApi({ eventSafetyPollMs: 600_000 });
    // Another connection, as a worker or another API process would be: plain SQL, no Prisma.
    writer = new pg.Client({ connectionString: api.databaseUrl, options: "-c TimeZone=UTC" });
    await writer.connect();
  }, 60_000);
  afterAll(async () => {
    await writer?.end();
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
    const job = await api.db.job.create({ data: { type: "vm_start", state: "running", startedAt: new Date(), payload: {}, maxAttempts: 1, timeoutMs: 60_000, eventSeq: 1 } });
    await api.db.jobEvent.create({ data: { jobId: job.id, seq: 1, type: "state", state: "running", message: "started" } });
    jobId = job.id;
  });

  /** Appends an event the way every writer does (next seq from the job row), in one plain SQL statement. */
  async function insertEvent(type: "progress" | "log", message: string): Promise<void> {
    await writer.query(
      `WITH next AS (UPDATE "Job" SET "eventSeq" = "eventSeq" + 1 WHERE "id" = $1::uuid RETURNING "eventSeq")
       INSERT INTO "JobEvent" ("jobId", "seq", "type", "message") SELECT $1::uuid, next."eventSeq", $2, $3 FROM next`,
      [jobId, type, message],
    );
  }

  /** Finishes the job and appends its terminal event in one transaction, as finishJob does. */
  async function finishInSql(): Promise<void> {
    await writer.query("BEGIN");
    await writer.query(`UPDATE "Job" SET "state" = 'succeeded', "finishedAt" = now(), "result" = '{"ok":true}' WHERE "id" = $1::uuid`, [jobId]);
    await writer.query(
      `WITH next AS (UPDATE "Job" SET "eventSeq" = "eventSeq" + 1 WHERE "id" = $1::uuid RETURNING "eventSeq")
       INSERT INTO "JobEvent" ("jobId", "seq", "type", "state", "message") SELECT $1::uuid, next."eventSeq", 'state', 'succeeded', 'job succeeded' FROM next`,
      [jobId],
    );
    await writer.query("COMMIT");
  }

  it("an event inserted by plain SQL on another connection reaches an open stream and a wait, and the end event carries the final job", async () => {
    const stream = await fetch(`${api.base}/v1/jobs/${jobId}/events`);
    expect(stream.status).toBe(200);
    const events = sseReader(stream);
    expect(await events.next()).toMatchObject({ id: "1", event: "state" });
    const wait = fetch(`${api.base}/v1/jobs/${jobId}/wait?timeout=60`).then(async (r) => (await r.json()) as { state: string });

    await insertEvent("progress", "halfway");
    const progress = await events.next();
    expect(progress).toMatchObject({ id: "2", event: "progress" });
    expect(JSON.parse(progress.data)).toMatchObject({ seq: 2, message: "halfway" });

    await finishInSql();
    expect(await events.next()).toMatchObject({ id: "3", event: "state" });
    const end = await events.next();
    expect(end.event).toBe("end");
    const shown = await (await fetch(`${api.base}/v1/jobs/${jobId}`)).json();
    expect(JSON.parse(end.data)).toEqual(shown);
    expect(shown).toMatchObject({ id: jobId, state: "succeeded", result: { ok: true } });
    expect(await wait).toMatchObject({ state: "succeeded" });

    // Nothing of this came from the safety poll (ten minutes), and every watcher is gone.
    expect(api.jobEvents.stats.polls).toBe(0);
    expect(api.jobEvents.stats.notices).toBeGreaterThanOrEqual(2);
    expect(api.jobEvents.watchers).toBe(0);
  }, 30_000);

  it("keeps delivering after its LISTEN connection is killed: it reconnects, re-reads, and later events arrive pushed", async () => {
    const stream = await fetch(`${api.base}/v1/jobs/${jobId}/events`);
    const events = sseReader(stream);
    expect(await events.next()).toMatchObject({ id: "1" });
    const resyncs = api.jobEvents.stats.resyncs;

    const killed = await writer.query<{ killed: boolean }>(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = 'iaas-job-events' AND datname = current_database()`,
    );
    expect(killed.rows.map((r) => r.killed)).toEqual([true]);
    // Committed while the listener is away: nobody hears it; the re-read after reconnecting finds it.
    await insertEvent("log", "while deaf");
    const deadline = Date.now() + 15_000;
    while (api.jobEvents.stats.resyncs === resyncs || !api.jobEvents.listening) {
      if (Date.now() > deadline) throw new Error("the job event listener did not reconnect");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await events.next()).toMatchObject({ id: "2", event: "log" });

    await insertEvent("log", "after the reconnect");
    const later = await events.next();
    expect(later).toMatchObject({ id: "3", event: "log" });
    expect(JSON.parse(later.data)).toMatchObject({ message: "after the reconnect" });
    await finishInSql();
    expect(await events.next()).toMatchObject({ id: "4", event: "state" });
    expect((await events.next()).event).toBe("end");
    expect(api.jobEvents.stats.polls).toBe(0);
  }, 30_000);

  it("a wait on a job that is already final answers at once, and one past its timeout answers the job as it is", async () => {
    const started = Date.now();
    const running = (await (await fetch(`${api.base}/v1/jobs/${jobId}/wait?timeout=1`)).json()) as { state: string };
    expect(running.state).toBe("running");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    await finishInSql();
    expect(((await (await fetch(`${api.base}/v1/jobs/${jobId}/wait?timeout=30`)).json()) as { state: string }).state).toBe("succeeded");
    expect((await fetch(`${api.base}/v1/jobs/not-a-job/wait`)).status).toBe(404);
  }, 30_000);

  it("a VM names its host (hostName), in the VM and in the list", async () => {
    const created = await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    expect(created.status).toBe(202);
    expect(((await created.json()) as { vm: { hostName: string | null } }).vm.hostName).toBe("h1");
    expect(((await (await fetch(`${api.base}/v1/vms/web`)).json()) as { hostName: string | null }).hostName).toBe("h1");
    const list = (await (await fetch(`${api.base}/v1/vms`)).json()) as { items: { hostName: string | null }[] };
    expect(list.items.map((v) => v.hostName)).toEqual(["h1"]);
  });
});

describe("the safety poll", () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi({ eventSafetyPollMs: 200 });
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });

  it("delivers an event whose notification was lost: one query for every watched job, none while nobody watches", async () => {
    await api.reset();
    const job = await api.db.job.create({ data: { type: "vm_start", state: "running", payload: {}, maxAttempts: 1, timeoutMs: 60_000 } });
    const polls = api.jobEvents.stats.polls;
    await new Promise((r) => setTimeout(r, 500));
    expect(api.jobEvents.stats.polls).toBe(polls);
    const wait = fetch(`${api.base}/v1/jobs/${job.id}/wait?timeout=30`).then(async (r) => (await r.json()) as { state: string });
    while (api.jobEvents.watchers === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100)); // the wait has read the job (running) by now
    // A commit whose notification never came: the trigger is switched off for this transaction.
    await api.db.$transaction(async (tx) => {
      await tx.$executeRawUnsafe(`ALTER TABLE "JobEvent" DISABLE TRIGGER "JobEvent_notify"`);
      await tx.job.update({ where: { id: job.id }, data: { state: "failed", finishedAt: new Date(), eventSeq: 1, errorCode: "JOB_TIMEOUT", errorMessage: "x" } });
      await tx.jobEvent.create({ data: { jobId: job.id, seq: 1, type: "state", state: "failed", message: "job failed: x" } });
      await tx.$executeRawUnsafe(`ALTER TABLE "JobEvent" ENABLE TRIGGER "JobEvent_notify"`);
    });
    expect(await wait).toMatchObject({ state: "failed" });
    expect(api.jobEvents.stats.polls).toBeGreaterThan(polls);
  }, 30_000);
});
