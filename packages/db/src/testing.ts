// Helpers for integration tests (`@iaas/db/testing`): a fresh migrated database per test file and
// a Redis URL. They use DATABASE_URL / REDIS_URL when set, otherwise start containers.
export { createTestDatabase, type TestDatabase } from "./testing/createTestDatabase.js";
export { applyMigrations, migrationsDir } from "./testing/applyMigrations.js";
export { testRedisUrl } from "./testing/testRedisUrl.js";
