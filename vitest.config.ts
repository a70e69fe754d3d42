import { defineConfig } from "vitest/config";

// One run for every test: unit tests beside the code (*.test.ts), integration tests against the
// real Postgres/Redis (*.int.test.ts) and end-to-end tests with real processes and QEMU (tests/e2e).
export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "tests/**/*.test.ts"],
    // The fault suite runs on its own (`npm run test:faults`, vitest.faults.config.ts).
    exclude: ["**/node_modules/**", "**/dist/**", "tests/faults/**"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
