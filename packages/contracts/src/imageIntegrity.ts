import type { ErrorCode } from "./errors.js";
import type { ImageState } from "./states.js";

/** The codes an image in state `error` carries: its stored file is gone, or differs from what was recorded. */
export const IMAGE_FILE_ERROR_CODES = ["IMAGE_FILE_MISSING", "IMAGE_FILE_MISMATCH"] as const satisfies readonly ErrorCode[];
export type ImageFileErrorCode = (typeof IMAGE_FILE_ERROR_CODES)[number];

export function isImageFileError(code: string | null): code is ImageFileErrorCode {
  return (IMAGE_FILE_ERROR_CODES as readonly string[]).includes(code ?? "");
}

/** What the operator does about an image whose stored file is missing or changed. */
export function imageFileHint(imageName: string): string {
  return `restore the file and run \`iaas image verify ${imageName}\`, or delete the image and import it again`;
}

/**
 * The state an image goes back to when its delete failed: with its file still there, `ready`, or
 * `error` again if it was unusable before the delete (its error code says so); without it, `failed`.
 */
export function imageStateAfterFailedDelete(image: { errorCode: string | null }, filePresent: boolean): ImageState {
  if (!filePresent) return "failed";
  return isImageFileError(image.errorCode) ? "error" : "ready";
}
