#!/usr/bin/env node
// `npm run bench:jobs`: how much the job pipeline (REST → Postgres outbox → BullMQ → worker →
// Postgres) costs on top of raw BullMQ, measured in one run on the same Redis.
// Env: DATABASE_URL, REDIS_URL, BENCH_LATENCY_N (200), BENCH_THROUGHPUT_N (2000), BENCH_WARMUP (10),
// BENCH_CLIENTS (32), BENCH_CPU_PROF (a directory: profile the API and the worker and print where
// their CPU went).
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pipelineLatency, pipelineThroughput } from "./lib/pipeline.mjs";
import { createStack } from "./lib/stack.mjs";
import { rawLatency, rawThroughput } from "./lib/raw.mjs";
import { ms, rate, summarize, table } from "./lib/stats.mjs";
import { formatCpuProfile, summarizeCpuProfile } from "./lib/cpuProfile.mjs";
import { cleanUpOnSignal, intEnv, REDIS_URL, runBench } from "./lib/run.mjs";

const N = intEnv("BENCH_LATENCY_N", 200);
const M = intEnv("BENCH_THROUGHPUT_N", 2000);
const WARMUP = intEnv("BENCH_WARMUP", 10);
const CLIENTS = intEnv("BENCH_CLIENTS", 32);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const stack = createStack({ root, redisUrl: REDIS_URL, hostId: "bench-host", clients: CLIENTS });
const interrupted = cleanUpOnSignal(stack);

async function main() {
  loadBefore = os.loadavg()[0];
  log("starting: throw-away database, API, worker…");
  const { api, db, rawPrefix } = await stack.start();
  const run = async () => {
    log(`raw BullMQ latency: ${WARMUP} warm-up + ${N} sequential jobs…`);
    const rawLat = summarize(await rawLatency({ redisUrl: REDIS_URL, prefix: rawPrefix, n: N, warmup: WARMUP }));
    log(`raw BullMQ throughput: ${M} jobs (addBulk, concurrency 50)…`);
    const rawTp = await rawThroughput({ redisUrl: REDIS_URL, prefix: rawPrefix, m: M });
    log(`pipeline latency: ${WARMUP} warm-up + ${N} sequential POST /v1/bench/noop…`);
    const { latency, breakdown } = await pipelineLatency({ api, db, n: N, warmup: WARMUP });
    const pipeLat = summarize(latency);
    const split = { written: summarize(breakdown.written), delivered: summarize(breakdown.delivered) };
    log(`pipeline throughput: ${M} jobs from ${CLIENTS} concurrent REST clients…`);
    const pipeTp = await pipelineThroughput({ api, db, m: M, clients: CLIENTS, firstN: WARMUP + N });
    return { rawLat, rawTp, pipeLat, pipeTp, split };
  };
  report(await Promise.race([run(), stack.crashed]));
}

let loadBefore;
const t00 = Date.now();
function log(msg) {
  process.stderr.write(`bench [${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);
}

function report({ rawLat, rawTp, pipeLat, pipeTp, split }) {
  const cpus = os.cpus();
  const out = [];
  out.push("");
  out.push(`Job pipeline benchmark — ${cpus.length} cores (${cpus[0]?.model.trim() ?? "?"}), Node ${process.version}, ${os.platform()} ${os.release()}`);
  out.push(`1-min load average: ${loadBefore.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (other processes on this machine skew results)`);
  out.push(`Latency: N=${N} sequential jobs (+${WARMUP} warm-up, not counted) · Throughput: M=${M} jobs · worker concurrency 50 · same Redis (${REDIS_URL})`);
  out.push("");
  out.push("Latency, submit → job starts (ms)");
  out.push(table(
    ["", "p50", "p99", "mean", "max"],
    [
      ["raw BullMQ   (queue.add → processor's first line)", ms(rawLat.p50), ms(rawLat.p99), ms(rawLat.mean), ms(rawLat.max)],
      ["pipeline     (POST /v1/bench/noop → Job.startedAt)", ms(pipeLat.p50), ms(pipeLat.p99), ms(pipeLat.mean), ms(pipeLat.max)],
      ["overhead     (pipeline − raw)", ms(pipeLat.p50 - rawLat.p50), ms(pipeLat.p99 - rawLat.p99), ms(pipeLat.mean - rawLat.mean), ""],
    ],
  ));
  out.push("");
  out.push("Where the pipeline's latency goes (ms; Postgres timestamps, ±1 ms)");
  out.push(table(
    ["", "p50", "p99", "mean", "max"],
    [
      ["POST → submit statement ran  (HTTP, API, one read, Job.createdAt)", ms(split.written.p50), ms(split.written.p99), ms(split.written.mean), ms(split.written.max)],
      ["submit → start statement ran (enqueue, BullMQ delivery, Job.startedAt)", ms(split.delivered.p50), ms(split.delivered.p99), ms(split.delivered.mean), ms(split.delivered.max)],
    ],
  ));
  out.push("");
  out.push("Throughput (jobs/s)");
  out.push(table(
    ["", "jobs/s", "seconds"],
    [
      ["raw BullMQ   (addBulk → last completion)", rate(rawTp.jobsPerSecond), rawTp.seconds.toFixed(2)],
      [`pipeline     (${CLIENTS} REST clients → all succeeded in Postgres)`, rate(pipeTp.jobsPerSecond), pipeTp.seconds.toFixed(2)],
      ["ratio        (pipeline / raw)", `${(pipeTp.jobsPerSecond / rawTp.jobsPerSecond).toFixed(3)}×`, `(${((100 * pipeTp.jobsPerSecond) / rawTp.jobsPerSecond).toFixed(1)} %)`],
    ],
  ));
  out.push("");
  out.push("Notes:");
  out.push(`- Pipeline latency compares Date.now() in this process with Job.startedAt, set by the worker's clock (same machine)`);
  out.push(`  and stored by Postgres with millisecond precision: each pipeline sample is ±1 ms. Raw latency uses`);
  out.push(`  performance.timeOrigin + performance.now() in one process (sub-ms).`);
  out.push(`- Job.startedAt is taken by the worker's start statement (the first thing it does with a delivery), so pipeline`);
  out.push(`  latency covers HTTP + the submit statement + enqueue + delivery + the start statement.`);
  out.push(`- Pipeline throughput ends at the first 100 ms count poll that sees all ${M} succeeded (submitting took ${pipeTp.submitSeconds?.toFixed(2) ?? "?"} s).`);
  process.stdout.write(out.join("\n") + "\n");
}

const code = await runBench("jobs", stack, interrupted, main);
if (process.env.BENCH_CPU_PROF && code === 0) {
  const lines = ["", `CPU profiles (node --cpu-prof, whole run, in ${process.env.BENCH_CPU_PROF})`];
  for (const name of ["api", "worker"]) {
    const file = path.join(process.env.BENCH_CPU_PROF, `${name}.cpuprofile`);
    lines.push(...(await summarizeCpuProfile(file).then((s) => formatCpuProfile(name, s), (err) => [`${name}: no profile (${err.message})`])));
  }
  process.stdout.write(lines.join("\n") + "\n");
}
process.exit(code);
