import http from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { consoleStreamKey, type Problem } from "@iaas/contracts";
import { consoleReaderName } from "./routes/console.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Job-event streams and console follows hold a job-event subscription or a Redis connection each: they are
// given back when the client leaves — also when it leaves before the stream is set up — and the
// process refuses more than IAAS_MAX_STREAMS at once.
describe("event and console streams", () => {
  const MAX_STREAMS = 4;
  let api: TestApi;
  let jobId: string;
  let vmId: string;

  beforeAll(async () => {
    api = await startTestApi({ hardening: { maxStreams: MAX_STREAMS, maxStreamsPerToken: 100 } });
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
    jobId = (await api.db.job.create({ data: { type: "vm_start", payload: {}, maxAttempts: 1, timeoutMs: 60_000 } })).id;
    const image = await api.db.image.findFirstOrThrow({ where: { name: "deb" } });
    vmId = (await api.db.vm.create({ data: { name: "v1", state: "running", hostId: "h1", imageId: image.id, cpus: 1, memoryBytes: 256n * 1024n ** 2n, diskBytes: 1024n ** 3n } })).id;
  });

  /** Redis connections console follows of this API hold (`CLIENT LIST`, by connection name). */
  async function followerConnections(): Promise<number> {
    const list = (await api.redis.call("CLIENT", "LIST")) as string;
    return list.split("\n").filter((line) => line.includes(` name=${consoleReaderName(api.prefix)} `)).length;
  }

  async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function open(path: string): Promise<{ res: Response; abort: AbortController }> {
    const abort = new AbortController();
    const res = await fetch(`${api.base}${path}`, { signal: abort.signal });
    return { res, abort };
  }

  /** Sends a GET and drops the connection as soon as the request is on the wire, before any answer. */
  function sendAndLeave(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${api.base}${path}`, { agent: false });
      req.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" ? resolve() : reject(err)));
      req.on("close", () => resolve());
      req.on("finish", () => req.destroy());
      req.end();
    });
  }

  it("gives back every slot and Redis connection when the clients leave, and refuses streams past the process cap with 503", async () => {
    expect(api.streams.total()).toBe(0);
    const baseline = await followerConnections();
    const events = [await open(`/v1/jobs/${jobId}/events`), await open(`/v1/jobs/${jobId}/events`)];
    const consoles = [await open(`/v1/vms/v1/console?follow=true`), await open(`/v1/vms/v1/console?follow=true`)];
    for (const s of [...events, ...consoles]) expect(s.res.status).toBe(200);
    expect(api.streams.total()).toBe(4);
    await until("two follower connections", async () => (await followerConnections()) === baseline + 2);

    // The followers are live: output added to the VM's console stream reaches them.
    await api.redis.xadd(consoleStreamKey(api.prefix, vmId), "*", "data", "login: ");
    const reader = consoles[0]?.res.body?.getReader();
    const chunk = await reader?.read();
    expect(new TextDecoder().decode(chunk?.value)).toBe("login: ");

    // A fifth stream is over this process's cap (4), whoever asks; a plain read is not a stream.
    const refused = await fetch(`${api.base}/v1/jobs/${jobId}/events`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect((await refused.json()) as Problem).toMatchObject({ code: "SERVICE_UNAVAILABLE", hint: expect.stringContaining("IAAS_MAX_STREAMS") });
    expect((await fetch(`${api.base}/v1/vms/v1/console`)).status).toBe(200);

    expect(api.jobEvents.watchers).toBe(2);
    for (const s of [...events, ...consoles]) s.abort.abort();
    await until("every slot given back", () => api.streams.total() === 0);
    await until("every job-event subscription closed", () => api.jobEvents.watchers === 0);
    await until("the follower connections closed", async () => (await followerConnections()) === baseline);
    // Slots are free again.
    const again = await open(`/v1/jobs/${jobId}/events`);
    expect(again.res.status).toBe(200);
    again.abort.abort();
    await until("the last slot given back", () => api.streams.total() === 0);
  });

  it("holds nothing for clients that left while their stream was being set up", async () => {
    const baseline = await followerConnections();
    // Hold the lookups every stream starts with, so each client is gone before its route goes on.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = api.db.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`LOCK TABLE "Job", "Vm" IN ACCESS EXCLUSIVE MODE`);
        locked();
        await released;
      },
      { timeout: 30_000 },
    );
    await isLocked;
    const left = [
      ...Array.from({ length: 3 }, () => sendAndLeave(`/v1/jobs/${jobId}/events`)),
      ...Array.from({ length: 3 }, () => sendAndLeave(`/v1/vms/v1/console?follow=true`)),
    ];
    await Promise.all(left);
    await new Promise((r) => setTimeout(r, 300)); // the routes are waiting on the lock by now
    release();
    await holder;
    // Long enough for a route that missed the departure to have taken a slot and a connection.
    await new Promise((r) => setTimeout(r, 1000));
    expect(api.streams.total()).toBe(0);
    expect(api.jobEvents.watchers).toBe(0);
    expect(await followerConnections()).toBe(baseline);

    // And clients that leave right after sending, without any lock, leave nothing behind either.
    await Promise.all(Array.from({ length: 10 }, (_, i) => sendAndLeave(i % 2 ? `/v1/jobs/${jobId}/events` : `/v1/vms/v1/console?follow=true`)));
    await until("every slot given back", () => api.streams.total() === 0);
    await until("no follower connection left", async () => (await followerConnections()) === baseline);
  });
});
