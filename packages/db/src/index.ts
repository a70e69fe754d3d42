export * from "./generated/prisma/client.js";
export { createPrismaClient } from "./createPrismaClient.js";
export { isUniqueViolation } from "./isUniqueViolation.js";
export type { Db, Tx } from "./tx.js";
export * from "./jobStore.js";
export { jobTypeOf, toDbJobType } from "./jobType.js";
export * from "./vmTransition.js";
export { isDatabaseUnavailable } from "./availability.js";
