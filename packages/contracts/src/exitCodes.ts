import type { ErrorCode } from "./errors.js";

/** CLI exit codes (documented in `iaas --help`). */
export const ExitCode = {
  OK: 0,
  JOB_FAILED: 1,
  USAGE: 2,
  NOT_FOUND_OR_CONFLICT: 3,
  WAIT_TIMEOUT: 4,
  UNREACHABLE: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Exit code for an API error answered with `code`. */
export function exitCodeFor(code: ErrorCode): ExitCode {
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
      return ExitCode.USAGE;
    case "UPLOAD_OFFSET_MISMATCH":
    case "UPLOAD_IN_PROGRESS":
    case "EXPORT_EXPIRED":
      return ExitCode.NOT_FOUND_OR_CONFLICT;
    case "DOWNLOAD_FAILED":
      return ExitCode.JOB_FAILED;
    case "NOT_FOUND":
    case "NAME_TAKEN":
    case "VM_BUSY":
    case "INVALID_STATE":
    case "IMAGE_NOT_READY":
    case "IMAGE_FILE_MISSING":
    case "IMAGE_FILE_MISMATCH":
    case "IMAGE_IN_USE":
    case "IDEMPOTENCY_KEY_REUSED":
    case "JOB_NOT_CANCELLABLE":
    case "NO_HOST_AVAILABLE":
    case "HOST_LOST":
    case "NETWORK_IN_USE":
    case "ADDRESS_TAKEN":
    case "PORT_TAKEN":
    case "BACKUP_IN_USE":
    case "QUOTA_EXCEEDED":
      return ExitCode.NOT_FOUND_OR_CONFLICT;
    // A body that is not JSON or too large is the caller's mistake: a usage error, like a bad field.
    case "UNSUPPORTED_MEDIA_TYPE":
    case "REQUEST_TOO_LARGE":
      return ExitCode.USAGE;
    // Refused before any work was done, like a 401/403 or a 503: the API will not serve this
    // client (a foreign Origin or Host), or not right now (rate limit; retry after Retry-After).
    case "FORBIDDEN_ORIGIN":
    case "RATE_LIMITED":
      return ExitCode.UNREACHABLE;
    case "WAIT_TIMEOUT":
      return ExitCode.WAIT_TIMEOUT;
    case "HOST_OFFLINE":
    case "SERVICE_UNAVAILABLE":
    case "QUEUE_UNAVAILABLE":
    case "DATABASE_UNAVAILABLE":
    case "UNAUTHORIZED":
    case "FORBIDDEN":
      return ExitCode.UNREACHABLE;
    case "QEMU_FAILED":
    case "QEMU_IMG_FAILED":
    case "JOB_TIMEOUT":
    case "JOB_CANCELLED":
    case "NETWORK_FAILED":
    case "BACKUP_CORRUPT":
    case "WORKER_LOST":
    case "INTERNAL":
      return ExitCode.JOB_FAILED;
  }
}
