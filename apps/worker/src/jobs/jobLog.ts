import { AsyncLocalStorage } from "node:async_hooks";
import { pino, type Logger, type LoggerOptions } from "pino";
import { LOG_REDACT_CENSOR, LOG_REDACT_PATHS } from "@iaas/contracts";
import { jobTypeOf } from "@iaas/db";

/** What names a job in every log line of its handling. */
export interface JobLogBindings {
  jobId: string;
  type: string;
  vmId?: string;
  imageId?: string;
}

const current = new AsyncLocalStorage<JobLogBindings>();

/**
 * Runs a job's handling with its bindings in scope: every line logged meanwhile by anything it
 * calls — the job's own child logger, but also shared services with their own loggers (host
 * networking, consoles, the QEMU runtime) — carries the job's id, type and VM or image.
 */
export function runWithJobLog<T>(bindings: JobLogBindings, fn: () => T): T {
  return current.run(bindings, fn);
}

/** The bindings of a job's child logger (hostId comes from the worker logger's base). */
export function jobLogBindings(job: Parameters<typeof jobTypeOf>[0] & { id: string; vmId: string | null; imageId: string | null }): JobLogBindings {
  return { jobId: job.id, type: jobTypeOf(job), ...(job.vmId ? { vmId: job.vmId } : {}), ...(job.imageId ? { imageId: job.imageId } : {}) };
}

const chindings = pino.symbols.chindingsSym;

/**
 * pino mixin of the worker's logger: the running job's bindings, unless the logger already names
 * a job (the job's own child logger), so no key is printed twice.
 */
function jobMixin(_merge: object, _level: number, logger: Logger): object {
  const bindings = current.getStore();
  if (!bindings) return {};
  const own = (logger as unknown as Record<symbol, unknown>)[chindings];
  return typeof own === "string" && own.includes('"jobId":') ? {} : bindings;
}

/** The worker's logger options: service and host on every line, the running job's ids on its lines, credentials redacted. */
export function workerLoggerOptions(level: string, hostId: string): LoggerOptions {
  return { level, base: { service: "worker", hostId }, redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR }, mixin: jobMixin };
}
