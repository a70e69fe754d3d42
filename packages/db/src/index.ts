export * from "./generated/prisma/client.js";
export { createPrismaClient } from "./createPrismaClient.js";
export { isUniqueViolation } from "./isUniqueViolation.js";
export type { Db, Tx } from "./tx.js";
export * from "./jobStore.js";
export * from "./vmTransition.js";
export { isDatabaseUnavailable } from "./availability.js";
export { JOB_EVENTS_CHANNEL, JobEventListener, parseJobEventNotice, type JobEventNotice, type JobEventListenerOptions } from "./JobEventListener.js";
