import path from "node:path";
import { IaasError, imageFileHint, isImageFileError } from "@iaas/contracts";
import type { Image } from "@iaas/db";
import { findImageFileFault, markImageFileFault } from "../host/StoreCheck.js";
import type { WorkerServices } from "../jobs/HandlerContext.js";

/**
 * The stored file a VM's new disk is made on, checked just before `qemu-img` uses it: the image is
 * ready and its file is there with the recorded size. A file that vanished since the VM was
 * submitted fails the job with IMAGE_FILE_MISSING and the hint (not a raw qemu-img message), and
 * the image is marked `error` as the store check would.
 */
export async function usableImageFile(services: Pick<WorkerServices, "db" | "imageStore" | "hostId">, image: Image): Promise<string> {
  if (image.state === "error" && isImageFileError(image.errorCode)) {
    throw new IaasError(image.errorCode, image.errorMessage ?? `image '${image.name}' is unusable`, { hint: image.errorHint ?? imageFileHint(image.name) });
  }
  if (image.state !== "ready" || image.path === null) {
    throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is ${image.state}, not ready`, { hint: "import the image again with `iaas image import`" });
  }
  const fault = await findImageFileFault(services.imageStore, image);
  if (fault) {
    await markImageFileFault(services.db, image, fault, services.hostId);
    throw new IaasError(fault.code, fault.message, { hint: imageFileHint(image.name) });
  }
  return path.join(services.imageStore, image.path);
}
