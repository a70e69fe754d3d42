// Renders bench/images.mjs results: medians, MiB/s, ratios to the raw qemu-img baseline, goals.
import { spawnSync } from "node:child_process";
import os from "node:os";
import { median, table } from "./stats.mjs";

const IMPORT_GOAL = 0.95;
const INSPECT_GOAL = 2; // percent of the import's job time

const s3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : "n/a");
const ms1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : "n/a");
const mibs = (mib, seconds) => (Number.isFinite(seconds) && seconds > 0 ? (mib / seconds).toFixed(1) : "n/a");
const ratio = (v) => (Number.isFinite(v) ? `${v.toFixed(3)}×` : "n/a");
const pct = (part, whole) => (Number.isFinite(part) && whole > 0 ? `${((100 * part) / whole).toFixed(2)} %` : "n/a");
const med = (runs, f) => median(runs.map(f));

/** Median per phase over runs of { phases: {name: ms} }, in the order of the first run. */
function phaseMedians(runs, key = "phases") {
  const names = Object.keys(runs[0]?.[key] ?? {});
  return names.map((n) => [n, med(runs, (r) => r[key][n])]);
}

function qemuImgVersion() {
  const r = spawnSync("qemu-img", ["--version"], { encoding: "utf8" });
  return r.stdout?.split("\n")[0]?.trim() || "qemu-img ?";
}

export function renderReport({ mib, repeat, formats, loadBefore, res, exportOptionsText }) {
  const cpus = os.cpus();
  const out = [];
  const push = (...lines) => out.push(...lines);
  push("", `Image pipeline benchmark — ${cpus.length} cores (${cpus[0]?.model.trim() ?? "?"}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, Node ${process.version}, ${qemuImgVersion()}, ${os.platform()} ${os.release()}`);
  const [l1, l5] = os.loadavg();
  push(`Load average (1 min): ${loadBefore.toFixed(2)} at start, ${l1.toFixed(2)} at end (5 min: ${l5.toFixed(2)}); other processes on this machine skew results`);
  push(`Source: ${mib} MiB raw, 1 MiB blocks alternating random / zero (zeros written, not sparse), in the page cache · median of ${repeat} runs · baseline and pipeline alternate order each run · \`sync\` before every timed step`);

  // 1. Import
  const base = med(res.baseImport, (s) => s);
  const pathJob = med(res.path, (r) => r.jobSeconds);
  const pathWall = med(res.path, (r) => r.wallSeconds);
  const pathConvert = med(res.path, (r) => r.phases["check+convert"] / 1000);
  const pathSha = med(res.path, (r) => r.phases.sha256 / 1000);
  const up = { put: med(res.upload, (r) => r.putSeconds), job: med(res.upload, (r) => r.jobSeconds), wall: med(res.upload, (r) => r.wallSeconds) };
  const row = (label, sec) => [label, s3(sec), mibs(mib, sec), ratio(base / sec)];
  push("", `1. Import: ${mib} MiB raw → qcow2 (MiB/s of source size; ratio = pipeline MiB/s ÷ baseline MiB/s)`);
  push(table(["", "seconds", "MiB/s", "vs baseline"], [
    row("baseline      qemu-img convert -p -f raw -O qcow2 SRC DST", base),
    row("path import   job (Job.startedAt → finishedAt)", pathJob),
    row("path import   wall (POST /v1/images → finishedAt)", pathWall),
    row("  its check+convert phase only (from job events)", pathConvert),
    row("  its job minus the sha256 phase", pathJob - pathSha),
    row("upload import PUT only (streamed HTTP → staging file)", up.put),
    row("  control: plain Node http PUT → file, same client", median(res.plainPut)),
    row("upload import job (startedAt → finishedAt)", up.job),
    row("upload import wall (POST + PUT + job → finishedAt)", up.wall),
  ]));
  const r = base / pathJob;
  push(`Goal: path-import job ≥ ${IMPORT_GOAL}× baseline → ${r >= IMPORT_GOAL ? "MET" : "NOT MET"} (${ratio(r)}; wall ${ratio(base / pathWall)}).`);

  push("", "Where the import job's time goes (median ms per phase, from GET /v1/jobs/:id/events; share of the job):");
  const pathPh = phaseMedians(res.path);
  const upPh = Object.fromEntries(phaseMedians(res.upload));
  const desc = {
    setup: "resolve + check the source path",
    sha256: "verify: sha256 of the whole source (hashFile)",
    lookup: "same-content query + detectCompression",
    "header+info": "inspectImage() + qemu-img info",
    "check+convert": "qemu-img check + qemu-img convert -p",
    finalize: "rename, stat, image row, cleanup, job row",
  };
  push(table(["phase", "path ms", "share", "upload ms", "share"], pathPh.map(([n, v]) => [`${n.padEnd(13)} ${desc[n] ?? ""}`, ms1(v), pct(v, pathJob * 1000), ms1(upPh[n]), pct(upPh[n], up.job * 1000)])));
  push(`Queue wait (POST → Job.startedAt): path ${ms1(med(res.path, (x) => x.queueSeconds * 1000))} ms, upload ${ms1(med(res.upload, (x) => x.queueSeconds * 1000))} ms (upload: from the end of the PUT).`);

  // 3. Inspection cost
  const p = (f) => med(res.probe, f);
  const a = (f) => med(res.anatomy, f);
  const inspectMs = p((x) => x.totalMs);
  const shaMs = med(res.sha, (x) => x.ms);
  const jobMs = pathJob * 1000;
  push("", `3. Safety inspection cost on the source, run in this process with the worker's code (@iaas/hypervisor dist, QemuImg default probe limits); share of the path-import job (${ms1(jobMs)} ms)`);
  push(table(["", "ms", "share of import"], [
    ["detectCompression (magic bytes)", ms1(p((x) => x.compressionMs)), pct(p((x) => x.compressionMs), jobMs)],
    ["inspectImage() — our header parser", ms1(p((x) => x.headerMs)), pct(p((x) => x.headerMs), jobMs)],
    [`qemu-img info -f ${res.probe[0]?.format} (prlimit)`, ms1(p((x) => x.infoMs)), pct(p((x) => x.infoMs), jobMs)],
    [`qemu-img check -f ${res.probe[0]?.format} (prlimit)${res.probe[0]?.checkSupported ? "" : " — format has no check, exit 63"}`, ms1(p((x) => x.checkMs)), pct(p((x) => x.checkMs), jobMs)],
    ["inspection total", ms1(inspectMs), pct(inspectMs, jobMs)],
    [`sha256 pass (worker's hashFile, ${mibs(mib, shaMs / 1000)} MiB/s) — verification, not inspection`, ms1(shaMs), pct(shaMs, jobMs)],
    [`  its parts: sha256 of as many bytes in memory (OpenSSL on this CPU, ${mibs(mib, a((x) => x.hashMemMs) / 1000)} MiB/s)`, ms1(a((x) => x.hashMemMs)), pct(a((x) => x.hashMemMs), jobMs)],
    ["             reading the file as hashFile does (createReadStream, 1 MiB), no hash", ms1(a((x) => x.streamReadMs)), pct(a((x) => x.streamReadMs), jobMs)],
    ["             reading it into one reused 4 MiB buffer, no hash", ms1(a((x) => x.reusedReadMs)), pct(a((x) => x.reusedReadMs), jobMs)],
  ]));
  push(`Goal: inspection ≤ ${INSPECT_GOAL} % of the import → ${(100 * inspectMs) / jobMs <= INSPECT_GOAL ? "MET" : "NOT MET"} (${pct(inspectMs, jobMs)}); in the job itself the header+info phase took ${ms1(med(res.path, (x) => x.phases["header+info"]))} ms.`);
  push(`The sha256 pass alone is ${ratio(shaMs / (base * 1000))} the baseline convert's time.`);

  // What-if estimates from the numbers above (not measured).
  const rest = pathJob - pathSha;
  const hashFloor = a((x) => x.hashMemMs) / 1000;
  push("", "Estimates derived from the medians above (not measured):");
  push(table(["", "seconds", "vs baseline"], [
    ["path import job as measured", s3(pathJob), ratio(base / pathJob)],
    ["… with a sequential sha256 pass at the in-memory hash speed", s3(rest + hashFloor), ratio(base / (rest + hashFloor))],
    ["… with the sha256 pass overlapped with inspect+convert (max of both)", s3(Math.max(rest, pathSha)), ratio(base / Math.max(rest, pathSha))],
    ["… without any sha256 pass (hash computed while the bytes arrive, or not at all)", s3(rest), ratio(base / rest)],
  ]));

  // 2. Export
  push("", `2. Export of the imported image (stored qcow2, ${mib} MiB virtual) — MiB/s of virtual size; ratio = baseline seconds ÷ pipeline seconds`);
  push(`   -o options from the built exportOptions(): ${exportOptionsText}`);
  const rows = [];
  for (const fmt of formats) {
    const e = res.exports[fmt];
    const b = median(e.base);
    const job = med(e.pipe, (x) => x.jobSeconds);
    const conv = med(e.pipe, (x) => x.phases.convert / 1000);
    rows.push([
      fmt, s3(b), mibs(mib, b), s3(job), mibs(mib, job), ratio(b / job), s3(conv), ratio(b / conv),
      s3(med(e.pipe, (x) => x.phases.checksum / 1000)), s3(med(e.pipe, (x) => x.wallSeconds)), ms1(median(e.pipe.map((x) => x.sizeBytes / 1024 ** 2))),
    ]);
  }
  push(table(["format", "base s", "MiB/s", "job s", "MiB/s", "job ratio", "convert s", "conv ratio", "sha256 s", "wall s", "out MiB"], rows));

  push("", "Notes:");
  push("- Job times come from the Job row (startedAt/finishedAt, set by the worker, ms precision); wall = finishedAt − Date.now() just before the POST.");
  push("- Phases are the differences between the createdAt of consecutive job events (ms precision). Progress events are written at most once a");
  push("  second, but each phase writes a final one when it ends, so phase ends are exact; qemu-img check has no event and is counted in check+convert.");
  push("- The baseline runs plain qemu-img with the same flags and -o options; the worker adds prlimit (--as) and MALLOC_ARENA_MAX=2 around it.");
  return out.join("\n") + "\n";
}
