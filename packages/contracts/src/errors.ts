import { z } from "zod";

/** Stable error codes shared by the API, the worker and the CLI. */
export const ErrorCode = z.enum([
  "VALIDATION_FAILED",
  "NOT_FOUND",
  "NAME_TAKEN",
  "VM_BUSY",
  "INVALID_STATE",
  "IMAGE_NOT_READY",
  "IMAGE_IN_USE",
  "NO_HOST_AVAILABLE",
  "HOST_OFFLINE",
  /** The VM's host is offline past IAAS_HOST_LOST_SECONDS: `vm delete --force`, or `host evacuate`. */
  "HOST_LOST",
  "IDEMPOTENCY_KEY_REUSED",
  "JOB_NOT_CANCELLABLE",
  "UNSUPPORTED_IMAGE_FORMAT",
  "IMAGE_HAS_BACKING_FILE",
  "IMAGE_HAS_DATA_FILE",
  "IMAGE_INVALID",
  "IMAGE_HAS_EXTENTS",
  "IMAGE_TOO_LARGE",
  "FORMAT_MISMATCH",
  "CHECKSUM_MISMATCH",
  "URL_NOT_ALLOWED",
  "DOWNLOAD_FAILED",
  "SOURCE_PATH_NOT_ALLOWED",
  "UPLOAD_INCOMPLETE",
  "UPLOAD_OFFSET_MISMATCH",
  "EXPORT_EXPIRED",
  "QEMU_FAILED",
  "QEMU_IMG_FAILED",
  "JOB_TIMEOUT",
  "JOB_CANCELLED",
  "SERVICE_UNAVAILABLE",
  // Reliability: a dependency is down (the request changed nothing; retry), a worker died running a job.
  "QUEUE_UNAVAILABLE",
  "DATABASE_UNAVAILABLE",
  "WORKER_LOST",
  "UPLOAD_IN_PROGRESS",
  "UNAUTHORIZED",
  // HTTP hardening (apps/api/src/http): body type and size, cross-site/rebinding checks, rate limits.
  "UNSUPPORTED_MEDIA_TYPE",
  "REQUEST_TOO_LARGE",
  "FORBIDDEN_ORIGIN",
  "RATE_LIMITED",
  "SUBNET_CONFLICT",
  "NETWORK_IN_USE",
  "ADDRESS_TAKEN",
  "PORT_TAKEN",
  "NETWORK_FAILED",
  "WAIT_TIMEOUT",
  "BACKUP_IN_USE",
  "BACKUP_CORRUPT",
  // Store integrity: a ready image's stored file is gone, or differs from what was recorded (size, sha256, qemu-img check).
  "IMAGE_FILE_MISSING",
  "IMAGE_FILE_MISMATCH",
  "FORBIDDEN",
  "QUOTA_EXCEEDED",
  "INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** An error as a job records it and as the API reports it. */
export const JobError = z.object({
  code: ErrorCode,
  message: z.string(),
  hint: z.string().nullable(),
});
export type JobError = z.infer<typeof JobError>;

/** RFC 9457 problem details, with our `code` and `hint` members. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: ErrorCode,
  hint: z.string().nullable(),
  /** The job holding a busy resource, when `code` is VM_BUSY. */
  jobId: z.string().optional(),
  /** Field-level validation problems. */
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
export type Problem = z.infer<typeof Problem>;

/** HTTP status for each error code; an exhaustive switch so a new code cannot be forgotten. */
export function httpStatusFor(code: ErrorCode): number {
  switch (code) {
    case "VALIDATION_FAILED":
    case "UNSUPPORTED_IMAGE_FORMAT":
    case "IMAGE_HAS_BACKING_FILE":
    case "IMAGE_HAS_DATA_FILE":
    case "IMAGE_INVALID":
    case "IMAGE_HAS_EXTENTS":
    case "IMAGE_TOO_LARGE":
    case "FORMAT_MISMATCH":
    case "CHECKSUM_MISMATCH":
    case "URL_NOT_ALLOWED":
    case "SOURCE_PATH_NOT_ALLOWED":
    case "UPLOAD_INCOMPLETE":
    case "SUBNET_CONFLICT":
      return 400;
    case "UPLOAD_OFFSET_MISMATCH":
    case "UPLOAD_IN_PROGRESS":
      return 409;
    case "EXPORT_EXPIRED":
      return 410;
    case "DOWNLOAD_FAILED":
      return 502;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "NOT_FOUND":
      return 404;
    case "NAME_TAKEN":
    case "VM_BUSY":
    case "INVALID_STATE":
    case "IMAGE_NOT_READY":
    case "IMAGE_FILE_MISSING":
    case "IMAGE_FILE_MISMATCH":
    case "IMAGE_IN_USE":
    case "IDEMPOTENCY_KEY_REUSED":
    case "JOB_NOT_CANCELLABLE":
    case "NETWORK_IN_USE":
    case "ADDRESS_TAKEN":
    case "PORT_TAKEN":
    case "BACKUP_IN_USE":
    case "QUOTA_EXCEEDED":
      return 409;
    case "BACKUP_CORRUPT":
      return 422;
    case "NO_HOST_AVAILABLE":
    case "HOST_LOST":
      return 409;
    case "HOST_OFFLINE":
    case "SERVICE_UNAVAILABLE":
    case "QUEUE_UNAVAILABLE":
    case "DATABASE_UNAVAILABLE":
      return 503;
    case "QEMU_FAILED":
    case "QEMU_IMG_FAILED":
    case "JOB_TIMEOUT":
    case "JOB_CANCELLED":
    case "NETWORK_FAILED":
    case "WORKER_LOST":
    case "INTERNAL":
      return 500;
    case "WAIT_TIMEOUT":
      return 504;
    case "UNSUPPORTED_MEDIA_TYPE":
      return 415;
    case "REQUEST_TOO_LARGE":
      return 413;
    case "FORBIDDEN_ORIGIN":
      return 403;
    case "RATE_LIMITED":
      return 429;
  }
}

/**
 * An error that carries a stable code and a hint saying what to do next.
 * `retryable: false` marks input that can never succeed, so job runners do not retry it.
 */
export class IaasError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | null;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string | null; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "IaasError";
    this.code = code;
    this.hint = options.hint ?? null;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  toJobError(): JobError {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}
