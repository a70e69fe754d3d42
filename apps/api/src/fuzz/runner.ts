import { makeCase, type FuzzCase } from "./cases.js";
import type { Fixtures } from "./fixtures.js";
import { Rng } from "./prng.js";
import { check, memoryAfterGc, Tally, type Finding, type MemorySample } from "./report.js";
import type { Transport } from "./transport.js";

export interface FuzzRunOptions {
  seed: number;
  /** Cases to send (case indexes 0 … count-1). */
  count: number;
  /** Just this case (IAAS_FUZZ_CASE), to reproduce a finding. */
  only?: number | undefined;
  /** Requests in flight at once. */
  concurrency: number;
  /** Cases between two fixture restores (and memory samples). */
  roundSize: number;
  transport: Transport;
  fixtures: Fixtures;
  leaks: readonly [string, RegExp][];
  /** Whether the API still answers GET /healthz 200 (checked after every round). */
  healthy: () => Promise<boolean>;
}

export interface FuzzResult {
  tally: Tally;
  /** The first findings (at most MAX_KEPT); `findingCount` has them all. */
  findings: Finding[];
  findingCount: number;
  /** The slowest answers that were not cut-off streams: where the API spends its time. */
  slowest: { ms: number; summary: string }[];
  /**
   * Times the event loop (the API's and the fuzzer's: one process) was blocked for more than
   * STALL_MS, with the cases in flight then: a request that blocks it is a denial of service.
   */
  stalls: { ms: number; inFlight: string[] }[];
  /** Rounds after which /healthz did not answer 200. */
  unhealthyAfterRounds: number[];
  memory: { baseline: MemorySample; final: MemorySample; samples: MemorySample[] };
  ms: number;
}

const MAX_KEPT = 200;
const SLOWEST_KEPT = 5;
const STALL_MS = 1_000;
const TICK_MS = 100;

const summaryOf = (c: FuzzCase) => `#${c.index} ${c.kind} (${c.note}) ${c.method} ${c.path.slice(0, 60)}`;

/**
 * Sends the cases in rounds of `roundSize`, `concurrency` at a time; after each round, with nothing
 * in flight, restores the fixtures and samples memory after a full GC. The baseline is taken after
 * the first round (modules loaded, pools and caches warm), so the growth is what the rest cost.
 */
export async function runFuzz(opts: FuzzRunOptions): Promise<FuzzResult> {
  const started = performance.now();
  const tally = new Tally();
  const findings: Finding[] = [];
  let findingCount = 0;
  const unhealthyAfterRounds: number[] = [];
  const samples: MemorySample[] = [];
  const slowest: { ms: number; summary: string }[] = [];
  const stalls: { ms: number; inFlight: string[] }[] = [];
  const inFlight = new Map<number, FuzzCase>();
  let lastTick = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    const lag = now - lastTick - TICK_MS;
    if (lag > STALL_MS && stalls.length < MAX_KEPT) stalls.push({ ms: lag, inFlight: [...inFlight.values()].map(summaryOf) });
    lastTick = now;
  }, TICK_MS);
  const indexes = opts.only !== undefined ? [opts.only] : Array.from({ length: opts.count }, (_v, i) => i);
  const beat = setInterval(() => void opts.fixtures.heartbeat().catch(() => undefined), 5_000);

  try {
    samples.push(await memoryAfterGc());
    for (let from = 0, round = 1; from < indexes.length; from += opts.roundSize, round++) {
      const batch = indexes.slice(from, from + opts.roundSize);
      let next = 0;
      const worker = async () => {
        while (next < batch.length) {
          const index = batch[next++] ?? 0;
          const c = makeCase(Rng.forCase(opts.seed, index), index);
          inFlight.set(index, c);
          const outcome = await opts.transport.send(c);
          inFlight.delete(index);
          tally.add(c, outcome);
          if (!(c.streaming && outcome.timedOut) && (slowest.length < SLOWEST_KEPT || outcome.ms > (slowest.at(-1)?.ms ?? 0))) {
            slowest.push({ ms: outcome.ms, summary: `${summaryOf(c)} → ${outcome.status ?? "no status"}` });
            slowest.sort((a, b) => b.ms - a.ms).splice(SLOWEST_KEPT);
          }
          for (const f of check(c, outcome, opts.leaks)) {
            findingCount++;
            if (findings.length < MAX_KEPT) findings.push({ ...f, outcome: { ...f.outcome, text: f.outcome.text.slice(0, 2000) } });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(opts.concurrency, batch.length) }, worker));
      // Streams cut off by the client end on the server within a poll (200 ms).
      await new Promise((r) => setTimeout(r, 300));
      if (!(await opts.healthy())) unhealthyAfterRounds.push(round);
      await opts.fixtures.restore();
      samples.push(await memoryAfterGc());
    }
  } finally {
    clearInterval(beat);
    clearInterval(ticker);
  }
  const baseline = samples[Math.min(1, samples.length - 1)] ?? (await memoryAfterGc());
  const final = samples.at(-1) ?? baseline;
  return { tally, findings, findingCount, slowest, stalls, unhealthyAfterRounds, memory: { baseline, final, samples }, ms: performance.now() - started };
}
