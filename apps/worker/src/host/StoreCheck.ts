import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { formatSize, imageFileHint, type ImageFileErrorCode } from "@iaas/contracts";
import { createJobRow, finishJobIn, type Image, type PrismaClient } from "@iaas/db";

/** What is wrong with an image's stored file: gone, or not what its row records. */
export interface ImageFileFault {
  code: ImageFileErrorCode;
  message: string;
}

function bytes(n: bigint | number): string {
  return `${formatSize(Number(n))} (${String(n)} bytes)`;
}

/**
 * Checks that an image's stored file exists and has the size recorded when it was stored; null
 * when it does. A file that cannot be examined for another reason (permissions, I/O) throws: that
 * says nothing about the file, so it is not a fault.
 */
export async function findImageFileFault(imageStore: string, image: Pick<Image, "name" | "path" | "storedSize">): Promise<ImageFileFault | null> {
  if (image.path === null) return { code: "IMAGE_FILE_MISSING", message: `image '${image.name}' has no stored file recorded` };
  const file = path.join(imageStore, image.path);
  const expected = image.storedSize === null ? "" : ` (expected ${bytes(image.storedSize)})`;
  let found;
  try {
    found = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { code: "IMAGE_FILE_MISSING", message: `the stored file of image '${image.name}' is missing: ${file}${expected}` };
    throw err;
  }
  if (!found.isFile()) return { code: "IMAGE_FILE_MISMATCH", message: `the stored file of image '${image.name}' is not a regular file: ${file}${expected}` };
  if (image.storedSize !== null && BigInt(found.size) !== image.storedSize) {
    return { code: "IMAGE_FILE_MISMATCH", message: `the stored file of image '${image.name}' has the wrong size: ${file} is ${bytes(found.size)}, ${bytes(image.storedSize)} were recorded when it was stored` };
  }
  return null;
}

/**
 * Marks a ready image that no job holds as `error` with the fault, and records the change as a
 * finished `image.reconcile` job (so `iaas job list --image NAME` shows it). A conditional update:
 * when several workers find the same fault (the store is shared), one wins and the others change
 * nothing; an image a job took meanwhile (a delete, a verify) is left to that job. Returns whether
 * this call changed it.
 */
export async function markImageFileFault(db: PrismaClient, image: Pick<Image, "id" | "name" | "projectId">, fault: ImageFileFault, hostId: string): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.image.updateMany({
      where: { id: image.id, state: "ready", lockJobId: null },
      data: { state: "error", errorCode: fault.code, errorMessage: fault.message, errorHint: imageFileHint(image.name), checkedAt: new Date() },
    });
    if (count === 0) return false;
    const jobId = randomUUID();
    await createJobRow(tx, jobId, { type: "image.reconcile", payload: { imageId: image.id, reason: fault.message }, hostId, imageId: image.id, targetName: image.name, projectId: image.projectId }, {});
    await finishJobIn(tx, jobId, {
      state: "succeeded",
      result: { imageId: image.id, state: "error", previousState: "ready", code: fault.code },
      message: `${fault.message}; image marked error`,
    });
    return true;
  });
}

export interface StoreCheckOutcome {
  /** Ready images no job held, whose files were looked at. */
  checked: number;
  /** Images this pass marked `error`. */
  marked: { imageId: string; name: string; code: ImageFileErrorCode }[];
  /** Images whose file could not be examined (left as they are; logged). */
  unreadable: number;
}

/**
 * The worker's check of the shared image store: every `ready` image no job holds must have its
 * file, with the size recorded when it was stored. One that does not is marked `error` with a hint
 * (`markImageFileFault`). Whole images get `checkedAt`. An image in `error` is never flipped back
 * here, even when its file returns: `iaas image verify` does that, after checking the sha256 too.
 */
export class StoreCheck {
  private running: Promise<StoreCheckOutcome> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: PrismaClient,
    private readonly imageStore: string,
    private readonly hostId: string,
    private readonly log: Logger,
  ) {}

  /** One pass over the ready images; a call while a pass runs gets that pass. */
  pass(): Promise<StoreCheckOutcome> {
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  /** Runs a pass every `intervalMs` (a failed pass is logged; the next one tries again). */
  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => {
      this.pass().catch((err: unknown) => this.log.warn({ err }, "image store check failed; trying again at the next interval"));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async run(): Promise<StoreCheckOutcome> {
    const images = await this.db.image.findMany({
      where: { state: "ready", lockJobId: null },
      select: { id: true, name: true, projectId: true, path: true, storedSize: true },
      orderBy: { createdAt: "asc" },
    });
    const outcome: StoreCheckOutcome = { checked: images.length, marked: [], unreadable: 0 };
    const whole: string[] = [];
    for (const image of images) {
      let fault: ImageFileFault | null;
      try {
        fault = await findImageFileFault(this.imageStore, image);
      } catch (err) {
        outcome.unreadable++;
        this.log.warn({ err, imageId: image.id, image: image.name }, "could not examine the image's stored file; its state stays as it is");
        continue;
      }
      if (fault === null) {
        whole.push(image.id);
        continue;
      }
      if (await markImageFileFault(this.db, image, fault, this.hostId)) {
        outcome.marked.push({ imageId: image.id, name: image.name, code: fault.code });
        this.log.warn({ imageId: image.id, image: image.name, code: fault.code }, `${fault.message}; image marked error`);
      }
    }
    // The database's clock, and no updatedAt bump: a routine check changes nothing a user set.
    if (whole.length > 0) {
      await this.db.$executeRaw`
        UPDATE "Image" SET "checkedAt" = now() AT TIME ZONE 'UTC'
        WHERE "id" = ANY(${whole}::uuid[]) AND "state" = 'ready' AND "lockJobId" IS NULL`;
    }
    this.log.debug({ checked: outcome.checked, marked: outcome.marked.length, unreadable: outcome.unreadable }, "image store checked");
    return outcome;
  }
}
