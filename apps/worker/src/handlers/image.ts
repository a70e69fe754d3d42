import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { IaasError } from "@iaas/contracts";
import { inspectImage } from "@iaas/hypervisor";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";

function storedPath(imageId: string): string {
  return path.join("images", `${imageId}.qcow2`);
}

function abs(ctx: HandlerContext<"image.import" | "image.delete">, relative: string): string {
  return path.join(ctx.imageStore, relative);
}

/**
 * Imports an uploaded file: identify the format from its header with our own parser (refusing
 * backing files, external data files and unknown formats before qemu-img opens it), read it with
 * `qemu-img info -f FMT`, check it, and convert it to qcow2 in the store.
 */
export const imageImport: JobHandler<"image.import"> = {
  async run(ctx) {
    const { imageId, stagingFile, sha256 } = ctx.payload;
    const image = await ctx.db.image.findUniqueOrThrow({ where: { id: imageId } });
    if (image.state === "ready" && image.path && image.sourceFormat && image.virtualSize !== null && image.storedSize !== null) {
      return { imageId, sourceFormat: image.sourceFormat, virtualSize: Number(image.virtualSize), storedSize: Number(image.storedSize), sha256: image.sha256 ?? sha256 };
    }
    const source = abs(ctx, stagingFile);
    await ctx.progress({ phase: "inspect", percent: 5, message: "reading the image header" });
    const inspected = await inspectImage(source);
    const info = await ctx.qemuImg.info(source, inspected.format, { signal: ctx.signal });
    if (info.backingFilename !== null || info.dataFile !== null) {
      throw new IaasError("IMAGE_HAS_BACKING_FILE", "qemu-img reports a backing or data file the header check missed", { hint: "upload a self-contained image" });
    }
    if (inspected.format === "qcow2") {
      await ctx.progress({ phase: "check", percent: 10, message: "qemu-img check" });
      const check = await ctx.qemuImg.check(source, "qcow2", { signal: ctx.signal });
      if (!check.ok) {
        throw new IaasError("IMAGE_INVALID", `qemu-img check found ${check.corruptions} corruption(s) in the image`, {
          hint: "repair it with `qemu-img check -r all` and upload it again",
        });
      }
    }
    await mkdir(path.join(ctx.imageStore, "images"), { recursive: true });
    const target = abs(ctx, storedPath(imageId));
    const partial = `${target}.part`;
    let last = -1;
    await ctx.qemuImg.convert(source, inspected.format, partial, "qcow2", {
      signal: ctx.signal,
      onProgress: (percent) => {
        const scaled = Math.floor(15 + percent * 0.8);
        if (scaled >= last + 5 || percent === 100) {
          last = scaled;
          void ctx.progress({ phase: "convert", percent: scaled, message: `qcow2 ${percent.toFixed(0)}%` }).catch((err: unknown) => ctx.log.warn({ err }, "progress not recorded"));
        }
      },
    });
    await rename(partial, target);
    const storedSize = (await stat(target)).size;
    await ctx.db.image.update({
      where: { id: imageId },
      data: {
        state: "ready",
        path: storedPath(imageId),
        sourceFormat: inspected.format,
        virtualSize: BigInt(info.virtualSize),
        storedSize: BigInt(storedSize),
        sha256,
        errorCode: null,
        errorMessage: null,
        errorHint: null,
      },
    });
    await rm(source, { force: true });
    return { imageId, sourceFormat: inspected.format, virtualSize: info.virtualSize, storedSize, sha256 };
  },
  async settle(ctx, error) {
    const target = abs(ctx, storedPath(ctx.payload.imageId));
    await Promise.all([rm(abs(ctx, ctx.payload.stagingFile), { force: true }), rm(target, { force: true }), rm(`${target}.part`, { force: true })]);
    await ctx.db.image.updateMany({
      where: { id: ctx.payload.imageId },
      data: { state: "failed", path: null, errorCode: error.code, errorMessage: error.message, errorHint: error.hint },
    });
  },
  describe: (r) => `image ready: ${r.sourceFormat} → qcow2, virtual size ${r.virtualSize} bytes, sha256 ${r.sha256}`,
};

/** Deletes an image that no VM uses: its file, then its row. */
export const imageDelete: JobHandler<"image.delete"> = {
  async run(ctx) {
    const image = await ctx.db.image.findUnique({ where: { id: ctx.payload.imageId }, include: { vms: { select: { name: true } } } });
    if (!image) return { imageId: ctx.payload.imageId, deleted: true };
    if (image.vms.length > 0) {
      throw new IaasError("IMAGE_IN_USE", `image '${image.name}' is used by ${image.vms.map((v) => v.name).join(", ")}`, { hint: "delete those VMs first" });
    }
    await ctx.db.image.update({ where: { id: image.id }, data: { state: "deleting" } });
    await ctx.progress({ phase: "remove-files", percent: 50 });
    if (image.path) await rm(abs(ctx, image.path), { force: true });
    await rm(abs(ctx, path.join("staging", `${image.id}.upload`)), { force: true });
    await ctx.db.image.delete({ where: { id: image.id } });
    return { imageId: image.id, deleted: true };
  },
  async settle(ctx, error) {
    const image = await ctx.db.image.findUnique({ where: { id: ctx.payload.imageId } });
    if (!image || image.state !== "deleting") return;
    const present = image.path ? await stat(abs(ctx, image.path)).then(() => true, () => false) : false;
    await ctx.db.image.update({
      where: { id: image.id },
      data: { state: present ? "ready" : "failed", errorCode: error.code, errorMessage: error.message, errorHint: error.hint },
    });
  },
  describe: () => "image deleted",
};

/** The benchmark's job: no hypervisor work, so `npm run bench:jobs` measures the pipeline alone. */
export const benchNoop: JobHandler<"bench.noop"> = {
  async run(ctx) {
    return { n: ctx.payload.n };
  },
};
