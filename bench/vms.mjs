#!/usr/bin/env node
// `npm run bench:vms`: how long `vm create --start` takes until QEMU runs, through the product
// (REST → Postgres → BullMQ → worker → qemu-img overlay → QEMU up on QMP), against a raw script
// that runs `qemu-img create -b` and `qemu-system-x86_64 -daemonize` with the same arguments the
// worker used — one VM at a time, then 20 at once against the raw script run 20 times in parallel.
// The guest is the boot-sector test guest (halts after one line): no NICs (--no-network).
// Env: DATABASE_URL, REDIS_URL, BENCH_VM_REPEAT (5), BENCH_VM_PARALLEL (20), IAAS_GUEST_DIR.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cliRunner } from "./lib/cli.mjs";
import { createStack } from "./lib/stack.mjs";
import { median, percentile, table } from "./lib/stats.mjs";
import { cleanUpOnSignal, intEnv, REDIS_URL, runBench } from "./lib/run.mjs";

const REPEAT = intEnv("BENCH_VM_REPEAT", 5);
const PARALLEL = intEnv("BENCH_VM_PARALLEL", 20);
const MEMORY = "64M";
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GUEST = path.join(process.env.IAAS_GUEST_DIR ?? path.join(root, ".cache/guests"), "bootsector.raw");
// QEMU's sandbox as the raw script runs it: the worker's (QEMU_SANDBOX) forbids the fork and
// setsid of -daemonize (the worker detaches QEMU itself instead), so the raw script allows them.
const RAW_SANDBOX = "on,obsolete=deny,resourcecontrol=deny";

if (!existsSync(GUEST)) {
  process.stderr.write(`bench:vms: the test guest ${GUEST} is missing.\nBuild it with: node scripts/guest/build-bootsector.mjs\n`);
  process.exit(1);
}

const stack = createStack({
  root,
  redisUrl: REDIS_URL,
  hostId: "bench-vm-host",
  clients: PARALLEL + 2,
  // No bridges (user-mode networking, as tests/e2e/harness.ts); the VMs have no NIC anyway. The
  // 20 parallel VMs need more vCPUs than 2 cores × the default ratio of 4: the guest halts at once.
  workerEnv: () => ({ IAAS_NETWORK_MODE: "user", IAAS_CPU_ALLOCATION_RATIO: "32" }),
});
const clis = cliRunner(root); // running `iaas` processes are killed on cleanup
const killClis = clis.killAll;
const cli = clis.run;
const rawPids = new Set();
const killRaw = () => rawPids.forEach((pid) => kill(pid));
function kill(pid) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}
const interrupted = cleanUpOnSignal(stack, () => {
  killClis();
  killRaw();
});

const t00 = Date.now();
function log(msg) {
  process.stderr.write(`bench [${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);
}

/** Runs argv (no shell) to its exit; rejects with its stderr on a non-zero exit. */
function run(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-2000)));
    child.once("error", (err) => reject(new Error(`${argv[0]}: ${err.message}`)));
    child.once("close", (code, signal) => (code === 0 ? resolve() : reject(new Error(`${argv.slice(0, 3).join(" ")} … exited with ${code ?? signal}: ${stderr.trim()}`))));
  });
}

/**
 * Through the product: POST /v1/vms with start=true, then the job's end. "QEMU runs" is the job's
 * finishedAt (the worker finishes vm.create once QEMU answers on QMP; Postgres clock, ms), minus
 * Date.now() just before the POST (same machine). Also the wall time until GET …/wait answered.
 */
async function productCreate(s, name) {
  const t0 = Date.now();
  const res = await s.api.post("/v1/vms", { name, image: "boot", memory: MEMORY, cpus: 1, networks: [], start: true });
  if (res.status !== 202) throw new Error(`POST /v1/vms ${name} answered ${res.status}: ${res.text.slice(0, 300)}`);
  const jobId = res.json.job.id;
  const waited = await s.api.get(`/v1/jobs/${jobId}/wait?timeout=120`);
  const wall = Date.now() - t0;
  if (waited.json?.state !== "succeeded") throw new Error(`vm.create of ${name} ended ${waited.json?.state}: ${JSON.stringify(waited.json?.error ?? waited.text).slice(0, 300)}`);
  const job = await s.db.job.findUniqueOrThrow({ where: { id: jobId }, include: { events: { orderBy: { seq: "asc" } } } });
  // Where the time went: each event's offset from the POST (Postgres clock, ms), by phase.
  const steps = job.events.map((e) => [e.type === "progress" ? `progress: ${e.progress?.phase ?? "?"}` : `state: ${e.state}`, e.createdAt.getTime() - t0]);
  return { toRunning: job.finishedAt.getTime() - t0, wall, vmId: res.json.vm.id, steps };
}

/** QEMU's own argv (program first) of a running VM, from /proc. */
async function qemuArgvOf(s, vmId) {
  const vm = await s.db.vm.findUniqueOrThrow({ where: { id: vmId } });
  if (!vm.pid) throw new Error(`VM ${vm.name} has no pid`);
  return { vm, argv: readFileSync(`/proc/${vm.pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "") };
}

/**
 * The raw script's argv for one VM: the worker's QEMU argv with the VM's directory and id
 * replaced by the raw run's, -daemonize added and the sandbox relaxed to allow it.
 */
function rawArgv(template, { vmDir, vmId }, dir) {
  const id = randomUUID();
  const argv = template.argv.map((a) => a.replaceAll(vmDir, dir).replaceAll(vmId, id));
  const sandbox = argv.indexOf("-sandbox");
  if (sandbox >= 0) argv[sandbox + 1] = RAW_SANDBOX;
  argv.push("-daemonize");
  const disk = template.disk.replaceAll(vmDir, dir);
  return { argv, disk, pidfile: argv[argv.indexOf("-pidfile") + 1] };
}

/** The raw script: `qemu-img create -b` then `qemu-system-x86_64 … -daemonize` (returns once QEMU is up). */
async function rawCreate(template, base, size, dir) {
  await mkdir(dir, { recursive: true });
  // Inputs other than the disk (a cloud-init seed, if the worker attached one) are copied first.
  for (const extra of template.inputs) await copyFile(extra, extra.replaceAll(template.vmDir, dir));
  const { argv, disk, pidfile } = rawArgv(template, template, dir);
  const t0 = performance.now();
  await run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", disk, String(size)]);
  await run(argv);
  const ms = performance.now() - t0;
  rawPids.add(Number((await readFile(pidfile, "utf8")).trim()));
  return ms;
}

async function main() {
  const loadBefore = os.loadavg()[0];
  log("starting: throw-away database, API, worker…");
  const s = await stack.start();
  stack.defer("kill the benchmark's QEMU processes", async () => {
    killRaw();
    for (const vm of await s.db.vm.findMany({ where: { pid: { not: null } } })) kill(vm.pid);
  });
  log("importing the boot-sector guest…");
  await cli(s, ["image", "import", "boot", "--file", GUEST, "--wait"], { timeoutMs: 120_000 });
  const image = await s.db.image.findFirstOrThrow({ where: { name: "boot" } });
  const base = path.join(s.imageStore, image.path);

  // Warm-up (not counted): one VM through the product, whose QEMU argv is the raw script's template.
  const first = await productCreate(s, "warm-0");
  const { vm, argv } = await qemuArgvOf(s, first.vmId);
  const driveArg = argv[argv.findIndex((a, i) => argv[i - 1] === "-drive" && a.includes("id=disk0"))];
  const disk = /file=((?:[^,]|,,)+)/.exec(driveArg)[1].replaceAll(",,", ",");
  const vmDir = path.dirname(disk);
  const inputs = argv
    .filter((a, i) => argv[i - 1] === "-drive" && !a.includes("id=disk0"))
    .map((a) => /file=((?:[^,]|,,)+)/.exec(a)?.[1].replaceAll(",,", ","))
    .filter((f) => f && f.startsWith(vmDir));
  const template = { argv, disk, vmDir, vmId: vm.id, inputs };
  const size = Number(vm.diskBytes);
  const rawRoot = path.join(s.tmp, "raw");
  await rawCreate(template, base, size, path.join(rawRoot, "warm"));

  log(`raw script's QEMU argv: ${rawArgv(template, template, path.join(rawRoot, "ID")).argv.join(" ")}`);
  const product1 = [];
  const steps1 = [];
  const wall1 = [];
  const raw1 = [];
  for (let i = 0; i < REPEAT; i++) {
    if (interrupted()) throw new Error("interrupted");
    log(`one VM at a time: ${i + 1}/${REPEAT}`);
    const p = await productCreate(s, `one-${i}`);
    product1.push(p.toRunning);
    steps1.push(p.steps);
    wall1.push(p.wall);
    raw1.push(await rawCreate(template, base, size, path.join(rawRoot, `one-${i}`)));
  }
  log(`one VM through the CLI: iaas vm create --start --wait (${REPEAT}×)…`);
  const cliWall = [];
  for (let i = 0; i < REPEAT; i++) {
    const r = await cli(s, ["vm", "create", `cli-${i}`, "--image", "boot", "--memory", MEMORY, "--no-network", "--start", "--wait"]);
    cliWall.push(r.seconds * 1000);
  }

  log(`${PARALLEL} VMs at once through the product…`);
  const tp = Date.now();
  const many = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => productCreate(s, `many-${i}`)));
  const productAllMs = Math.max(...many.map((m) => m.toRunning));
  const productAllWall = Date.now() - tp;
  log(`${PARALLEL} raw scripts at once…`);
  const tr = performance.now();
  const rawMany = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => rawCreate(template, base, size, path.join(rawRoot, `many-${i}`))));
  const rawAllMs = performance.now() - tr;

  report({ loadBefore, product1, steps1, wall1, raw1, cliWall, many: many.map((m) => m.toRunning), productAllMs, productAllWall, rawMany, rawAllMs });
}

function report(r) {
  const f = (v) => v.toFixed(0);
  const cpus = os.cpus();
  const out = [""];
  out.push(`VM start benchmark — ${cpus.length} cores (${cpus[0]?.model.trim() ?? "?"}), Node ${process.version}, boot-sector guest, ${MEMORY}, no NIC, TCG`);
  out.push(`1-min load average: ${r.loadBefore.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (other processes on this machine skew results)`);
  out.push("");
  out.push(`One VM at a time (${REPEAT} runs each, after one warm-up; ms, median)`);
  out.push(table(
    ["", "median", "min", "max"],
    [
      ["raw script   (qemu-img create -b + qemu-system -daemonize)", f(median(r.raw1)), f(Math.min(...r.raw1)), f(Math.max(...r.raw1))],
      ["product      (POST /v1/vms start=true → job finished, QEMU up)", f(median(r.product1)), f(Math.min(...r.product1)), f(Math.max(...r.product1))],
      ["product      (… → GET /v1/jobs/:id/wait answered)", f(median(r.wall1)), f(Math.min(...r.wall1)), f(Math.max(...r.wall1))],
      ["CLI          (iaas vm create --start --wait, whole process)", f(median(r.cliWall)), f(Math.min(...r.cliWall)), f(Math.max(...r.cliWall))],
      ["ratio        (product QEMU up / raw; goal ≤ 1.15×)", `${(median(r.product1) / median(r.raw1)).toFixed(2)}×`, "", ""],
    ],
  ));
  out.push("");
  out.push("Where the product's time goes, one VM at a time (each job event's time after the POST; ms, median)");
  const labels = [];
  const offsets = new Map();
  for (const run of r.steps1) {
    const seen = new Map();
    for (const [label, at] of run) {
      // A phase reported more than once counts its first report.
      if (seen.has(label)) continue;
      seen.set(label, at);
      if (!offsets.has(label)) {
        offsets.set(label, []);
        labels.push(label);
      }
      offsets.get(label).push(at);
    }
  }
  const rows = labels.map((label) => [label, median(offsets.get(label))]).sort((a, b) => a[1] - b[1]);
  out.push(table(["event", "at", "since previous"], rows.map(([label, at], i) => [label, f(at), f(at - (i === 0 ? 0 : rows[i - 1][1]))])));
  out.push("");
  out.push(`${PARALLEL} VMs at once (ms)`);
  out.push(table(
    ["", "all up", "p50 per VM", "max per VM"],
    [
      [`raw script × ${PARALLEL} in parallel`, f(r.rawAllMs), f(percentile(r.rawMany, 50)), f(Math.max(...r.rawMany))],
      [`product: ${PARALLEL} concurrent POST /v1/vms start=true`, f(r.productAllMs), f(percentile(r.many, 50)), f(Math.max(...r.many))],
      ["ratio        (product / raw)", `${(r.productAllMs / r.rawAllMs).toFixed(2)}×`, `${(percentile(r.many, 50) / percentile(r.rawMany, 50)).toFixed(2)}×`, ""],
    ],
  ));
  out.push("");
  out.push("Notes:");
  out.push("- The raw script runs the exact QEMU argv the worker used (read from /proc/PID/cmdline of the warm-up VM), with its own");
  out.push("  paths and uuid, plus -daemonize (its sandbox relaxed to allow the fork); it runs as root, the worker's QEMU as its QEMU user.");
  out.push(`- Product times end at Job.finishedAt (Postgres clock, ms precision), set once QEMU answered on QMP; the last of the`);
  out.push(`  ${PARALLEL} GET /v1/jobs/:id/wait answered ${f(r.productAllWall)} ms after the first POST.`);
  process.stdout.write(out.join("\n") + "\n");
}

const code = await runBench("vms", stack, interrupted, main, () => killClis());
process.exit(code);
