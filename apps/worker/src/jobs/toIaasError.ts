import { IaasError } from "@iaas/contracts";
import { ProcessError } from "@iaas/hypervisor";

/**
 * Normalizes anything a handler throws. A process that failed is a QEMU/qemu-img error (not
 * retried: the same command fails the same way); anything unknown (a database or network blip)
 * is retryable.
 */
export function toIaasError(err: unknown): IaasError {
  if (err instanceof IaasError) return err;
  if (err instanceof ProcessError) {
    const tool = /qemu-img/.test(err.message) ? "QEMU_IMG_FAILED" : "QEMU_FAILED";
    return new IaasError(tool, err.message, { hint: "see the job log (`iaas job logs ID`) for the command's output", cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new IaasError("INTERNAL", message, { retryable: true, hint: "the worker log has details; the job is retried if attempts remain", cause: err });
}
