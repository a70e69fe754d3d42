#!/usr/bin/env node
// `npm run bench:images`: throughput of image import and export through the product (REST → job →
// worker → qemu-img) against plain `qemu-img convert` on the same file, and the cost of the
// import's safety inspection — in one run, on one machine.
// Env: DATABASE_URL, REDIS_URL, BENCH_IMAGE_MIB (1024), BENCH_REPEAT (3),
// BENCH_EXPORT_FORMATS (qcow2,vmdk,raw).
import { mkdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ImageFormat } from "@iaas/contracts";
import { exportOptions, formatImageOptions } from "@iaas/hypervisor";
import { createImageApi } from "./lib/imageApi.mjs";
import {
  exportArgv, importArgv, killBaselines, makeMixedFile, plainPut, probeInspection, probeSha256, probeShaAnatomy, syncDisks, timeCommand,
} from "./lib/imageLocal.mjs";
import { renderReport } from "./lib/imageReport.mjs";
import { createStack } from "./lib/stack.mjs";
import { cleanUpOnSignal, intEnv, REDIS_URL, runBench } from "./lib/run.mjs";

const MIB = intEnv("BENCH_IMAGE_MIB", 1024);
const REPEAT = intEnv("BENCH_REPEAT", 3);
const FORMATS = (process.env.BENCH_EXPORT_FORMATS || "qcow2,vmdk,raw").split(",").map((f) => f.trim()).filter(Boolean);
const MAX_VIRTUAL_SIZE = 2 * 1024 ** 4; // the worker's default IAAS_MAX_IMAGE_VIRTUAL_SIZE (2T)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
for (const f of FORMATS) {
  if (!ImageFormat.options.includes(f)) throw new Error(`BENCH_EXPORT_FORMATS: '${f}' is not one of ${ImageFormat.options.join(", ")}`);
}

const stack = createStack({
  root,
  redisUrl: REDIS_URL,
  hostId: "bench-img-host",
  clients: 4,
  workerEnv: (tmp) => ({ IAAS_IMPORT_DIR: path.join(tmp, "import") }),
});
const interrupted = cleanUpOnSignal(stack, () => {
  killBaselines();
});

const t00 = Date.now();
function log(msg) {
  process.stderr.write(`bench [${((Date.now() - t00) / 1000).toFixed(1)}s] ${msg}\n`);
}
const checkpoint = () => {
  if (interrupted()) throw new Error("interrupted");
};

async function main() {
  const loadBefore = os.loadavg()[0];
  log("starting: throw-away database, API, worker (IAAS_IMPORT_DIR set)…");
  const s = await stack.start();
  const images = createImageApi({ api: s.api, baseUrl: s.baseUrl, db: s.db, imageStore: s.imageStore });
  // Cleanups run in reverse: these two run before the worker and API are stopped.
  stack.defer("kill baseline qemu-img", killBaselines);
  stack.defer("cancel running jobs", () => images.cancelInflight());
  const guard = (p) => Promise.race([p, s.crashed]);

  const importDir = path.join(s.tmp, "import");
  const outDir = path.join(s.tmp, "out");
  await mkdir(importDir, { recursive: true });
  await mkdir(outDir, { recursive: true });
  const src = path.join(importDir, "mixed.raw");
  log(`writing the ${MIB} MiB source (1 MiB blocks alternating random/zero) to ${src}…`);
  await makeMixedFile(src, MIB);
  const size = (await stat(src)).size;

  const res = { baseImport: [], path: [], upload: [], plainPut: [], probe: [], sha: [], anatomy: [], exports: {} };
  const KEEP = "bench-src"; // the first path import, kept as the export source
  for (let r = 0; r < REPEAT; r++) {
    const baseline = async () => {
      const dst = path.join(outDir, "baseline.qcow2");
      const seconds = await guard(timeCommand(importArgv(src, dst)));
      await rm(dst, { force: true });
      res.baseImport.push(seconds);
      log(`run ${r + 1}/${REPEAT} import baseline: ${seconds.toFixed(3)} s`);
    };
    const viaPath = async () => {
      const name = r === 0 ? KEEP : `bench-path-${r}`;
      const run = await guard(images.importPath(name, src));
      res.path.push({ ...run, phases: images.importPhases(run) });
      log(`run ${r + 1}/${REPEAT} path import: job ${run.jobSeconds.toFixed(3)} s, wall ${run.wallSeconds.toFixed(3)} s`);
      if (name !== KEEP) await guard(images.deleteImage(name));
    };
    for (const step of r % 2 === 0 ? [baseline, viaPath] : [viaPath, baseline]) {
      checkpoint();
      syncDisks();
      await step();
    }
    const upload = async () => {
      const run = await guard(images.importUpload(`bench-upload-${r}`, src, size));
      res.upload.push({ ...run, phases: images.importPhases(run) });
      log(`run ${r + 1}/${REPEAT} upload import: PUT ${run.putSeconds.toFixed(3)} s, job ${run.jobSeconds.toFixed(3)} s, wall ${run.wallSeconds.toFixed(3)} s`);
      await guard(images.deleteImage(`bench-upload-${r}`));
    };
    const control = async () => {
      const dst = path.join(outDir, "plain-put.raw");
      res.plainPut.push(await guard(plainPut(src, size, dst)));
      await rm(dst, { force: true });
      log(`run ${r + 1}/${REPEAT} plain Node PUT (control): ${res.plainPut.at(-1).toFixed(3)} s`);
    };
    for (const step of r % 2 === 0 ? [upload, control] : [control, upload]) {
      checkpoint();
      syncDisks();
      await step();
    }
    checkpoint();
    syncDisks();
    res.probe.push(await guard(probeInspection(src, MAX_VIRTUAL_SIZE)));
    res.sha.push(await guard(probeSha256(src)));
    res.anatomy.push(await guard(probeShaAnatomy(src, size)));
    log(`run ${r + 1}/${REPEAT} inspection ${res.probe.at(-1).totalMs.toFixed(1)} ms, sha256 ${res.sha.at(-1).ms.toFixed(0)} ms`);
  }
  const expectedSha = res.sha[0].hex;
  const storedSha = (await s.db.image.findUnique({ where: { name: KEEP } }))?.sha256;
  if (storedSha !== expectedSha) throw new Error(`image ${KEEP} has sha256 ${storedSha}, the source ${expectedSha}`);

  const stored = await images.storedFile(KEEP);
  for (const fmt of FORMATS) res.exports[fmt] = { base: [], pipe: [] };
  for (let r = 0; r < REPEAT; r++) {
    for (const fmt of FORMATS) {
      const baseline = async () => {
        const dst = path.join(outDir, `baseline.${fmt}`);
        const seconds = await guard(timeCommand(exportArgv(stored, dst, fmt)));
        await rm(dst, { force: true });
        res.exports[fmt].base.push(seconds);
        log(`run ${r + 1}/${REPEAT} export ${fmt} baseline: ${seconds.toFixed(3)} s`);
      };
      const pipeline = async () => {
        const run = await guard(images.exportImage(KEEP, fmt));
        res.exports[fmt].pipe.push({ ...run, phases: images.exportPhases(run) });
        log(`run ${r + 1}/${REPEAT} export ${fmt} job ${run.jobSeconds.toFixed(3)} s (wall ${run.wallSeconds.toFixed(3)} s)`);
      };
      for (const step of r % 2 === 0 ? [baseline, pipeline] : [pipeline, baseline]) {
        checkpoint();
        syncDisks();
        await step();
      }
    }
  }
  const exportOptionsText = FORMATS.map((f) => `${f}: ${formatImageOptions(exportOptions(f)) ?? "(none)"}`).join(" · ");
  return renderReport({ mib: size / 1024 ** 2, repeat: REPEAT, formats: FORMATS, loadBefore, res, exportOptionsText });
}

const code = await runBench("images", stack, interrupted, async () => process.stdout.write(await main()), () => killBaselines());
process.exit(code);
