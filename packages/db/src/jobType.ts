import type { JobType } from "@iaas/contracts";
import type { JobType as DbJobType } from "./generated/prisma/client.js";

/**
 * Job types are a Postgres enum (`"JobType"`) whose labels are the names users see (`vm.create`);
 * Prisma cannot spell a `.` in an enum value, so its client calls them `vm_create`. These convert
 * at the Prisma boundary; raw SQL sees the dotted labels (cast parameters with `::"JobType"`).
 */
export function toDbJobType(type: JobType): DbJobType {
  return type.replaceAll(".", "_") as DbJobType;
}

/** The contracts' job type of a job row, read through Prisma (`vm_create`) or raw SQL (`vm.create`). */
export function jobTypeOf(job: { type: DbJobType | JobType }): JobType {
  return job.type.replaceAll("_", ".") as JobType;
}
