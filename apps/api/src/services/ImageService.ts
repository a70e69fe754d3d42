import { createHash, randomUUID } from "node:crypto";
import { Transform } from "node:stream";
import { enforceQuota } from "./ProjectService.js";
import { currentProjectId, inProject } from "../auth/scope.js";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, truncate } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { formatSize, IaasError, ImageFormat, type ImageCreateRequest } from "@iaas/contracts";
import { isUniqueViolation, type Image, type Prisma, type PrismaClient } from "@iaas/db";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { isAwaitingUpload } from "./dto.js";
import { pickWorkHost } from "./pickWorkHost.js";
import { findImage } from "./resolve.js";
import { parseContentRange } from "./contentRange.js";
import type { RequestMeta } from "./VmService.js";

export type ImageCreated =
  | { kind: "awaiting-upload"; image: Image }
  | { kind: "deduplicated"; image: Image }
  | { kind: "job"; submitted: Submitted<Image> };

export type UploadOutcome = { kind: "partial"; image: Image; offset: number } | { kind: "job"; submitted: Submitted<Image> };

/** Where an upload accumulates, relative to the store root. */
/** How long an upload claim lasts without renewal (renewed every third of it while bytes arrive). */
const UPLOAD_CLAIM_SECONDS = 15;
/** This API process, in upload claims (for the operator reading the row). */
const UPLOAD_INSTANCE = randomUUID().slice(0, 8);

export function stagingFileOf(imageId: string): string {
  return path.join("staging", `${imageId}.upload`);
}

export class ImageService {
  /** Images with an upload being written by this process: one writer per image at a time. */

  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly store: string,
    private readonly offlineAfterSeconds: number,
    private readonly maxUploadBytes: number,
  ) {}

  async create(req: ImageCreateRequest, meta: RequestMeta): Promise<ImageCreated> {
    if (req.dedupe && req.sha256) {
      const same = await this.db.image.findFirst({ where: { sha256: req.sha256, state: "ready", OR: [inProject(), { public: true }] } });
      if (same) return { kind: "deduplicated", image: same };
    }
    const source = req.source;
    if (source.type === "upload" && source.size !== undefined && source.size > this.maxUploadBytes) {
      throw new IaasError("IMAGE_TOO_LARGE", `upload of ${formatSize(source.size)} is over the limit of ${formatSize(this.maxUploadBytes)}`, {
        hint: "raise IAAS_MAX_UPLOAD_BYTES on the API, or import it with --url or --source-path",
      });
    }
    if (source.type === "url") assertHttpUrl(source.url);
    if (source.type === "path" && (!path.isAbsolute(source.path) || source.path.includes("\0"))) {
      throw new IaasError("SOURCE_PATH_NOT_ALLOWED", `source path '${source.path}' is not an absolute path`, {
        hint: "give the absolute path of the file on the hypervisor host, inside its import directory (IAAS_IMPORT_DIR)",
      });
    }
    const data = {
      name: req.name,
      description: req.description ?? null,
      labels: req.labels ?? {},
      state: "importing" as const,
      originType: source.type,
      originLocation: source.type === "url" ? source.url : source.type === "path" ? source.path : null,
      uploadLength: source.type === "upload" && source.size !== undefined ? BigInt(source.size) : null,
      declaredFormat: req.format ?? null,
      expectedSha256: req.sha256 ?? null,
    };
    const imageDemand = { images: 1, imageBytes: source.type === "upload" ? (source.size ?? 0) : 0 };
    if (source.type === "upload") {
      const image = await this.db.$transaction(async (tx) => {
        await enforceQuota(tx, currentProjectId(), imageDemand);
        return this.insert(tx, data);
      });
      return { kind: "awaiting-upload", image };
    }
    const submitted = await this.submitter.submit(meta, async (tx, jobId) => {
      await enforceQuota(tx, currentProjectId(), imageDemand);
      const image = await this.insert(tx, { ...data, lockJobId: jobId });
      const hostId = await pickWorkHost(tx, this.offlineAfterSeconds, req.host);
      return {
        spec: {
          type: "image.import",
          payload: {
            imageId: image.id,
            source: source.type === "url" ? { type: "url", url: source.url } : { type: "path", path: source.path },
            ...(req.format ? { declaredFormat: req.format } : {}),
            ...(req.sha256 ? { expectedSha256: req.sha256 } : {}),
            dedupe: req.dedupe,
          },
          hostId,
          imageId: image.id,
          targetName: image.name,
        },
        extra: image,
      };
    });
    return { kind: "job", submitted };
  }

  private async insert(db: PrismaClient | Prisma.TransactionClient, data: Prisma.ImageUncheckedCreateInput): Promise<Image> {
    try {
      return await db.image.create({ data: { projectId: currentProjectId(), ...data } });
    } catch (err) {
      if (isUniqueViolation(err, "name")) {
        throw new IaasError("NAME_TAKEN", `an image named '${data.name}' already exists`, {
          hint: "choose another name, or delete the old image with `iaas image delete`",
        });
      }
      throw err;
    }
  }

  /**
   * Bytes of the upload the server has so far: the offset recorded in Postgres (any API replica
   * answers the same), or the staging file's size for an upload that recorded none yet.
   */
  async uploadOffset(image: Image): Promise<number> {
    if (image.uploadOffset !== null) return Number(image.uploadOffset);
    return stat(path.join(this.store, stagingFileOf(image.id))).then(
      (s) => s.size,
      () => 0,
    );
  }

  /**
   * Claims the right to write an image's upload, in Postgres so it holds across API replicas:
   * one writer at a time, for UPLOAD_CLAIM_SECONDS renewed while bytes arrive. A replica that died
   * mid-upload leaves a claim that lapses by itself. Returns the claim's owner token.
   */
  private async claimUpload(image: Image): Promise<string> {
    const owner = `${UPLOAD_INSTANCE}:${randomUUID()}`;
    const claimed = await this.db.$executeRaw`
      UPDATE "Image" SET "uploadOwner" = ${owner}, "uploadLockedUntil" = now() + make_interval(secs => ${UPLOAD_CLAIM_SECONDS}), "uploadActivityAt" = now()
      WHERE "id" = ${image.id}::uuid AND ("uploadLockedUntil" IS NULL OR "uploadLockedUntil" < now())`;
    if (claimed === 0) {
      throw new IaasError("UPLOAD_IN_PROGRESS", `another upload to image '${image.name}' is under way`, {
        hint: `wait for it to finish; a writer that went away releases it within ${UPLOAD_CLAIM_SECONDS} s, then resume (HEAD gives Upload-Offset)`,
      });
    }
    return owner;
  }

  /** Records how far the upload got (and renews the claim, or releases it when `done`). */
  private async recordUpload(imageId: string, owner: string, offset: number, done: boolean): Promise<void> {
    await this.db.$executeRaw`
      UPDATE "Image" SET "uploadOffset" = ${BigInt(offset)}, "uploadActivityAt" = now(),
        "uploadLockedUntil" = CASE WHEN ${done} THEN NULL ELSE now() + make_interval(secs => ${UPLOAD_CLAIM_SECONDS}) END,
        "uploadOwner" = CASE WHEN ${done} THEN NULL ELSE "uploadOwner" END
      WHERE "id" = ${imageId}::uuid AND "uploadOwner" = ${owner}`;
  }

  /**
   * Receives upload bytes, streamed to the staging file (never buffered whole). Without a
   * Content-Range the body is the whole file; with one it is appended at its start, which must be
   * the current offset, so a cut upload continues where the server stopped. Once the file is
   * whole the import job is submitted.
   */
  async upload(ref: string, body: Readable, headers: { contentLength: number | null; contentRange: string | null }, meta: RequestMeta): Promise<UploadOutcome> {
    const image = await findImage(this.db, ref);
    assertAwaitingUpload(image);
    const owner = await this.claimUpload(image);
    let offset: number;
    let total: number | null;
    let sha256: string | null;
    let written = await this.uploadOffset(image);
    try {
      ({ offset, total, sha256 } = await this.receive(image, body, headers, (n) => {
        written = n;
        return this.recordUpload(image.id, owner, n, false);
      }));
      written = offset;
    } finally {
      await this.recordUpload(image.id, owner, written, true);
    }
    if (total === null || offset < total) return { kind: "partial", image, offset };
    const sizeBytes = offset;
    // The bytes are stored: with Redis away the import is committed and relayed later, not refused.
    const submitted = await this.submitter.submit({ ...meta, deferIfQueueDown: true }, async (tx, jobId) => {
      assertAwaitingUpload(await tx.image.findUniqueOrThrow({ where: { id: image.id } }));
      const locked = await lockImage(tx, image.id, jobId);
      const hostId = await pickWorkHost(tx, this.offlineAfterSeconds);
      return {
        spec: {
          type: "image.import",
          payload: {
            imageId: image.id,
            source: { type: "upload", stagingFile: stagingFileOf(image.id), sizeBytes, ...(sha256 ? { sha256 } : {}) },
            ...(locked.declaredFormat && isImageFormat(locked.declaredFormat) ? { declaredFormat: locked.declaredFormat } : {}),
            ...(locked.expectedSha256 ? { expectedSha256: locked.expectedSha256 } : {}),
            dedupe: false,
          },
          hostId,
          imageId: image.id,
          targetName: image.name,
        },
        extra: locked,
      };
    });
    return { kind: "job", submitted };
  }

  /**
   * Writes the body to the staging file. When this request carries the file from its first byte,
   * its sha256 is computed on the way (a resumed upload leaves that to the import job).
   */
  private async receive(
    image: Image,
    body: Readable,
    headers: { contentLength: number | null; contentRange: string | null },
    progress: (offset: number) => Promise<void>,
  ): Promise<{ offset: number; total: number | null; sha256: string | null }> {
    await mkdir(path.join(this.store, "staging"), { recursive: true });
    const staging = path.join(this.store, stagingFileOf(image.id));
    const declared = image.uploadLength === null ? null : Number(image.uploadLength);
    const current = await this.uploadOffset(image);
    // Bytes past the recorded offset were written by a writer that died before recording them.
    if (headers.contentRange !== null && current > 0) await truncate(staging, current).catch(() => undefined);
    let start = 0;
    let total: number | null = declared ?? headers.contentLength;
    if (headers.contentRange !== null) {
      const range = parseContentRange(headers.contentRange);
      if (declared !== null && range.total !== declared) {
        throw new IaasError("VALIDATION_FAILED", `Content-Range total ${range.total} differs from the declared size ${declared}`, { hint: "resume with the same file" });
      }
      if (range.start !== current) {
        throw new IaasError("UPLOAD_OFFSET_MISMATCH", `upload of '${image.name}' is at byte ${current}, not ${range.start}`, {
          hint: "ask for the offset with HEAD (Upload-Offset) and send from there",
          details: { offset: current },
        });
      }
      start = range.start;
      total = range.total;
    }
    if (total !== null && total > this.maxUploadBytes) {
      throw new IaasError("IMAGE_TOO_LARGE", `upload of ${formatSize(total)} is over the limit of ${formatSize(this.maxUploadBytes)}`, { hint: "raise IAAS_MAX_UPLOAD_BYTES on the API" });
    }
    const limit = total ?? this.maxUploadBytes;
    // A whole-file upload replaces whatever a previous attempt left; a range appends.
    const out = createWriteStream(headers.contentRange === null ? `${staging}.whole` : staging, { flags: headers.contentRange === null ? "w" : "a" });
    let received = 0;
    const hash = start === 0 ? createHash("sha256") : null;
    let overflow: IaasError | null = null;
    const limiter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        hash?.update(chunk);
        if (start + received > limit) {
          // Stop writing and answer 400; the rest of the body is not read (the connection closes after the answer).
          overflow = new IaasError("IMAGE_TOO_LARGE", `upload is larger than the ${formatSize(limit)} announced`, { hint: "send the declared number of bytes" });
          body.unpipe(limiter);
          body.pause();
          done();
          limiter.end();
          return;
        }
        done(null, chunk);
      },
    });
    // While bytes arrive, the offset reached is recorded (and the claim renewed) every few seconds.
    // A renewal that fails (the database restarting) is not fatal here: the claim then lapses, and
    // the final record after the body either succeeds or fails this request with 503.
    const ticker = setInterval(() => {
      void progress(headers.contentRange !== null ? start + out.bytesWritten : 0).catch(() => undefined);
    }, (UPLOAD_CLAIM_SECONDS * 1000) / 3);
    try {
      body.pipe(limiter);
      body.on("error", (err) => limiter.destroy(err));
      body.on("aborted", () => limiter.destroy(new Error("client went away")));
      await pipeline(limiter, out);
    } catch {
      // The client went away: keep what arrived, so the upload can resume.
    } finally {
      clearInterval(ticker);
    }
    if (overflow !== null) {
      // A whole upload is dropped; a range is cut back to where it started, keeping earlier ranges.
      if (headers.contentRange === null) await rm(`${staging}.whole`, { force: true });
      else await truncate(staging, start);
      throw overflow;
    }
    if (headers.contentRange === null) {
      await rename(`${staging}.whole`, staging);
      const size = (await stat(staging)).size;
      if (size === 0) {
        await rm(staging, { force: true });
        throw new IaasError("IMAGE_INVALID", "the uploaded file is empty", { hint: "check the --file path points at a disk image" });
      }
      return { offset: size, total: total ?? size, sha256: hash && size === received ? hash.digest("hex") : null };
    }
    const offset = (await stat(staging)).size;
    return { offset, total, sha256: hash && offset === received ? hash.digest("hex") : null };
  }

  async remove(ref: string, meta: RequestMeta): Promise<Submitted<Image>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const found = await findImage(tx, ref);
      const image = await lockImage(tx, found.id, jobId);
      const users = await tx.vm.findMany({ where: { imageId: image.id }, select: { name: true }, orderBy: { name: "asc" } });
      if (users.length > 0) {
        const names = users.map((u) => u.name);
        throw new IaasError("IMAGE_IN_USE", `image '${image.name}' is used by VM${names.length > 1 ? "s" : ""} ${names.join(", ")}`, {
          hint: "delete those VMs first (`iaas vm delete NAME`)",
          details: { vms: names },
        });
      }
      const exporting = await tx.export.findFirst({ where: { sourceId: image.id, state: "pending" } });
      if (exporting) {
        throw new IaasError("IMAGE_IN_USE", `image '${image.name}' is being exported by job ${exporting.jobId}`, {
          hint: `wait for it (\`iaas job wait ${exporting.jobId}\`) or cancel it (\`iaas job cancel ${exporting.jobId}\`)`,
          details: { jobId: exporting.jobId },
        });
      }
      const hostId = await pickWorkHost(tx, this.offlineAfterSeconds);
      return {
        spec: { type: "image.delete", payload: { imageId: image.id }, hostId, imageId: image.id, targetName: image.name },
        extra: image,
      };
    });
  }

  /**
   * `image verify`: a job on the least busy online host checks the stored file (exists, size,
   * sha256, `qemu-img check`) under the image's lock, then makes the image ready or `error`.
   */
  async verify(ref: string, meta: RequestMeta): Promise<Submitted<Image>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const found = await findImage(tx, ref);
      const image = await lockImage(tx, found.id, jobId);
      if (image.state !== "ready" && image.state !== "error") {
        throw new IaasError("INVALID_STATE", `image '${image.name}' is ${image.state}: only a ready image, or one in error, can be verified`, {
          hint: image.state === "failed" ? "its import failed and nothing is stored; import it again with `iaas image import`" : `look at it with \`iaas image show ${image.name}\``,
        });
      }
      const hostId = await pickWorkHost(tx, this.offlineAfterSeconds);
      return {
        spec: { type: "image.verify", payload: { imageId: image.id }, hostId, imageId: image.id, targetName: image.name },
        extra: image,
      };
    });
  }
}

function isImageFormat(value: string): value is ImageFormat {
  return ImageFormat.safeParse(value).success;
}

function assertHttpUrl(raw: string): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IaasError("URL_NOT_ALLOWED", `'${raw}' is not a URL`, { hint: "give an http:// or https:// URL" });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new IaasError("URL_NOT_ALLOWED", `the ${url.protocol.replace(":", "")} scheme is not allowed; only http and https`, {
      hint: "serve the image over http(s), upload it with --file, or use --source-path for a file on the host",
    });
  }
}

function assertAwaitingUpload(image: Image): void {
  if (!isAwaitingUpload(image)) {
    throw new IaasError("INVALID_STATE", `image '${image.name}' is ${image.lockJobId ? "being imported" : image.state} and takes no upload`, {
      hint: "create a new image with `iaas image import NAME --file PATH`",
    });
  }
}

export async function lockImage(tx: Prisma.TransactionClient, imageId: string, jobId: string): Promise<Image> {
  const { count } = await tx.image.updateMany({ where: { id: imageId, lockJobId: null }, data: { lockJobId: jobId } });
  const image = await tx.image.findUniqueOrThrow({ where: { id: imageId } });
  if (count === 0) {
    throw new IaasError("VM_BUSY", `image '${image.name}' is busy: job ${image.lockJobId} holds it`, {
      hint: `wait for it with \`iaas job wait ${image.lockJobId}\``,
      details: { jobId: image.lockJobId },
    });
  }
  return image;
}
