import os from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type TestApi } from "../testing/testApi.js";
import { setUpFixtures, type Fixtures } from "./fixtures.js";
import { seedFrom } from "./prng.js";
import { describeFinding, findingsTable, leakPatterns, mib, table } from "./report.js";
import { runFuzz } from "./runner.js";
import { Transport } from "./transport.js";

// Generated requests against the real API (in-process, token auth, real Postgres and Redis, no
// worker): every route with schema-derived valid and mutated bodies, odd parameters, queries and
// headers, path tricks, wrong methods, bad tokens and malformed HTTP over raw sockets. No answer
// may be a 5xx, hang, drop a well-formed request or show a stack trace or a server path, no request
// may block the event loop for seconds, the API must still be healthy after, and its heap must stay
// bounded.
//
//   IAAS_FUZZ_REQUESTS  cases to send (default 2000; `npm run test:fuzz` sends 10000)
//   IAAS_FUZZ_SEED      the seed to replay (printed by every run)
//   IAAS_FUZZ_CASE      send only this case of the seed (printed with each finding)
//   IAAS_FUZZ_MAX_HEAP_GROWTH_MB  bound on heapUsed growth after GC (default 64)

const count = positiveInt("IAAS_FUZZ_REQUESTS", 2000);
const seed = seedFrom(process.env.IAAS_FUZZ_SEED);
const only = process.env.IAAS_FUZZ_CASE ? positiveInt("IAAS_FUZZ_CASE", 0) : undefined;
const maxHeapGrowth = positiveInt("IAAS_FUZZ_MAX_HEAP_GROWTH_MB", 64) * 1024 * 1024;
/** Longest the event loop may be blocked (GC pauses, the gzip bomb's inflation and the like stay far below). */
const maxStallMs = 3_000;

function positiveInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got '${text}'`);
  return value;
}

describe("fuzz: generated requests against the API", () => {
  let api: TestApi;
  let fixtures: Fixtures;
  let transport: Transport;

  beforeAll(async () => {
    api = await startTestApi({ auth: "token" });
    fixtures = await setUpFixtures(api);
    transport = new Transport({ base: new URL(api.base), tokens: fixtures.tokens, streamTimeoutMs: 1_500, timeoutMs: 15_000, maxSockets: 16 });
  }, 120_000);

  afterAll(async () => {
    transport?.close();
    await api?.close();
  });

  const healthy = async () => {
    try {
      const res = await fetch(`${api.base}/healthz`, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  };

  it(
    `answers ${only !== undefined ? `case ${only}` : `${count} requests`} with no 5xx, hang, dropped connection or leaked internals, and stays healthy with a bounded heap`,
    async () => {
      console.log(`fuzz: seed ${seed} (replay: IAAS_FUZZ_SEED=${seed}), ${only !== undefined ? `case ${only} only` : `${count} requests`}`);
      const result = await runFuzz({
        seed,
        count,
        only,
        concurrency: 16,
        roundSize: 100,
        transport,
        fixtures,
        leaks: leakPatterns([api.store, os.tmpdir() + "/iaas-", process.cwd()]),
        healthy,
      });
      const { tally, memory } = result;
      const growth = memory.final.heapUsed - memory.baseline.heapUsed;
      const peakRss = Math.max(...memory.samples.map((s) => s.rss));
      console.log(
        [
          `fuzz: ${tally.total} requests in ${(result.ms / 1000).toFixed(1)} s (seed ${seed})`,
          tally.statusTable(),
          "",
          tally.kindTable(),
          "",
          table(
            ["memory after GC", "heapUsed", "rss", "external"],
            [
              ["start", mib(memory.samples[0]?.heapUsed ?? 0), mib(memory.samples[0]?.rss ?? 0), mib(memory.samples[0]?.external ?? 0)],
              ["baseline (after round 1)", mib(memory.baseline.heapUsed), mib(memory.baseline.rss), mib(memory.baseline.external)],
              ["end", mib(memory.final.heapUsed), mib(memory.final.rss), mib(memory.final.external)],
            ],
          ),
          `heapUsed growth after warm-up: ${mib(growth)} (bound ${mib(maxHeapGrowth)}); peak RSS after GC ${mib(peakRss)}`,
          `event loop stalls over 1 s: ${result.stalls.map((st) => `${Math.round(st.ms)} ms while ${st.inFlight.join(" | ") || "nothing was in flight"}`).join("; ") || "none"}`,
          `slowest answers: ${result.slowest.map((s) => `${Math.round(s.ms)} ms ${s.summary}`).join("; ")}`,
          `routes never answered 2xx: ${tally.routesWithout2xx().join(", ") || "none"}`,
        ].join("\n"),
      );
      const summary = result.findingCount === 0 ? "" : `${result.findingCount} findings${result.findingCount > result.findings.length ? ` (the first ${result.findings.length} kept)` : ""}:\n${findingsTable(result.findings)}`;
      if (result.findingCount > 0) console.log(`fuzz: ${summary}\n\n${result.findings.map((f) => describeFinding(f, seed)).join("\n")}`);

      expect(tally.total).toBe(only !== undefined ? 1 : count);
      expect(result.findingCount, `seed ${seed}: ${summary}`).toBe(0);
      expect(result.unhealthyAfterRounds).toEqual([]);
      // A request that blocks the event loop for seconds blocks every other client too.
      expect(result.stalls.filter((st) => st.ms > maxStallMs).map((st) => `${Math.round(st.ms)} ms: ${st.inFlight.join(" | ")}`)).toEqual([]);
      expect(await healthy()).toBe(true);
      expect(growth).toBeLessThan(maxHeapGrowth);
    },
    120_000 + count * 60,
  );
});
