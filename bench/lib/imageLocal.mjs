// The local side of bench/images.mjs: the test file, the raw `qemu-img convert` baseline, and
// the worker's own safety inspection and sha256 code run in this process.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomFill } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import http from "node:http";
import { open } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { putFile } from "./http.mjs";
import { detectCompression, exportOptions, formatImageOptions, inspectImage, QemuImg } from "@iaas/hypervisor";
import { hashFile } from "../../apps/worker/dist/handlers/hashFile.js";

const MiB = 1024 * 1024;

/**
 * Writes `mib` MiB of mixed content: 1 MiB blocks alternating random and zero bytes (zeros
 * written, not holes), so half the disk is data and half is what qcow2 leaves unallocated.
 */
export async function makeMixedFile(file, mib) {
  const fh = await open(file, "w");
  const random = Buffer.alloc(MiB);
  const zero = Buffer.alloc(MiB);
  try {
    for (let i = 0; i < mib; i++) {
      if (i % 2 === 0) await new Promise((res, rej) => randomFill(random, (err) => (err ? rej(err) : res())));
      await fh.write(i % 2 === 0 ? random : zero, 0, MiB, i * MiB);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flushes dirty pages (not the page cache) so one step's write-back does not land in the next. */
export function syncDisks() {
  spawnSync("sync", { stdio: "ignore" });
}

// Baseline qemu-img processes still running, killed by killBaselines() on cleanup/Ctrl-C.
const live = new Set();
export function killBaselines() {
  for (const c of live) c.kill("SIGKILL");
}

/** Runs argv (no shell); stdout is piped and drained like the worker does for `-p`. Resolves with seconds. */
export function timeCommand(argv) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let stderr = "";
    child.stdout.resume();
    child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-2000)));
    child.once("error", (err) => {
      live.delete(child);
      reject(new Error(`${argv[0]}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      live.delete(child);
      const seconds = (performance.now() - t0) / 1000;
      if (code === 0) resolve(seconds);
      else reject(new Error(`${argv.join(" ")} exited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

/** The same argv the product's QemuImg.convert builds for an export (minus prlimit), from the built exportOptions(). */
export function exportArgv(src, dst, format) {
  const o = formatImageOptions(exportOptions(format));
  return ["qemu-img", "convert", "-p", "-f", "qcow2", "-O", format, ...(o ? ["-o", o] : []), src, dst];
}

export function importArgv(src, dst) {
  return ["qemu-img", "convert", "-p", "-f", "raw", "-O", "qcow2", src, dst];
}

// As the worker builds it (apps/worker/src/main.ts): default probe limits through prlimit.
const qemuImg = new QemuImg();

/**
 * The import's safety inspection as the worker runs it on an uncompressed source:
 * detectCompression, inspectImage (our header parser), `qemu-img info`, `qemu-img check`.
 * Returns milliseconds per step.
 */
export async function probeInspection(file, maxVirtualSize) {
  const t = [performance.now()];
  const compression = await detectCompression(file);
  t.push(performance.now());
  const inspected = await inspectImage(file, { maxVirtualSize });
  t.push(performance.now());
  const info = await qemuImg.info(file, inspected.format);
  t.push(performance.now());
  const check = await qemuImg.check(file, inspected.format);
  t.push(performance.now());
  if (compression !== null || info.backingFilename !== null) throw new Error(`unexpected probe result for ${file}`);
  const d = (i) => t[i + 1] - t[i];
  return {
    format: inspected.format,
    checkSupported: check.supported,
    compressionMs: d(0),
    headerMs: d(1),
    infoMs: d(2),
    checkMs: d(3),
    totalMs: t[4] - t[0],
  };
}

/** The import's sha256 pass: the worker's own hashFile (1 MiB reads), in milliseconds. */
export async function probeSha256(file) {
  const t0 = performance.now();
  const hex = await hashFile(file);
  return { ms: performance.now() - t0, hex };
}

/**
 * What the sha256 pass is made of, on the same file: the hash alone over the same number of
 * bytes in memory (OpenSSL's speed on this CPU), reading as hashFile does (createReadStream,
 * 1 MiB chunks, a fresh buffer each) without hashing, and reading into one reused 4 MiB buffer.
 */
export async function probeShaAnatomy(file, bytes) {
  const time = async (fn) => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  const block = Buffer.alloc(MiB, 0xa5);
  const hashMemMs = await time(() => {
    const h = createHash("sha256");
    for (let done = 0; done < bytes; done += MiB) h.update(bytes - done >= MiB ? block : block.subarray(0, bytes - done));
    h.digest();
  });
  const streamReadMs = await time(async () => {
    for await (const chunk of createReadStream(file, { highWaterMark: MiB })) void chunk;
  });
  const reusedReadMs = await time(async () => {
    const fh = await open(file, "r");
    const buf = Buffer.allocUnsafe(4 * MiB);
    try {
      for (let pos = 0; ; ) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
      }
    } finally {
      await fh.close();
    }
  });
  return { hashMemMs, streamReadMs, reusedReadMs };
}

/**
 * Control for the upload: a plain Node http server in this process that pipes a PUT body into a
 * file (no Express, no product code), fed by the same streamed client as the upload. Seconds.
 */
export async function plainPut(file, size, dst) {
  const server = http.createServer((req, res) => {
    pipeline(req, createWriteStream(dst)).then(
      () => res.end("{}"),
      (err) => res.writeHead(500).end(JSON.stringify({ error: err.message })),
    );
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  try {
    const t0 = performance.now();
    const res = await putFile(`http://127.0.0.1:${server.address().port}/`, file, size);
    if (res.status !== 200) throw new Error(`plain PUT answered ${res.status}: ${res.text}`);
    return (performance.now() - t0) / 1000;
  } finally {
    server.close();
  }
}
