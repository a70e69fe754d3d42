import { stat } from "node:fs/promises";
import path from "node:path";
import { formatSize, IaasError, imageFileHint } from "@iaas/contracts";
import type { Image } from "@iaas/db";
import { findImageFileFault, type ImageFileFault } from "../host/StoreCheck.js";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { hashFile } from "./hashFile.js";
import { phaseProgress } from "./phaseProgress.js";

type Ctx = HandlerContext<"image.verify">;

/**
 * Records what verify found wrong (state `error`, the fault and the hint) while this job holds the
 * image, and fails the job with the same code.
 */
async function unusable(ctx: Ctx, image: Image, fault: ImageFileFault): Promise<never> {
  const hint = imageFileHint(image.name);
  await ctx.db.image.updateMany({
    where: { id: image.id, lockJobId: ctx.job.id },
    data: { state: "error", errorCode: fault.code, errorMessage: fault.message, errorHint: hint, checkedAt: new Date() },
  });
  throw new IaasError(fault.code, fault.message, { hint });
}

/** qemu-img refusing the file (not qcow2, unreadable header) is a fault of the file; a timeout or a missing qemu-img is not. */
async function qemuImgFinding<T>(file: string, image: Image, work: () => Promise<T>): Promise<{ value: T } | { fault: ImageFileFault }> {
  try {
    return { value: await work() };
  } catch (err) {
    if (err instanceof IaasError && err.code === "QEMU_IMG_FAILED" && !err.retryable) {
      return { fault: { code: "IMAGE_FILE_MISMATCH", message: `the stored file of image '${image.name}' is not a readable qcow2 image: ${file}: ${err.message}` } };
    }
    throw err;
  }
}

/**
 * `image verify`: the stored file exists, has the recorded size and sha256, is a self-contained
 * qcow2 of the recorded virtual size, and `qemu-img check` finds no corruption. All good: the image
 * is `ready` again with its error cleared; otherwise it is `error` with the precise reason and the
 * job fails with that code. A verify cut short (timeout, cancel) leaves the image as it was.
 */
export const imageVerify: JobHandler<"image.verify"> = {
  async run(ctx) {
    const image = await ctx.db.image.findUnique({ where: { id: ctx.payload.imageId } });
    if (!image) throw new IaasError("NOT_FOUND", `image ${ctx.payload.imageId} no longer exists`, { hint: "run `iaas image list`" });
    if (image.state !== "ready" && image.state !== "error") {
      throw new IaasError("INVALID_STATE", `image '${image.name}' is ${image.state}: only a ready image, or one in error, is verified`, {
        hint: image.state === "failed" ? "its import failed; import it again with `iaas image import`" : `look at it with \`iaas image show ${image.name}\``,
      });
    }
    await ctx.progress({ phase: "stat", percent: 1, message: "looking for the stored file" });
    const fault = await findImageFileFault(ctx.imageStore, image);
    if (fault) return unusable(ctx, image, fault);
    const file = path.join(ctx.imageStore, image.path ?? "");
    const sizeBytes = (await stat(file)).size;

    const sha256 = await hashFile(file, phaseProgress(ctx.progress, "checksum", sizeBytes, { from: 2, to: 90 }), ctx.signal);
    if (image.storedSha256 !== null && sha256 !== image.storedSha256) {
      return unusable(ctx, image, {
        code: "IMAGE_FILE_MISMATCH",
        message: `the stored file of image '${image.name}' has changed: the sha256 of ${file} is ${sha256}, ${image.storedSha256} was recorded when it was stored`,
      });
    }

    await ctx.progress({ phase: "check", percent: 92, message: "qemu-img info and check" });
    const inspected = await qemuImgFinding(file, image, () => ctx.qemuImg.info(file, "qcow2", { signal: ctx.signal }));
    if ("fault" in inspected) return unusable(ctx, image, inspected.fault);
    const info = inspected.value;
    if (info.backingFilename !== null || info.dataFile !== null) {
      return unusable(ctx, image, { code: "IMAGE_FILE_MISMATCH", message: `the stored file of image '${image.name}' refers to another file (${info.backingFilename ?? info.dataFile ?? ""}): ${file}` });
    }
    if (image.virtualSize !== null && BigInt(info.virtualSize) !== image.virtualSize) {
      return unusable(ctx, image, {
        code: "IMAGE_FILE_MISMATCH",
        message: `the stored file of image '${image.name}' has a virtual size of ${formatSize(info.virtualSize)}, ${formatSize(Number(image.virtualSize))} was recorded: ${file}`,
      });
    }
    const checked = await qemuImgFinding(file, image, () => ctx.qemuImg.check(file, "qcow2", { signal: ctx.signal }));
    if ("fault" in checked) return unusable(ctx, image, checked.fault);
    const check = checked.value;
    if (!check.ok) {
      return unusable(ctx, image, { code: "IMAGE_FILE_MISMATCH", message: `qemu-img check found ${check.corruptions} corruption(s) in the stored file of image '${image.name}': ${file}` });
    }

    const firstChecksum = image.storedSha256 === null;
    const { count } = await ctx.db.image.updateMany({
      where: { id: image.id, lockJobId: ctx.job.id },
      data: { state: "ready", storedSha256: sha256, checkedAt: new Date(), errorCode: null, errorMessage: null, errorHint: null },
    });
    if (count === 0) {
      throw new IaasError("INVALID_STATE", `image '${image.name}' is no longer held by this verify job; its state was left as it is`, {
        hint: `run \`iaas image verify ${image.name}\` again`,
      });
    }
    if (firstChecksum) await ctx.note(`no checksum of the stored file was kept for image '${image.name}' (stored before they were); sha256 ${sha256} is kept from now on`, "warn");
    if (image.state === "error") await ctx.note(`image '${image.name}' was in error (${image.errorCode ?? "?"}); its file is whole again`);
    return { imageId: image.id, state: "ready", sizeBytes, sha256, firstChecksum };
  },
  describe: (r) => `image file whole (${formatSize(r.sizeBytes)}, sha256 ${r.sha256}${r.firstChecksum ? ", kept from now on" : ""}); image ready`,
};
