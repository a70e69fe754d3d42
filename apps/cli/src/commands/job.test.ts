import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { IMAGE_ID, JOB_ID, makeEvent, makeJob, progressEvent, stateEvent } from "../testing/fixtures.js";
import { serveJob, type JobScript } from "../testing/jobApi.js";
import { runIaas } from "../testing/runIaas.js";
import { sendJson, sendProblem, startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const importing = makeJob({ type: "image.import", vmId: null, imageId: IMAGE_ID, targetName: "deb12", state: "running", startedAt: "2025-01-01T00:00:01.000Z" });
const cancelled: Job = {
  ...importing,
  state: "cancelled",
  finishedAt: "2025-01-01T00:00:05.000Z",
  error: { code: "JOB_CANCELLED", message: "cancelled while downloading", hint: null },
};
const stopping = [stateEvent(1, "running"), makeEvent(2, { type: "log", level: "warn", message: "cancel requested; the worker is stopping the job" })];

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

/** POST /v1/jobs/:id/cancel answers `status` with `answer`; the job then plays `script`. */
async function serveCancel(status: number, answer: Job, script: JobScript): Promise<ScriptedServer> {
  server = await startScriptedServer((req, res) => {
    if (req.method === "POST" && req.path === `/v1/jobs/${JOB_ID}/cancel`) return sendJson(res, status, answer);
    if (!serveJob(script, req, res)) sendProblem(res, 404, "NOT_FOUND", "no route", null);
  });
  return server;
}

describe("job cancel", () => {
  it("202: says the worker is stopping the running job and how to follow it", async () => {
    const s = await serveCancel(202, importing, { running: importing, events: stopping, final: null });
    const run = await runIaas(["job", "cancel", JOB_ID], s.url);
    expect(run).toEqual({ code: 0, stdout: `cancelling job ${JOB_ID}: the worker is stopping it\nfollow it with: iaas job wait ${JOB_ID}\n`, stderr: "" });
  });

  it("202 with --wait: follows the job until it ends cancelled, exit 0", async () => {
    const s = await serveCancel(202, importing, { running: importing, events: [...stopping, stateEvent(3, "cancelled")], final: cancelled });
    const run = await runIaas(["job", "cancel", JOB_ID, "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`cancelling job ${JOB_ID}: the worker is stopping it\njob ${JOB_ID} cancelled\n`);
    expect(run.stderr).toContain("[job 1a2b3c4d] running: warning: cancel requested; the worker is stopping the job\n");
    expect(run.stderr).toContain("[job 1a2b3c4d] cancelled: cancelled while downloading\n");
  });

  it("202 with --wait: exit 3 when the job finished before it could be stopped", async () => {
    const done: Job = { ...importing, state: "succeeded", finishedAt: "2025-01-01T00:00:05.000Z" };
    const s = await serveCancel(202, importing, { running: importing, events: stopping, final: done });
    const run = await runIaas(["job", "cancel", JOB_ID, "--wait"], s.url);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`error: job ${JOB_ID} succeeded before it could be stopped\n`);
  });

  it("200: a queued job is cancelled at once", async () => {
    const s = await serveCancel(200, { ...importing, state: "cancelled" }, { running: importing, events: [], final: null });
    const run = await runIaas(["job", "cancel", JOB_ID, "--wait"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} cancelled\n`, stderr: "" });
  });
});

describe("job logs", () => {
  it("prints a line per phase and 10% step of a transfer, not every progress report", async () => {
    const download = (seq: number, percent: number) =>
      progressEvent(seq, { phase: "download", percent, bytesDone: percent * 1024 ** 2, bytesTotal: 100 * 1024 ** 2, rate: 50 * 1024 ** 2, etaSeconds: (100 - percent) / 50 });
    const events = [stateEvent(1, "running"), download(2, 1), download(3, 4), download(4, 12), download(5, 13), progressEvent(6, { phase: "inspect", percent: 0 }), progressEvent(7, { phase: "convert", percent: 30 }), stateEvent(8, "succeeded")];
    const s = await serveCancel(200, importing, { running: importing, events, final: { ...importing, state: "succeeded", finishedAt: "2025-01-01T00:00:09.000Z" } });
    const run = await runIaas(["job", "logs", JOB_ID, "-f"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout.split("\n").map((line) => line.slice(26))).toEqual([
      "state     running",
      "progress  download 1% (1 MiB/100 MiB, 50 MiB/s, ETA 2s)",
      "progress  download 12% (12 MiB/100 MiB, 50 MiB/s, ETA 2s)",
      "progress  inspect 0%",
      "progress  convert 30%",
      "state     succeeded",
      "",
    ]);
  });
});
