import { defineConfig } from "vitest/config";

// `npm test` runs every project: unit tests beside the code (*.test.ts, no services needed),
// integration tests against the real Postgres/Redis (*.int.test.ts) and end-to-end tests with real
// processes and QEMU (tests/e2e). `npm run test:unit` runs the first alone (`--project unit`).
// The fault suite runs on its own (`npm run test:faults`, vitest.faults.config.ts).
const ignored = ["**/node_modules/**", "**/dist/**"];
const beside = ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"];

export default defineConfig({
  test: {
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "unit", include: beside, exclude: [...ignored, "**/*.int.test.ts"] } },
      { extends: true, test: { name: "integration", include: beside.map((g) => g.replace(/\.test\.ts$/, ".int.test.ts")), exclude: ignored } },
      { extends: true, test: { name: "e2e", include: ["tests/e2e/**/*.test.ts"], exclude: ignored } },
    ],
  },
});
