import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { formatSize, IaasError, type JobResult } from "@iaas/contracts";
import { decompress, detectCompression, inspectImage } from "@iaas/hypervisor";
import { safeDownload } from "../download/safeDownload.js";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { hashFile } from "./hashFile.js";
import { resolveImportPath } from "./importPath.js";
import { phaseProgress } from "./phaseProgress.js";

type Ctx = HandlerContext<"image.import">;

export function storedImagePath(imageId: string): string {
  return path.join("images", `${imageId}.qcow2`);
}

/** Files an import may leave in the store's staging area, all removed when it ends. */
function workFiles(ctx: Ctx) {
  const base = path.join(ctx.imageStore, "staging", ctx.payload.imageId);
  const target = path.join(ctx.imageStore, storedImagePath(ctx.payload.imageId));
  return { download: `${base}.download`, decompressed: `${base}.decompressed`, target, partial: `${target}.part` };
}

/** Gets the content onto this host: the staged upload, a checked host path, or a download. */
async function acquire(ctx: Ctx): Promise<string> {
  const source = ctx.payload.source;
  switch (source.type) {
    case "upload":
      return path.join(ctx.imageStore, source.stagingFile);
    case "path": {
      const real = await resolveImportPath(source.path, ctx.importConfig.importDir);
      await ctx.note(`reading ${real} on host ${ctx.hostId}`);
      return real;
    }
    case "url": {
      const dest = workFiles(ctx).download;
      await mkdir(path.dirname(dest), { recursive: true });
      const kept = await stat(dest).then((s) => s.size, () => 0);
      await ctx.note(kept > 0 ? `resuming the download of ${source.url} at ${formatSize(kept)}` : `downloading ${source.url}`);
      let progress: ReturnType<typeof phaseProgress> | undefined;
      const result = await safeDownload(source.url, dest, {
        allow: ctx.importConfig.urlAllowList,
        maxBytes: ctx.importConfig.maxDownloadBytes,
        timeoutMs: ctx.importConfig.downloadTimeoutMs,
        signal: ctx.signal,
        onProgress: (p) => {
          progress ??= phaseProgress(ctx.progress, "download", p.bytesTotal, { from: 0, to: 40 }, kept);
          progress.at(p.bytesDone);
        },
      });
      await progress?.finish();
      await ctx.note(`downloaded ${formatSize(result.bytes)} from ${result.finalUrl}`);
      return dest;
    }
  }
}

/**
 * Imports an image: fetch the content, verify its sha256, decompress .gz/.xz, identify the format
 * from the header with our own parser (refusing backing files, data files, VMDK extents, a
 * declared-format mismatch and oversized disks) before any qemu-img call, check it, and convert
 * it to qcow2 in the store with live progress.
 */
export const imageImport: JobHandler<"image.import"> = {
  async run(ctx) {
    const { imageId } = ctx.payload;
    const image = await ctx.db.image.findUniqueOrThrow({ where: { id: imageId } });
    if (image.state === "ready" && image.path && image.sourceFormat && image.virtualSize !== null && image.storedSize !== null && image.sha256) {
      return { imageId, sourceFormat: image.sourceFormat, virtualSize: Number(image.virtualSize), storedSize: Number(image.storedSize), sha256: image.sha256 };
    }
    const source = await acquire(ctx);
    const size = (await stat(source)).size;

    // The sha256 of the content as delivered: known from the upload, or computed here — first when
    // a checksum must be verified or dedupe must decide before anything opens the content,
    // otherwise alongside the conversion (hashing is slower than qemu-img convert, so running them
    // one after the other would double the import's time).
    const known = ctx.payload.source.type === "upload" ? ctx.payload.source.sha256 : undefined;
    const hashAbort = new AbortController();
    const stopHashing = () => hashAbort.abort();
    ctx.signal.addEventListener("abort", stopHashing, { once: true });
    let hashing: Promise<string>;
    if (known) {
      hashing = Promise.resolve(known);
    } else if (ctx.payload.dedupe || ctx.payload.expectedSha256) {
      hashing = Promise.resolve(await hashFile(source, phaseProgress(ctx.progress, "verify", size, { from: 40, to: 50 }), ctx.signal));
    } else {
      hashing = hashFile(source, undefined, hashAbort.signal);
      hashing.catch(() => undefined);
    }
    try {
      return await importContent(ctx, source, size, hashing);
    } finally {
      // An import that failed half-way must not leave the parallel hash reading on.
      stopHashing();
      ctx.signal.removeEventListener("abort", stopHashing);
    }
  },
  async settle(ctx, error) {
    const files = workFiles(ctx);
    await cleanup(ctx);
    await Promise.all([rm(files.target, { force: true }), rm(files.partial, { force: true })]);
    await ctx.db.image.updateMany({
      where: { id: ctx.payload.imageId },
      data: { state: "failed", path: null, errorCode: error.code, errorMessage: error.message, errorHint: error.hint },
    });
  },
  describe: (r) =>
    r.deduplicatedTo
      ? `content already stored as image '${r.deduplicatedTo.name}'; reused it`
      : `image ready: ${r.sourceFormat} → qcow2, virtual size ${formatSize(r.virtualSize)}, sha256 ${r.sha256}`,
};

/** Everything after the content is on this host: dedupe, decompress, inspect, check, convert, record. */
async function importContent(ctx: Ctx, source: string, size: number, hashing: Promise<string>): Promise<JobResult<"image.import">> {
  const { imageId } = ctx.payload;
  const files = workFiles(ctx);
  if (ctx.payload.expectedSha256) assertExpected(ctx, await hashing);
  if (ctx.payload.dedupe) {
    const sha256 = await hashing;
    const same = await ctx.db.image.findFirst({ where: { sha256, state: "ready", id: { not: imageId } } });
    if (same) {
      assertExpected(ctx, sha256);
      await ctx.note(`the same content is already stored as image '${same.name}'; reusing it (--dedupe)`);
      await cleanup(ctx);
      await ctx.db.image.delete({ where: { id: imageId } });
      return { imageId: same.id, sourceFormat: same.sourceFormat ?? "qcow2", virtualSize: Number(same.virtualSize ?? 0), storedSize: Number(same.storedSize ?? 0), sha256, deduplicatedTo: { id: same.id, name: same.name } };
    }
  }

  let imageFile = source;
  const compression = await detectCompression(source);
  if (compression) {
    const progress = phaseProgress(ctx.progress, "decompress", size, { from: 50, to: 60 });
    await decompress(source, files.decompressed, compression, {
      signal: ctx.signal,
      maxOutputBytes: ctx.importConfig.maxVirtualSize + 1024 * 1024,
      onProgress: (bytesIn) => progress.at(bytesIn),
    });
    await progress.finish();
    await ctx.note(`decompressed ${compression}: ${formatSize((await stat(files.decompressed)).size)}`);
    imageFile = files.decompressed;
  }

  await ctx.progress({ phase: "inspect", percent: 60, message: "reading the image header" });
  const inspected = await inspectImage(imageFile, {
    ...(ctx.payload.declaredFormat ? { declaredFormat: ctx.payload.declaredFormat } : {}),
    maxVirtualSize: ctx.importConfig.maxVirtualSize,
  });
  const info = await ctx.qemuImg.info(imageFile, inspected.format, { signal: ctx.signal });
  if (info.backingFilename !== null || info.dataFile !== null) {
    throw new IaasError("IMAGE_HAS_BACKING_FILE", "qemu-img reports a backing or data file that the header check did not see", { hint: "upload a self-contained image" });
  }
  await ctx.note(`format ${inspected.format}, virtual size ${formatSize(info.virtualSize)}`);
  // raw and vpc have no consistency check (qemu-img exits 63): do not spawn it for nothing.
  if (inspected.format !== "raw" && inspected.format !== "vpc") {
    const check = await ctx.qemuImg.check(imageFile, inspected.format, { signal: ctx.signal });
    if (check.supported && !check.ok) {
      throw new IaasError("IMAGE_INVALID", `qemu-img check found ${check.corruptions} corruption(s)`, { hint: "repair it (`qemu-img check -r all`) and import it again" });
    }
  }

  await mkdir(path.dirname(files.target), { recursive: true });
  const convert = phaseProgress(ctx.progress, "convert", info.virtualSize, { from: 62, to: 99 });
  await ctx.qemuImg.convert(imageFile, inspected.format, files.partial, "qcow2", {
    signal: ctx.signal,
    onProgress: (percent) => convert.at((percent / 100) * info.virtualSize),
  });
  await convert.finish();
  // The stored file's own checksum, which `image verify` checks it against later (the content's
  // checksum cannot: conversion rewrites the bytes).
  const [sha256, storedSha256] = await Promise.all([hashing, hashFile(files.partial, undefined, ctx.signal)]);
  assertExpected(ctx, sha256);
  const same = await ctx.db.image.findFirst({ where: { sha256, state: "ready", id: { not: imageId } } });
  if (same) await ctx.note(`the same content is already stored as image '${same.name}' (sha256 ${sha256}); stored again — use --dedupe to reuse it`, "warn");
  await rename(files.partial, files.target);
  const storedSize = (await stat(files.target)).size;
  await ctx.db.image.update({
    where: { id: imageId },
    data: {
      state: "ready",
      path: storedImagePath(imageId),
      sourceFormat: inspected.format,
      compression,
      virtualSize: BigInt(info.virtualSize),
      storedSize: BigInt(storedSize),
      sha256,
      storedSha256,
      checkedAt: new Date(),
      errorCode: null,
      errorMessage: null,
      errorHint: null,
    },
  });
  await cleanup(ctx);
  return { imageId, sourceFormat: inspected.format, virtualSize: info.virtualSize, storedSize, sha256 };
}

function assertExpected(ctx: Ctx, sha256: string): void {
  if (ctx.payload.expectedSha256 && ctx.payload.expectedSha256 !== sha256) {
    throw new IaasError("CHECKSUM_MISMATCH", `the content's sha256 is ${sha256}, not the expected ${ctx.payload.expectedSha256}`, {
      hint: "check the source and the checksum you gave; nothing was stored",
    });
  }
}

/** Removes what the import staged (never a --source-path file: that belongs to the operator). */
async function cleanup(ctx: Ctx): Promise<void> {
  const files = workFiles(ctx);
  const staged = ctx.payload.source.type === "upload" ? [path.join(ctx.imageStore, ctx.payload.source.stagingFile)] : [];
  await Promise.all([files.download, files.decompressed, ...staged].map((f) => rm(f, { force: true })));
}
