import { defineConfig } from "vitest/config";

// `npm run test:faults` only: the fault suite (tests/faults) runs its own PostgreSQL, Redis, two
// APIs and two workers for a few minutes, so `npm test` leaves it out.
export default defineConfig({
  test: {
    include: ["tests/faults/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    pool: "forks",
    maxWorkers: 1,
    testTimeout: 15 * 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
