export * from "./generated/prisma/client.js";
export { auditLog, createPrismaClient, jobStatements, poolOf, type DatabaseOptions } from "./createPrismaClient.js";
export { AuditLog, type AuditEntry } from "./hotPath/AuditLog.js";
export { JobStatements, type SubmitJob } from "./hotPath/JobStatements.js";
export { isUniqueViolation } from "./isUniqueViolation.js";
export type { Db, Tx } from "./tx.js";
export * from "./jobStore.js";
export * from "./vmTransition.js";
export { isDatabaseUnavailable } from "./availability.js";
