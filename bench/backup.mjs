#!/usr/bin/env node
// `npm run bench:backup`: live VM backups through the product (CLI → REST → job → worker → QMP
// drive-backup + sha256) against plain `qemu-img convert` of the same disk, and what an
// incremental backup after a 1 % change copies and costs — in one run, on one machine.
// Env: DATABASE_URL, REDIS_URL, BENCH_FILL_MIB (768: data the guest writes into its 1 GiB disk),
// BENCH_REPEAT (3: converts and incrementals), BENCH_FULLS (2: full backups).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cliRunner } from "./lib/cli.mjs";
import { GuestShell } from "./lib/guestShell.mjs";
import { killBaselines, syncDisks, timeCommand } from "./lib/imageLocal.mjs";
import { createStack } from "./lib/stack.mjs";
import { median, table } from "./lib/stats.mjs";
import { cleanUpOnSignal, intEnv, REDIS_URL, runBench } from "./lib/run.mjs";

const MiB = 1024 * 1024;
const DISK_MIB = 1024; // `--disk 1G`
const FILL_AT_MIB = 128; // the guest's data starts here (the image's own content lies below)
const FILL_MIB = intEnv("BENCH_FILL_MIB", 768);
const CHANGE_MIB = 10; // ≈ 1 % of the disk, rewritten before each incremental
const REPEAT = intEnv("BENCH_REPEAT", 3);
const FULLS = Math.min(intEnv("BENCH_FULLS", 2), REPEAT);
const PATTERN_MIB = 8; // the guest writes its data as copies of one random block of this size
if (FILL_MIB % PATTERN_MIB !== 0 || FILL_AT_MIB + FILL_MIB > DISK_MIB) throw new Error(`BENCH_FILL_MIB must be a multiple of ${PATTERN_MIB} and at most ${DISK_MIB - FILL_AT_MIB}`);
const VM = "bench-bk";
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GUEST_IMAGE = path.join(process.env.IAAS_GUEST_DIR ?? path.join(root, ".cache/guests"), "linux.qcow2");

if (!existsSync(GUEST_IMAGE)) {
  process.stderr.write(`bench:backup: the test guest image ${GUEST_IMAGE} is missing.\nBuild it with: bash scripts/guest/build-linux.sh --out ${path.dirname(GUEST_IMAGE)}\n`);
  process.exit(1);
}

const stack = createStack({
  root,
  redisUrl: REDIS_URL,
  hostId: "bench-bk-host",
  clients: 2,
  // Root namespace, QEMU user-mode networking: no bridges (as tests/e2e/harness.ts).
  workerEnv: () => ({ IAAS_NETWORK_MODE: "user" }),
});
const clis = cliRunner(root); // running `iaas` processes are killed on cleanup
const killClis = clis.killAll;
const interrupted = cleanUpOnSignal(stack, () => {
  killBaselines();
  killClis();
});

const t00 = Date.now();
function log(msg) {
  process.stderr.write(`bench [${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);
}
const checkpoint = () => {
  if (interrupted()) throw new Error("interrupted");
};

const cli = clis.run;
const cliJson = async (s, args, opts) => {
  const r = await cli(s, [...args, "-o", "json"], opts);
  return { json: JSON.parse(r.stdout), seconds: r.seconds };
};

/** A finished job's events (GET /v1/jobs/:id/events: SSE that ends once the job is final). */
async function jobEvents(s, jobId) {
  const res = await s.api.get(`/v1/jobs/${jobId}/events?after=0`);
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${jobId}/events answered ${res.status}`);
  const events = [];
  for (const block of res.text.split("\n\n")) {
    const data = block.split("\n").find((l) => l.startsWith("data: "));
    if (data && !block.includes("event: end")) events.push(JSON.parse(data.slice(6)));
  }
  return events;
}

/**
 * One `iaas vm backup` (live, the VM running): CLI wall time; job time from `iaas job show`
 * (startedAt → finishedAt, i.e. without the CLI's start and the queue); its copy and sha256 phases
 * from the job's progress events; and the job result's bytesCopied and sizeBytes.
 */
async function backup(s, incremental) {
  const { json: waited, seconds: wallSeconds } = await cliJson(s, ["vm", "backup", VM, ...(incremental ? ["--incremental"] : []), "--wait"]);
  const { json: job } = await cliJson(s, ["job", "show", waited.id]);
  const r = job.result;
  const want = incremental ? "incremental" : "full";
  if (job.state !== "succeeded" || r?.kind !== want || r.live !== true) throw new Error(`expected a live ${want} backup, got job ${job.id} ${job.state}: ${JSON.stringify(r ?? job.error)}`);
  const started = Date.parse(job.startedAt);
  const finished = Date.parse(job.finishedAt);
  const events = await jobEvents(s, job.id);
  const lastOf = (phase) => {
    const e = events.findLast((ev) => ev.progress?.phase === phase);
    return e ? Date.parse(e.createdAt) : null;
  };
  const copyEnd = lastOf("copy");
  const shaEnd = lastOf("checksum");
  return {
    jobId: job.id,
    backupId: r.backupId,
    wallSeconds,
    jobSeconds: (finished - started) / 1000,
    queueSeconds: (started - Date.parse(job.createdAt)) / 1000,
    copySeconds: copyEnd ? (copyEnd - started) / 1000 : null,
    checksumSeconds: copyEnd && shaEnd ? (shaEnd - copyEnd) / 1000 : null,
    bytesCopied: r.bytesCopied,
    sizeBytes: r.sizeBytes,
  };
}

async function main() {
  const loadBefore = os.loadavg()[0];
  log("starting: throw-away database, API, worker (IAAS_NETWORK_MODE=user)…");
  const s = await stack.start();
  const guard = (p) => Promise.race([p, s.crashed]);

  log(`importing ${GUEST_IMAGE} as image linux…`);
  await guard(cli(s, ["image", "import", "linux", "--file", GUEST_IMAGE, "--wait"]));
  log(`creating and starting VM ${VM} (1 GiB disk, no NIC: networking plays no part here)…`);
  let vmId;
  // Cleanups run in reverse: the VM goes (and any QEMU left is killed) before the worker and API stop.
  stack.defer(`kill QEMU of ${VM}`, async () => {
    if (!vmId) return;
    const pid = Number((await readFile(path.join(s.tmp, "data/vms", vmId, "qemu.pid"), "utf8").catch(() => "")).trim());
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone (the delete stopped it)
      }
    }
  });
  stack.defer(`delete VM ${VM}`, () => cli(s, ["vm", "delete", VM, "--wait"], { timeoutMs: 60_000 }).catch((err) => log(`vm delete: ${err.message}`)));
  await guard(cli(s, ["vm", "create", VM, "--image", "linux", "--memory", "192M", "--disk", "1G", "--no-network", "--start", "--wait"]));
  vmId = (await guard(cliJson(s, ["vm", "show", VM]))).json.id;
  const vmDir = path.join(s.tmp, "data/vms", vmId);
  const disk = path.join(vmDir, "disk.qcow2");
  if (!existsSync(disk)) throw new Error(`the VM's overlay ${disk} does not exist (the worker's layout changed?)`);

  log("waiting for the guest's shell on ttyS1…");
  const shell = await guard(GuestShell.connect(path.join(vmDir, "ttyS1.sock")));
  stack.defer("close the guest shell", () => shell.close());
  const guestRun = async (script, expect, timeoutMs) => {
    const r = await guard(shell.run(script, { timeoutMs }));
    if (r.code !== 0 || !r.output.includes(expect)) throw new Error(`guest: '${script.slice(0, 80)}…' answered ${r.code}: ${r.output.slice(-300)}`);
    return r.output;
  };

  // The data to back up: FILL_MIB MiB of random bytes (one random block, written again and again).
  log(`the guest writes ${FILL_MIB} MiB of random data to /dev/vda at ${FILL_AT_MIB} MiB…`);
  const f0 = performance.now();
  const copies = FILL_MIB / PATTERN_MIB;
  await guestRun(
    `dd if=/dev/urandom of=/tmp/pat bs=1M count=${PATTERN_MIB} 2>/dev/null && i=0 && while [ $i -lt ${copies} ]; do ` +
      `dd if=/tmp/pat of=/dev/vda bs=1M seek=$((${FILL_AT_MIB}+i*${PATTERN_MIB})) conv=notrunc,fsync 2>/dev/null || break; i=$((i+1)); done; ` +
      `rm -f /tmp/pat; echo "filled $i"`,
    `filled ${copies}`,
    240_000,
  );
  const fillSeconds = (performance.now() - f0) / 1000;
  log(`filled in ${fillSeconds.toFixed(1)} s; overlay is ${((await stat(disk)).size / MiB).toFixed(0)} MiB`);

  const outDir = path.join(s.tmp, "baseline");
  await mkdir(outDir, { recursive: true });
  const res = { full: [], convert: [], incremental: [] };

  // Raw baseline: the same disk copied by plain qemu-img (-U: the running VM holds its lock).
  const baseline = async (r) => {
    const dst = path.join(outDir, "raw.qcow2");
    syncDisks();
    res.convert.push(await guard(timeCommand(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-U", disk, dst])));
    log(`run ${r + 1}/${REPEAT} qemu-img convert: ${res.convert.at(-1).toFixed(2)} s (file ${((await stat(dst)).size / MiB).toFixed(0)} MiB)`);
    await rm(dst, { force: true });
  };
  // Live full backup (resets the change bitmap: the next incremental counts from here).
  const full = async (r) => {
    syncDisks();
    const b = await guard(backup(s, false));
    res.full.push(b);
    log(`run ${r + 1}/${FULLS} full backup: job ${b.jobSeconds.toFixed(2)} s (copy ${b.copySeconds?.toFixed(2)} s), CLI ${b.wallSeconds.toFixed(2)} s, copied ${(b.bytesCopied / MiB).toFixed(1)} MiB, file ${(b.sizeBytes / MiB).toFixed(1)} MiB`);
  };

  for (let r = 0; r < REPEAT; r++) {
    checkpoint();
    // Alternate which goes first, so neither always finds the other's pages in the cache.
    const steps = r < FULLS ? (r % 2 === 0 ? [full, baseline] : [baseline, full]) : [baseline];
    for (const step of steps) {
      checkpoint();
      await step(r);
    }
    // Incremental after a fresh 1 % change (CHANGE_MIB MiB of new random data, at a new offset);
    // it copies what changed since the previous backup (the full of this round, else the last incremental).
    checkpoint();
    const at = FILL_AT_MIB + ((72 + r * 200) % (DISK_MIB - FILL_AT_MIB - CHANGE_MIB));
    await guestRun(`dd if=/dev/urandom of=/dev/vda bs=1M count=${CHANGE_MIB} seek=${at} conv=notrunc,fsync 2>/dev/null && sync && echo changed`, "changed", 120_000);
    syncDisks();
    const b = await guard(backup(s, true));
    res.incremental.push(b);
    log(`run ${r + 1}/${REPEAT} incremental after ${CHANGE_MIB} MiB at ${at} MiB: job ${b.jobSeconds.toFixed(2)} s, CLI ${b.wallSeconds.toFixed(2)} s, copied ${(b.bytesCopied / MiB).toFixed(2)} MiB`);
  }
  return report({ res, fillSeconds, loadBefore });
}

function report({ res, fillSeconds, loadBefore }) {
  const med = (rows, key) => median(rows.map((x) => x[key]).filter((v) => v !== null));
  const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "n/a");
  const mib = (b) => b / MiB;
  const F = {
    jobSeconds: med(res.full, "jobSeconds"), wallSeconds: med(res.full, "wallSeconds"), copySeconds: med(res.full, "copySeconds"),
    checksumSeconds: med(res.full, "checksumSeconds"), bytesCopied: med(res.full, "bytesCopied"), sizeBytes: med(res.full, "sizeBytes"),
  };
  const I = {
    jobSeconds: med(res.incremental, "jobSeconds"), wallSeconds: med(res.incremental, "wallSeconds"), copySeconds: med(res.incremental, "copySeconds"),
    checksumSeconds: med(res.incremental, "checksumSeconds"), bytesCopied: med(res.incremental, "bytesCopied"), sizeBytes: med(res.incremental, "sizeBytes"),
  };
  const convert = median(res.convert);
  const ratios = {
    fullJobOverConvert: F.jobSeconds / convert,
    fullCopyOverConvert: F.copySeconds / convert,
    incrementalOverFullBytes: I.bytesCopied / F.bytesCopied,
    incrementalOverFullJobTime: I.jobSeconds / F.jobSeconds,
  };
  const runs = (rows, key) => rows.map((x) => fmt(x[key])).join(", ");
  const cpus = os.cpus();
  const qemuVersion = spawnSync("qemu-img", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
  const out = [];
  out.push("");
  out.push(`Backup benchmark — ${cpus.length} cores (${cpus[0]?.model.trim() ?? "?"}), Node ${process.version}, ${os.platform()} ${os.release()}, ${qemuVersion}, guest under TCG`);
  out.push(`1-min load average: ${loadBefore.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (other processes on this machine skew results)`);
  out.push(`VM: ${DISK_MIB} MiB disk, ${FILL_MIB} MiB of random data written by the guest in ${fmt(fillSeconds, 1)} s; medians of ${res.full.length} full backups, ${res.convert.length} converts, ${res.incremental.length} incrementals`);
  out.push("");
  out.push(table(
    ["", "job s", "copy s", "sha256 s", "CLI wall s", "copied MiB", "file MiB", "runs (job s)"],
    [
      ["live full backup (iaas vm backup --wait)", fmt(F.jobSeconds), fmt(F.copySeconds), fmt(F.checksumSeconds), fmt(F.wallSeconds), fmt(mib(F.bytesCopied), 1), fmt(mib(F.sizeBytes), 1), runs(res.full, "jobSeconds")],
      ["qemu-img convert -U (baseline)", "", fmt(convert), "", "", "", "", res.convert.map((v) => fmt(v)).join(", ")],
      [`incremental after a ${CHANGE_MIB} MiB change (--incremental)`, fmt(I.jobSeconds), fmt(I.copySeconds), fmt(I.checksumSeconds), fmt(I.wallSeconds), fmt(mib(I.bytesCopied), 2), fmt(mib(I.sizeBytes), 2), runs(res.incremental, "jobSeconds")],
    ],
  ));
  out.push("");
  out.push(`live full backup (1 GiB disk, ${FILL_MIB} MiB data): ${fmt(F.jobSeconds)} s job (copy ${fmt(F.copySeconds)} s, sha256 ${fmt(F.checksumSeconds)} s), ${fmt(F.wallSeconds)} s CLI wall; copied ${fmt(mib(F.bytesCopied), 0)} MiB; file ${fmt(mib(F.sizeBytes), 0)} MiB`);
  out.push(`qemu-img convert baseline: ${fmt(convert)} s`);
  out.push(`ratio full/convert: ${fmt(ratios.fullJobOverConvert)}x (job time; the job also hashes its file), ${fmt(ratios.fullCopyOverConvert)}x (copy phase only)`);
  out.push(`incremental after 1% change: copied ${fmt(mib(I.bytesCopied), 1)} MiB (${fmt(ratios.incrementalOverFullBytes * 100)}% of full), ${fmt(I.jobSeconds)} s job (${fmt(ratios.incrementalOverFullJobTime)}x of full), ${fmt(I.wallSeconds)} s CLI wall`);
  out.push("");
  const json = {
    bench: "backup", cores: cpus.length, diskMiB: DISK_MIB, fillMiB: FILL_MIB, changeMiB: CHANGE_MIB, fillSeconds,
    full: { median: F, runs: res.full }, convertSeconds: { median: convert, runs: res.convert },
    incremental: { median: I, runs: res.incremental }, ratios,
  };
  out.push(JSON.stringify(json));
  return `${out.join("\n")}\n`;
}

const code = await runBench("backup", stack, interrupted, async () => process.stdout.write(await main()), () => {
  killBaselines();
  killClis();
});
process.exit(code);
