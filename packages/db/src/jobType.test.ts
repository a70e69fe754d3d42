import { describe, expect, it } from "vitest";
import { JobType } from "@iaas/contracts";
import { JobType as DbJobType } from "./generated/prisma/enums.js";
import { jobTypeOf, toDbJobType } from "./jobType.js";

describe("job types between the contracts and Prisma", () => {
  it("maps every job type of the contracts to a value of the Prisma enum and back", () => {
    for (const type of JobType.options) {
      const db = toDbJobType(type);
      expect(Object.values(DbJobType)).toContain(db);
      expect(jobTypeOf({ type: db })).toBe(type);
    }
    expect(Object.values(DbJobType)).toHaveLength(JobType.options.length);
  });
});
