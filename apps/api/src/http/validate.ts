import type { Response } from "express";
import type { z } from "zod";
import { IaasError, type JobAccepted } from "@iaas/contracts";
import { jobTypeOf, type Job } from "@iaas/db";
import { toJobDto } from "../services/dto.js";
import type { Submitted } from "../services/JobSubmitter.js";

/** A VALIDATION_FAILED error that also lists each bad field. */
export class RequestValidationError extends IaasError {
  constructor(
    what: string,
    readonly errors: { path: string; message: string }[],
  ) {
    super("VALIDATION_FAILED", `invalid ${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, {
      hint: "fix the fields named above and send the request again",
    });
  }
}

export function validate<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    throw new RequestValidationError(
      what,
      parsed.error.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message })),
    );
  }
  return parsed.data;
}

/** Answers `202 Accepted` with `Location: /v1/jobs/<id>` for a submitted job. */
export function sendAccepted<E>(res: Response, submitted: Submitted<E>, body: Omit<JobAccepted, "job">): void {
  const job: Job = submitted.job;
  res.status(202).location(`/v1/jobs/${job.id}`);
  (res.locals as { jobType?: string }).jobType = jobTypeOf(job);
  if (submitted.replayed) res.setHeader("Idempotent-Replayed", "true");
  res.json({ job: toJobDto(job), ...body } satisfies JobAccepted);
}

export function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined || header === "") return undefined;
  if (header.length > 200) {
    throw new IaasError("VALIDATION_FAILED", "Idempotency-Key is longer than 200 characters", { hint: "use a UUID as the key" });
  }
  return header;
}
