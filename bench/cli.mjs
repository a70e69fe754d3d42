#!/usr/bin/env node
// `npm run bench:cli`: how fast the `iaas` CLI starts, against `node -e 0` in the same run.
// Medians of BENCH_RUNS (15) wall times, and the mean CPU time (user + system), of:
//   node -e 0                       the floor: starting node at all
//   iaas --version                  the CLI's start-up (bin/iaas.mjs → the esbuild bundle)
//   node dist/main.js --version     the same from tsc's many files (what bundling saves)
//   iaas vm list                    a real command against an API started here (throw-away database)
// The runs are interleaved so that a busy machine slows every command alike. Goal: --version ≤ 1.5×.
// Env: DATABASE_URL, REDIS_URL, BENCH_RUNS, BENCH_SKIP_API=1 (no API, no `vm list`).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { median, table } from "./lib/stats.mjs";
import { intEnv, REDIS_URL } from "./lib/run.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNS = intEnv("BENCH_RUNS", 15);
const bin = path.join(root, "apps/cli/bin/iaas.mjs");
const tscMain = path.join(root, "apps/cli/dist/main.js");

/** CPU seconds used so far by this process's waited-for children (utime + stime from /proc). */
function childCpuSeconds() {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100; // cutime, cstime (clock ticks; 100 Hz)
}

function runOnce(argv, env) {
  const cpu0 = childCpuSeconds();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${argv.join(" ")} exited ${r.status}: ${r.stderr.toString().trim()}`);
  return { wall, cpu: (childCpuSeconds() - cpu0) * 1000 };
}

async function startApi() {
  const { createTestDatabase } = await import("@iaas/db/testing");
  const { freePort, startChild } = await import("./lib/proc.mjs");
  const database = await createTestDatabase();
  const port = await freePort();
  const api = startChild("api", path.join(root, "apps/api/dist/main.js"), {
    DATABASE_URL: database.url, REDIS_URL, IAAS_QUEUE_PREFIX: `bench-cli-${port}`, IAAS_IMAGE_STORE: `/tmp/bench-cli-${port}`, IAAS_API_PORT: String(port), IAAS_AUTH: "none", LOG_LEVEL: "warn",
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, stop: async () => { await api.stop(); await database.drop(); } };
}

const cases = [
  { name: "node -e 0", argv: ["-e", "0"] },
  { name: "iaas --version", argv: [bin, "--version"] },
  { name: "node dist/main.js --version (tsc output, unbundled)", argv: [tscMain, "--version"] },
];
let api = null;
if (process.env.BENCH_SKIP_API !== "1") {
  api = await startApi();
  cases.push({ name: "iaas vm list (API here)", argv: [bin, "vm", "list"], env: { IAAS_URL: api.url, IAAS_CONFIG: "", IAAS_TOKEN: "" } });
}
try {
  for (const c of cases) runOnce(c.argv, c.env); // warm the page cache
  const samples = new Map(cases.map((c) => [c.name, []]));
  for (let i = 0; i < RUNS; i++) for (const c of cases) samples.get(c.name).push(runOnce(c.argv, c.env));
  const floor = median(samples.get("node -e 0").map((s) => s.wall));
  const floorCpu = samples.get("node -e 0").reduce((s, x) => s + x.cpu, 0) / RUNS;
  const rows = cases.map((c) => {
    const wall = median(samples.get(c.name).map((s) => s.wall));
    const cpu = samples.get(c.name).reduce((s, x) => s + x.cpu, 0) / RUNS;
    return [c.name, wall.toFixed(1), `${(wall / floor).toFixed(2)}×`, cpu.toFixed(0), `${(cpu / floorCpu).toFixed(2)}×`];
  });
  console.log(`CLI start-up, ${RUNS} interleaved runs each (median wall ms; mean CPU ms, user + system)\n`);
  console.log(table(["command", "wall ms", "vs node", "CPU ms", "vs node"], rows));
  const version = median(samples.get("iaas --version").map((s) => s.wall)) / floor;
  console.log(`\niaas --version: ${version.toFixed(2)}× node -e 0 (goal ≤ 1.5×): ${version <= 1.5 ? "met" : "NOT met"}`);
} finally {
  await api?.stop();
}
