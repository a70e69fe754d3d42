import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { formatSize, IaasError, type ImageCreateRequest } from "@iaas/contracts";
import { isUniqueViolation, type Image, type Prisma, type PrismaClient } from "@iaas/db";
import { isHostOnline } from "./dto.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { findImage } from "./resolve.js";
import type { RequestMeta } from "./VmService.js";

export interface UploadedFile {
  /** Relative to the image store root. */
  stagingFile: string;
  sha256: string;
  sizeBytes: number;
}

export class ImageService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly store: string,
    private readonly offlineAfterSeconds: number,
    private readonly maxUploadBytes: number,
  ) {}

  async create(req: ImageCreateRequest): Promise<Image> {
    try {
      return await this.db.image.create({ data: { name: req.name, description: req.description ?? null, state: "importing" } });
    } catch (err) {
      if (isUniqueViolation(err, "name")) {
        throw new IaasError("NAME_TAKEN", `an image named '${req.name}' already exists`, {
          hint: "choose another name, or delete the old image with `iaas image delete`",
        });
      }
      throw err;
    }
  }

  /**
   * Streams an upload into the store's staging area (never buffering it whole), hashing it on
   * the way, then submits the import job. A cut-off upload leaves nothing behind.
   */
  async upload(ref: string, body: Readable, contentLength: number | null, meta: RequestMeta): Promise<Submitted<Image>> {
    const image = await findImage(this.db, ref);
    assertAwaitingUpload(image);
    if (contentLength !== null && contentLength > this.maxUploadBytes) {
      throw new IaasError("VALIDATION_FAILED", `upload of ${formatSize(contentLength)} is over the limit of ${formatSize(this.maxUploadBytes)}`, {
        hint: "raise IAAS_MAX_UPLOAD_BYTES on the API, or upload a smaller (compressed qcow2) image",
      });
    }
    const file = await this.receive(image, body, contentLength);
    try {
      return await this.submitter.submit(meta, async (tx, jobId) => {
        assertAwaitingUpload(await tx.image.findUniqueOrThrow({ where: { id: image.id } }));
        const locked = await lockImage(tx, image.id, jobId);
        const hostId = await pickImportHost(tx, this.offlineAfterSeconds);
        return {
          spec: { type: "image.import", payload: { imageId: image.id, ...file }, hostId, imageId: image.id, targetName: image.name },
          extra: locked,
        };
      });
    } catch (err) {
      await rm(path.join(this.store, file.stagingFile), { force: true });
      throw err;
    }
  }

  private async receive(image: Image, body: Readable, contentLength: number | null): Promise<UploadedFile> {
    const dir = path.join(this.store, "staging");
    await mkdir(dir, { recursive: true });
    const stagingFile = path.join("staging", `${image.id}.upload`);
    const temp = path.join(dir, `${image.id}.${randomBytes(6).toString("hex")}.part`);
    const hash = createHash("sha256");
    let size = 0;
    const max = this.maxUploadBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > max) {
          done(new IaasError("VALIDATION_FAILED", `upload is over the limit of ${formatSize(max)}`, { hint: "raise IAAS_MAX_UPLOAD_BYTES on the API" }));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(temp, { flags: "wx" }));
      if (contentLength !== null && size !== contentLength) {
        throw new IaasError("UPLOAD_INCOMPLETE", `upload ended after ${size} of ${contentLength} bytes`, { hint: "run the import again" });
      }
      if (size === 0) {
        throw new IaasError("IMAGE_INVALID", "the uploaded file is empty", { hint: "check the --file path points at a disk image" });
      }
      await rename(temp, path.join(this.store, stagingFile));
    } catch (err) {
      await rm(temp, { force: true });
      if (err instanceof IaasError) throw err;
      throw new IaasError("UPLOAD_INCOMPLETE", `upload of image '${image.name}' failed after ${size} bytes: ${(err as Error).message}`, {
        hint: "run the import again",
        cause: err,
      });
    }
    return { stagingFile, sha256: hash.digest("hex"), sizeBytes: size };
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
      const hostId = await pickImportHost(tx, this.offlineAfterSeconds);
      return {
        spec: { type: "image.delete", payload: { imageId: image.id }, hostId, imageId: image.id, targetName: image.name },
        extra: image,
      };
    });
  }
}

function assertAwaitingUpload(image: Image): void {
  if (image.state !== "importing" || image.lockJobId !== null) {
    throw new IaasError("INVALID_STATE", `image '${image.name}' is ${image.lockJobId ? "being imported" : image.state} and takes no upload`, {
      hint: "create a new image with `iaas image import NAME --file PATH`",
    });
  }
}

async function lockImage(tx: Prisma.TransactionClient, imageId: string, jobId: string): Promise<Image> {
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

/** Image work can run on any live host (the store is shared): take the one with least queued work. */
async function pickImportHost(tx: Prisma.TransactionClient, offlineAfterSeconds: number): Promise<string> {
  const hosts = (await tx.host.findMany({ where: { drained: false }, orderBy: { id: "asc" } })).filter((h) => isHostOnline(h, offlineAfterSeconds));
  if (hosts.length === 0) {
    throw new IaasError("NO_HOST_AVAILABLE", "no host is online to process the image", {
      hint: "start a worker (`npm run up`), then retry; `iaas host list` shows host state",
    });
  }
  const load = await tx.job.groupBy({ by: ["hostId"], where: { state: { in: ["queued", "running"] } }, _count: { _all: true } });
  const count = new Map(load.map((l) => [l.hostId, l._count._all]));
  hosts.sort((a, b) => (count.get(a.id) ?? 0) - (count.get(b.id) ?? 0));
  return hosts[0]!.id;
}
