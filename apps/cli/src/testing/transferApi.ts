import type { IncomingMessage, ServerResponse } from "node:http";
import type { Export, Image } from "@iaas/contracts";
import { EXPORT_ID, IMAGE_ID, makeExport, makeImage, makeJob } from "./fixtures.js";
import { sendJson, sendProblem, type RecordedRequest } from "./scriptedServer.js";

export const UPLOAD_PATH = `/v1/images/${IMAGE_ID}/file`;
export const FILE_PATH = `/v1/exports/${EXPORT_ID}/file`;

export const importJob = makeJob({ type: "image.import", vmId: null, imageId: IMAGE_ID, targetName: "deb12" });

export interface FakeUploadOptions {
  /** The file the client is to upload (what the server must end up with). */
  content: Buffer;
  /** PUT number (1-based) → bytes of its body after which the server breaks the connection. */
  cuts?: Record<number, number>;
  /** PUT number → answered 409 UPLOAD_OFFSET_MISMATCH after the offset moved by `advanceBy` (another request's bytes). */
  mismatches?: Record<number, { advanceBy: number }>;
  /** The image exists already (a broken earlier run): POST answers 409 NAME_TAKEN. */
  exists?: boolean;
  /** The declared upload length of the existing image (default: the content's). */
  existingLength?: number;
}

/**
 * The image upload half of the API, as the spec describes it: POST /v1/images (201 awaiting
 * upload), GET /v1/images/:ref, HEAD (Upload-Offset) and ranged PUTs of /v1/images/:id/file,
 * appending what arrives, keeping what a broken connection delivered.
 */
export class FakeUpload {
  received = Buffer.alloc(0);
  puts = 0;
  posts: unknown[] = [];

  constructor(readonly options: FakeUploadOptions) {}

  image(): Image {
    const length = this.options.existingLength ?? this.options.content.length;
    const whole = this.received.length === length;
    return makeImage({
      state: "importing",
      sourceFormat: null,
      virtualSize: null,
      storedSize: null,
      sha256: null,
      storedSha256: null,
      checkedAt: null,
      uploadUrl: whole ? null : UPLOAD_PATH,
      upload: whole ? null : { offset: this.received.length, length },
    });
  }

  /** The scripted (buffered) requests: POST, GET, HEAD. False for what it does not serve. */
  handle(req: RecordedRequest, res: ServerResponse): boolean {
    if (req.method === "POST" && req.path === "/v1/images") {
      this.posts.push(JSON.parse(req.body.toString()));
      if (this.options.exists === true) {
        sendProblem(res, 409, "NAME_TAKEN", "an image named 'deb12' already exists", "choose another name, or delete the old image with `iaas image delete`");
      } else {
        this.options.exists = true;
        sendJson(res, 201, this.image());
      }
      return true;
    }
    if (req.method === "GET" && (req.path === "/v1/images/deb12" || req.path === `/v1/images/${IMAGE_ID}`)) {
      sendJson(res, 200, this.image());
      return true;
    }
    if (req.method === "HEAD" && req.path === UPLOAD_PATH) {
      res.writeHead(204, { "upload-offset": String(this.received.length), "upload-length": String(this.options.content.length) });
      res.end();
      return true;
    }
    return false;
  }

  /** The PUTs, read as they stream in (so the connection can break part-way). */
  raw = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== "PUT" || req.url !== UPLOAD_PATH) return false;
    const n = ++this.puts;
    const start = Number(/^bytes (\d+)-/.exec(req.headers["content-range"] ?? "")?.[1] ?? "0");
    const mismatch = this.options.mismatches?.[n];
    if (start !== this.received.length || mismatch !== undefined) {
      if (mismatch !== undefined) this.accept(this.options.content.subarray(this.received.length, this.received.length + mismatch.advanceBy));
      req.resume();
      req.on("end", () => {
        res.setHeader("upload-offset", String(this.received.length));
        sendProblem(res, 409, "UPLOAD_OFFSET_MISMATCH", `upload is at byte ${this.received.length}, not ${start}`, "ask for the offset with HEAD");
      });
      return true;
    }
    const cut = this.options.cuts?.[n];
    let got = 0;
    let broken = false;
    req.on("data", (chunk: Buffer) => {
      if (broken) return;
      const keep = cut === undefined ? chunk : chunk.subarray(0, Math.max(0, cut - got));
      got += keep.length;
      this.accept(keep);
      if (cut !== undefined && got >= cut) {
        broken = true;
        req.socket.destroy();
      }
    });
    req.on("end", () => {
      if (broken) return;
      if (this.received.length === this.options.content.length) sendJson(res, 202, { job: importJob, image: this.image() });
      else sendJson(res, 200, { image: this.image(), offset: this.received.length });
    });
    return true;
  };

  private accept(bytes: Buffer): void {
    this.received = Buffer.concat([this.received, bytes]);
  }
}

export interface FakeFileOptions {
  content: Buffer;
  etag?: string;
  /** X-Checksum-Sha256 to send (default: none). */
  checksum?: string;
  /** GET number (1-based) → bytes of the body after which the connection breaks. */
  cuts?: Record<number, number>;
}

/** GET /v1/exports/:id/file with Range, If-Range, ETag and X-Checksum-Sha256, as express' sendFile serves it. */
export class FakeFile {
  gets = 0;

  constructor(readonly options: FakeFileOptions) {}

  export(overrides: Partial<Export> = {}): Export {
    return makeExport({ sizeBytes: this.options.content.length, ...overrides });
  }

  handle(req: RecordedRequest, res: ServerResponse): boolean {
    if (req.path !== FILE_PATH || (req.method !== "GET" && req.method !== "HEAD")) return false;
    const n = req.method === "GET" ? ++this.gets : 0;
    const { content } = this.options;
    const etag = this.options.etag ?? '"v1"';
    const headers: Record<string, string> = { etag, "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    if (this.options.checksum !== undefined) headers["x-checksum-sha256"] = this.options.checksum;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
    const ifRange = req.headers["if-range"];
    let start = 0;
    let status = 200;
    if (range?.[1] !== undefined && (ifRange === undefined || ifRange === etag)) {
      start = Number(range[1]);
      if (start >= content.length) {
        res.writeHead(416, { "content-range": `bytes */${content.length}` });
        res.end();
        return true;
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${content.length - 1}/${content.length}`;
    }
    const body = content.subarray(start);
    res.writeHead(status, { ...headers, "content-length": String(body.length) });
    if (req.method === "HEAD") {
      res.end();
      return true;
    }
    const cut = this.options.cuts?.[n];
    if (cut === undefined) {
      res.end(body);
      return true;
    }
    // Hand the first bytes to the kernel, then break the connection (what the client reads of
    // them depends on timing; it must resume from whatever it got).
    res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 30));
    return true;
  }
}
