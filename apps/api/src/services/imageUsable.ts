import { IaasError, imageFileHint, isImageFileError } from "@iaas/contracts";
import type { Image, Prisma } from "@iaas/db";

/**
 * Refuses, at submit, an image that a disk cannot be made from or read through: one not ready
 * (importing, failed, deleting), or in `error` because its stored file is missing or changed — then
 * with the message and hint recorded when that was found, instead of a job failing later with a
 * raw qemu-img message. `use` names what was asked ("create VM 'web1'").
 */
export function assertImageUsable(image: Image, use: string): asserts image is Image & { path: string; virtualSize: bigint } {
  if (image.state === "error") {
    const code = isImageFileError(image.errorCode) ? image.errorCode : "IMAGE_NOT_READY";
    throw new IaasError(code, `cannot ${use}: image '${image.name}' is unusable: ${image.errorMessage ?? "its stored file is missing or changed"}`, {
      hint: image.errorHint ?? imageFileHint(image.name),
    });
  }
  if (image.state !== "ready" || image.virtualSize === null || image.path === null) {
    throw new IaasError("IMAGE_NOT_READY", `cannot ${use}: image '${image.name}' is ${image.state}, not ready`, {
      hint: image.state === "importing" ? "wait for its import: `iaas job list --state running`" : "import it again with `iaas image import`",
    });
  }
}

/** The image a VM's disk is built on, refused as `assertImageUsable` says. */
export async function requireUsableImage(tx: Prisma.TransactionClient, imageId: string, use: string): Promise<Image> {
  const image = await tx.image.findUniqueOrThrow({ where: { id: imageId } });
  assertImageUsable(image, use);
  return image;
}
