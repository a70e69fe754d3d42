// The product side of bench/images.mjs: image imports and exports through the REST API, each
// job's timing from its Postgres row, and its phases from GET /v1/jobs/:id/events.
import path from "node:path";
import { putFile } from "./http.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

function expect(res, status, what) {
  if (res.status !== status) throw new Error(`${what} answered ${res.status} (expected ${status}): ${res.text.slice(0, 400)}`);
  return res.json;
}

/** Parses a finished SSE body into JobEvent objects (the final `event: end` is dropped). */
function parseSse(text) {
  const events = [];
  for (const block of text.split("\n\n")) {
    let type = null;
    let data = null;
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) type = line.slice(7);
      else if (line.startsWith("data: ")) data = line.slice(6);
    }
    if (type && type !== "end" && data) events.push(JSON.parse(data));
  }
  return events;
}

/** Milliseconds between consecutive markers ([label, epochMs] pairs), named by the later label. */
function spans(markers) {
  const out = {};
  for (let i = 1; i < markers.length; i++) out[markers[i][0]] = markers[i][1] - markers[i - 1][1];
  return out;
}

export function createImageApi({ api, baseUrl, db, imageStore }) {
  const inflight = new Set();

  /** Polls the job row every 20 ms until it is final; returns it, or throws with its error. */
  async function waitJob(id, timeoutMs = 60 * 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = await db.job.findUnique({ where: { id } });
      if (job && FINAL.has(job.state)) {
        inflight.delete(id);
        if (job.state !== "succeeded") throw new Error(`job ${id} (${job.type}) ended ${job.state}: ${job.errorCode} ${job.errorMessage}${job.errorHint ? ` (hint: ${job.errorHint})` : ""}`);
        return job;
      }
      if (Date.now() > deadline) throw new Error(`job ${id} not final after ${timeoutMs / 1000}s (state ${job?.state})`);
      await sleep(20);
    }
  }

  async function events(jobId) {
    const res = await api.get(`/v1/jobs/${jobId}/events?after=0`);
    if (res.status !== 200) throw new Error(`GET /v1/jobs/${jobId}/events answered ${res.status}: ${res.text.slice(0, 300)}`);
    return parseSse(res.text);
  }

  /** Runs a submitted job to the end: { job, jobSeconds, wallSeconds, queueSeconds, events }. */
  async function finish(jobId, t0) {
    inflight.add(jobId);
    const job = await waitJob(jobId);
    const evs = await events(jobId);
    return {
      job,
      events: evs,
      jobSeconds: (job.finishedAt - job.startedAt) / 1000,
      wallSeconds: (job.finishedAt.getTime() - t0) / 1000,
      queueSeconds: (job.startedAt.getTime() - t0) / 1000,
    };
  }

  const find = (evs, pred, what, last = false) => {
    const hit = last ? evs.findLast(pred) : evs.find(pred);
    if (!hit) throw new Error(`no ${what} event in the job's events (the handler's events changed?): ${evs.map((e) => e.message).join(" | ").slice(0, 600)}`);
    return Date.parse(hit.createdAt);
  };
  const phaseIs = (p) => (e) => e.progress?.phase === p;

  /**
   * Import phases from the events (ms): setup (resolve path), sha256 (verify), lookup (same-content
   * query + detectCompression), header+info (inspectImage + qemu-img info), check+convert, finalize
   * (rename, stat, image row, cleanup, job row).
   */
  function importPhases({ job, events: evs }) {
    const start = job.startedAt.getTime();
    const reading = evs.find((e) => e.type === "log" && e.message.startsWith("reading "));
    const setup = reading ? Date.parse(reading.createdAt) : start;
    // A separate verify phase exists only when the sha256 must come first (--sha256, --dedupe);
    // otherwise the job hashes alongside the conversion and this span is 0.
    const verify = evs.findLast(phaseIs("verify"));
    return spans([
      ["start", start],
      ["setup", setup],
      ["sha256", verify ? Date.parse(verify.createdAt) : setup],
      ["lookup", find(evs, phaseIs("inspect"), "inspect progress")],
      ["header+info", find(evs, (e) => e.type === "log" && e.message.startsWith("format "), "'format …' log")],
      ["check+convert", find(evs, phaseIs("convert"), "convert progress", true)],
      ["finalize", job.finishedAt.getTime()],
    ]);
  }

  /** Export phases (ms): convert (qemu-img, from the job's start), checksum (sha256 of the output), finalize. */
  function exportPhases({ job, events: evs }) {
    return spans([
      ["start", job.startedAt.getTime()],
      ["convert", find(evs, phaseIs("convert"), "convert progress", true)],
      ["checksum", find(evs, phaseIs("checksum"), "checksum progress", true)],
      ["finalize", job.finishedAt.getTime()],
    ]);
  }

  return {
    inflight,
    waitJob,
    importPhases,
    exportPhases,

    /** POST /v1/images with source {type: "path"}: the worker reads the file from IAAS_IMPORT_DIR. */
    async importPath(name, file) {
      const t0 = Date.now();
      const body = expect(await api.post("/v1/images", { name, source: { type: "path", path: file } }), 202, "POST /v1/images (path)");
      return finish(body.job.id, t0);
    },

    /** POST /v1/images (upload) + one streamed PUT of the whole file, then the import job. */
    async importUpload(name, file, size) {
      const t0 = Date.now();
      const image = expect(await api.post("/v1/images", { name, source: { type: "upload", size } }), 201, "POST /v1/images (upload)");
      const p0 = performance.now();
      const put = await putFile(new URL(image.uploadUrl, baseUrl), file, size);
      const putSeconds = (performance.now() - p0) / 1000;
      const putEnd = Date.now();
      const body = expect(put, 202, `PUT ${image.uploadUrl}`);
      const done = await finish(body.job.id, t0);
      // The job is submitted when the PUT completes: its queue wait starts there.
      return { ...done, putSeconds, queueSeconds: (done.job.startedAt.getTime() - putEnd) / 1000 };
    },

    /** POST /v1/images/:ref/export {format}; the export file is deleted afterwards. */
    async exportImage(ref, format) {
      const t0 = Date.now();
      const body = expect(await api.post(`/v1/images/${encodeURIComponent(ref)}/export`, { format }), 202, `POST /v1/images/${ref}/export`);
      const done = await finish(body.job.id, t0);
      expect(await api.del(`/v1/exports/${body.export.id}`), 204, `DELETE /v1/exports/${body.export.id}`);
      return { ...done, sizeBytes: done.job.result?.sizeBytes ?? null };
    },

    async deleteImage(ref) {
      const body = expect(await api.del(`/v1/images/${encodeURIComponent(ref)}`), 202, `DELETE /v1/images/${ref}`);
      inflight.add(body.job.id);
      await waitJob(body.job.id);
    },

    /** Absolute path of a ready image's stored qcow2 (what an export reads). */
    async storedFile(name) {
      const image = await db.image.findUnique({ where: { name } });
      if (image?.state !== "ready" || !image.path) throw new Error(`image ${name} is not ready (${image?.state})`);
      return path.join(imageStore, image.path);
    },

    /** On interrupt: cancel what still runs (the worker stops qemu-img, removes partial files). */
    async cancelInflight() {
      const ids = [...inflight];
      await Promise.all(ids.map((id) => api.post(`/v1/jobs/${id}/cancel`).catch(() => undefined)));
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const open = await db.job.count({ where: { id: { in: ids }, state: { in: ["queued", "running"] } } }).catch(() => 0);
        if (open === 0) break;
        await sleep(100);
      }
    },
  };
}
