import { JobCatalog, type Job, type JobEvent } from "@iaas/contracts";
import { formatAge, formatProgress, jobTarget, shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

/** `iaas job list`: ID TYPE STATE TARGET PROGRESS CREATED. */
export function jobTable(jobs: readonly Job[], now: Date): string {
  return formatTable(
    ["ID", "TYPE", "STATE", "TARGET", "PROGRESS", "CREATED"],
    jobs.map((job) => [
      shortId(job.id),
      job.type,
      job.state,
      jobTarget(job),
      job.progress === null ? "-" : `${job.progress.phase} ${Math.floor(job.progress.percent)}%`,
      formatAge(job.createdAt, now),
    ]),
  );
}

/** `iaas job show`. */
export function jobDetails(job: Job): string {
  const fields: [string, string | number | null][] = [
    ["id", job.id],
    ["type", `${job.type} (${JobCatalog[job.type].title})`],
    ["state", job.state],
    ["target", jobTarget(job)],
    ["host", job.hostId],
    ["progress", job.progress === null ? null : formatProgress(job.progress)],
    ["attempts", `${job.attempts}/${job.maxAttempts}`],
    ["timeout", `${Math.round(job.timeoutMs / 1000)}s`],
    ["created", job.createdAt],
    ["started", job.startedAt],
    ["finished", job.finishedAt],
    ["payload", JSON.stringify(job.payload)],
    ["result", job.result === null ? null : JSON.stringify(job.result)],
  ];
  if (job.idempotencyKey !== null) fields.push(["idempotency key", job.idempotencyKey]);
  if (job.actor) fields.push(["requested by", job.actor.name]);
  const requestId = job.requestId ?? job.actor?.requestId ?? null;
  if (requestId !== null) fields.push(["request id", requestId]);
  if (job.error !== null) {
    fields.push(["error", `${job.error.message} (${job.error.code})`]);
    if (job.error.hint !== null) fields.push(["hint", job.error.hint]);
  }
  return formatFields(fields);
}

/** One line of `iaas job logs`: time, type, then the message or the progress. */
export function jobEventLine(event: JobEvent): string {
  const type = event.type.padEnd(8);
  let text: string;
  if (event.type === "progress" && event.progress !== null) text = formatProgress(event.progress);
  else if (event.type === "state") text = [event.state ?? "", event.message].filter((s) => s !== "").join(": ");
  else text = event.level === "info" ? event.message : `${event.level}: ${event.message}`;
  if (event.error !== null) text += ` [${event.error.code}]${event.error.hint === null ? "" : ` hint: ${event.error.hint}`}`;
  return `${event.createdAt}  ${type}  ${text}`.trimEnd();
}
