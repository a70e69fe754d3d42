// A resumable upload through the REST API (POST the record, PUT ranges, HEAD for the offset after a
// cut), spread over both APIs; a cut or refused range resumes where the server says it stopped.
import type { ApiClient, Submitted } from "./client.js";
import { sleep } from "./services.js";

export interface UploadOptions {
  chunkBytes: number;
  /** The API the first range goes to. */
  first?: number;
  /** Send the first range slowly, in pieces of this size with this pause (so a fault can land mid-range). */
  throttle?: { pieceBytes: number; delayMs: number };
  /** Hears how many bytes of the current range went out, and to which API. */
  onSent?: (sent: number, api: number) => void;
  retryForMs?: number;
}

export interface UploadResult {
  outcome: Submitted;
  /** Ranges sent again, or resumed from a server offset after a failure. */
  resumes: number;
}

function bodyStream(data: Buffer, throttle: { pieceBytes: number; delayMs: number } | undefined, onSent: (n: number) => void): ReadableStream<Uint8Array> {
  let at = 0;
  const piece = throttle?.pieceBytes ?? data.length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at >= data.length) {
        controller.close();
        return;
      }
      if (throttle && at > 0) await sleep(throttle.delayMs);
      const next = data.subarray(at, Math.min(data.length, at + piece));
      at += next.length;
      onSent(at);
      controller.enqueue(new Uint8Array(next));
    },
  });
}

export async function uploadImage(client: ApiClient, op: string, name: string, content: Buffer, opts: UploadOptions): Promise<UploadResult> {
  const size = content.length;
  const deadline = Date.now() + (opts.retryForMs ?? 150_000);
  let resumes = 0;
  const createKey = client.newKey(op);
  const created = await client.request("POST", "/v1/images", { body: { name, source: { type: "upload", size } }, key: createKey, ...(opts.first !== undefined ? { first: opts.first } : {}) });
  if ("failed" in created) return { outcome: client.settle(op, createKey, created), resumes };
  let imageId: string | undefined;
  if (created.status === 201) imageId = created.body?.["id"] as string | undefined;
  else if (created.status === 409 && created.body?.["code"] === "NAME_TAKEN" && created.attempts > 1) {
    // The first attempt made the record but its answer was lost: it is ours if it awaits an upload.
    const shown = await client.request("GET", `/v1/images/${name}`);
    if (!("failed" in shown) && shown.status === 200 && shown.body?.["state"] === "importing") imageId = shown.body["id"] as string;
  }
  if (imageId === undefined) return { outcome: client.settle(op, createKey, created), resumes };

  const id = imageId;
  const findImportJob = async (): Promise<Submitted | null> => {
    const jobs = await client.request("GET", `/v1/jobs?image=${id}&type=image.import`);
    const job = !("failed" in jobs) ? ((jobs.body?.["items"] as { id: string; type: string }[] | undefined) ?? [])[0] : undefined;
    if (!job) return null;
    client.record({ jobId: job.id, jobType: job.type, op, key: createKey, via: "rest" });
    client.stats.outcome(op, "accepted");
    return { kind: "accepted", jobId: job.id, jobType: job.type, body: {} };
  };
  let api = opts.first ?? client.pickApi();
  let offset: number | null = 0;
  let first = true;
  for (;;) {
    if (Date.now() > deadline) {
      const reason = `upload of ${name} (${imageId}) gave up at offset ${String(offset)} of ${size}`;
      return { outcome: client.settle(op, createKey, { failed: reason }), resumes };
    }
    if (offset === null) {
      const head = await client.request("HEAD", `/v1/images/${imageId}/file`, { first: api });
      if ("failed" in head) continue;
      api = head.api;
      if (head.status !== 204) {
        return { outcome: client.settle(op, createKey, head), resumes };
      }
      offset = Number(head.headers.get("upload-offset") ?? 0);
    }
    if (offset >= size) {
      // Every byte arrived; the answer that named the import job was lost. Find the job.
      const found = await findImportJob();
      if (found) return { outcome: found, resumes };
      await sleep(1000);
      offset = null;
      continue;
    }
    const end = Math.min(size, offset + opts.chunkBytes);
    const key = `${createKey}-at-${offset}`;
    const started = Date.now();
    try {
      const res = await fetch(`${client.urls[api]}/v1/images/${imageId}/file`, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "content-range": `bytes ${offset}-${end - 1}/${size}`, "idempotency-key": key, "content-length": String(end - offset) },
        body: bodyStream(content.subarray(offset, end), first ? opts.throttle : undefined, (n) => opts.onSent?.(n, api)),
        duplex: "half",
        signal: AbortSignal.timeout(30_000),
      } as RequestInit & { duplex: "half" });
      first = false;
      client.stats.attempts += 1;
      const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
      const code = typeof body?.["code"] === "string" ? body["code"] : "";
      if (res.status === 200) {
        offset = Number(body?.["offset"] ?? res.headers.get("upload-offset"));
        api = (api + 1) % client.urls.length;
        continue;
      }
      if (res.status === 202) {
        return { outcome: client.settle(op, key, { status: 202, body, headers: res.headers, api, attempts: 1 }), resumes };
      }
      if (code === "UPLOAD_OFFSET_MISMATCH" || code === "UPLOAD_IN_PROGRESS" || res.status >= 500) {
        client.stats.count(client.stats.retried, `upload ${res.status} ${code}`);
        resumes += 1;
        offset = code === "UPLOAD_OFFSET_MISMATCH" && res.headers.get("upload-offset") !== null ? Number(res.headers.get("upload-offset")) : null;
        await sleep(code === "UPLOAD_IN_PROGRESS" ? 1000 : 300);
        if (res.status >= 500) api = (api + 1) % client.urls.length;
        continue;
      }
      if (code === "INVALID_STATE") {
        // A range whose answer was lost completed the upload: the import job exists already.
        const found = await findImportJob();
        if (found) return { outcome: found, resumes };
      }
      return { outcome: client.settle(op, key, { status: res.status, body, headers: res.headers, api, attempts: 1 }), resumes };
    } catch (err) {
      first = false;
      const e = err as { name?: string; cause?: { code?: string }; message?: string };
      client.stats.count(client.stats.retried, `upload ${e.name === "TimeoutError" ? "timeout" : (e.cause?.code ?? e.message ?? "error")}`);
      client.stats.maxLatencyMs = Math.max(client.stats.maxLatencyMs, Date.now() - started);
      resumes += 1;
      offset = null;
      api = (api + 1) % client.urls.length;
      await sleep(300);
    }
  }
}
