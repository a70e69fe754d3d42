import { afterEach, describe, expect, it } from "vitest";
import type { JobEvent } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { ApiClient } from "../client/ApiClient.js";
import { JOB_ID, makeJob, progressEvent, stateEvent } from "../testing/fixtures.js";
import { serveJob, type JobScript } from "../testing/jobApi.js";
import { refusedUrl, startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";
import { followJob } from "./followJob.js";

const running = makeJob({ state: "running", startedAt: "2025-01-01T00:00:01.000Z" });
const succeeded = makeJob({ state: "succeeded", startedAt: running.startedAt, finishedAt: "2025-01-01T00:00:05.000Z" });
const events: JobEvent[] = [
  stateEvent(1, "queued"),
  stateEvent(2, "running"),
  progressEvent(3, { phase: "create-disk", percent: 40 }),
  progressEvent(4, { phase: "create-disk", percent: 100 }),
  stateEvent(5, "succeeded"),
];

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function api(script: JobScript): Promise<{ client: ApiClient; server: ScriptedServer }> {
  server = await startScriptedServer((req, res) => {
    if (!serveJob(script, req, res)) res.writeHead(500).end();
  });
  const client = new ApiClient({ baseUrl: server.url, token: null, idempotencyKey: "k", retryDelaysMs: [] });
  return { client, server };
}

function eventRequests(s: ScriptedServer) {
  return s.requests.filter((r) => r.path.endsWith("/events"));
}

describe("followJob against a real HTTP server", () => {
  it("follows a job over SSE until its end event and returns the final job", async () => {
    const { client, server: s } = await api({ running, events, final: succeeded });
    const seen: number[] = [];
    const result = await followJob(client, JOB_ID, { timeoutMs: 5000, onEvent: (e) => seen.push(e.seq) });
    expect(result).toEqual({ kind: "final", job: succeeded });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(eventRequests(s)).toHaveLength(1);
    expect(eventRequests(s)[0]?.headers.accept).toBe("text/event-stream");
  });

  it("resumes a stream cut mid-way with Last-Event-ID and never repeats an event", async () => {
    const { client, server: s } = await api({ running, events, final: succeeded, cutAfterSeq: 2 });
    const seen: number[] = [];
    const result = await followJob(client, JOB_ID, { timeoutMs: 5000, onEvent: (e) => seen.push(e.seq), reconnectDelaysMs: [10] });
    expect(result.kind).toBe("final");
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    const requests = eventRequests(s);
    expect(requests).toHaveLength(2);
    expect(requests[0]?.headers["last-event-id"]).toBeUndefined();
    expect(requests[1]?.headers["last-event-id"]).toBe("2");
  });

  it("fetches the final job when the end event carries only a summary, or no data", async () => {
    for (const endData of ["summary", "none"] as const) {
      const { client, server: s } = await api({ running, events, final: succeeded, endData });
      const result = await followJob(client, JOB_ID, { timeoutMs: 5000 });
      expect(result).toEqual({ kind: "final", job: succeeded });
      expect(s.requests.map((r) => r.path)).toEqual([`/v1/jobs/${JOB_ID}/events`, `/v1/jobs/${JOB_ID}`]);
      await s.close();
    }
  });

  it("takes the final job from the end event when it carries one", async () => {
    const { client, server: s } = await api({ running, events, final: succeeded, endData: "job" });
    expect(await followJob(client, JOB_ID, { timeoutMs: 5000 })).toEqual({ kind: "final", job: succeeded });
    expect(s.requests.map((r) => r.path)).toEqual([`/v1/jobs/${JOB_ID}/events`]);
  });

  it("falls back to long-polling the wait endpoint when there is no event stream", async () => {
    const { client, server: s } = await api({ running, events, final: succeeded, noStream: true });
    const fallbacks: string[] = [];
    const polled: string[] = [];
    const result = await followJob(client, JOB_ID, {
      timeoutMs: 5000,
      onFallback: (reason) => fallbacks.push(reason),
      onJob: (job) => polled.push(job.state),
    });
    expect(result).toEqual({ kind: "final", job: succeeded });
    expect(fallbacks).toEqual([`GET /v1/jobs/${JOB_ID}/events answered 404`]);
    expect(polled).toEqual(["succeeded"]);
    const wait = s.requests.find((r) => r.path.endsWith("/wait"));
    expect(Number(wait?.query.get("timeout"))).toBe(5);
  });

  it("stops at the timeout and reports the job as it is, still running", async () => {
    const { client } = await api({ running, events: events.slice(0, 3), final: null });
    const started = Date.now();
    const result = await followJob(client, JOB_ID, { timeoutMs: 300 });
    expect(result).toEqual({ kind: "timeout", job: running });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("stops at the timeout while long-polling too", async () => {
    const { client } = await api({ running, events, final: null, noStream: true });
    const result = await followJob(client, JOB_ID, { timeoutMs: 300 });
    expect(result).toEqual({ kind: "timeout", job: running });
  });

  it("reports an unknown job as not found, with exit code 3 and the API's hint", async () => {
    const { client } = await api({ running, events, final: succeeded });
    const error = await client.getJob("00000000-0000-4000-8000-000000000000").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ exitCode: 3, message: "job '00000000-0000-4000-8000-000000000000' not found", hint: "list jobs with `iaas job list`" });
    const followed = await followJob(client, "nope", { timeoutMs: 2000 }).catch((err: unknown) => err);
    expect(followed).toMatchObject({ exitCode: 3, code: "NOT_FOUND" });
  });

  it("reports a server that refuses connections as unreachable, exit code 5", async () => {
    const url = await refusedUrl();
    const client = new ApiClient({ baseUrl: url, token: null, idempotencyKey: "k", retryDelaysMs: [5] });
    const error = await followJob(client, JOB_ID, { timeoutMs: 2000, reconnectDelaysMs: [5] }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ exitCode: 5 });
    expect((error as CliError).message).toMatch(
      new RegExp(`^cannot reach the IaaS API at ${url}: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+; is it running\\? \\(npm run up\\)$`),
    );
  });

  it("names the endpoint when an event does not match the contract", async () => {
    const bad = { ...stateEvent(1, "running"), level: "loud" } as unknown as JobEvent;
    const { client } = await api({ running, events: [bad], final: succeeded });
    const error = await followJob(client, JOB_ID, { timeoutMs: 2000 }).catch((err: unknown) => err);
    expect(error).toMatchObject({ exitCode: 1 });
    expect((error as Error).message).toMatch(new RegExp(`^unexpected response from GET /v1/jobs/${JOB_ID}/events: level:`));
  });
});
