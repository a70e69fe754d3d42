import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { formatSize, IaasError, type ImageFormat, type JobError } from "@iaas/contracts";
import { exportOptions } from "@iaas/hypervisor";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { hashFile } from "./hashFile.js";
import { phaseProgress } from "./phaseProgress.js";

type Ctx = HandlerContext<"image.export" | "vm.export">;

const EXTENSIONS: Record<ImageFormat, string> = { qcow2: "qcow2", raw: "raw", vmdk: "vmdk", vdi: "vdi", vhdx: "vhdx", vpc: "vhd" };

function exportFile(exportId: string, format: ImageFormat): string {
  return path.join("exports", `${exportId}.${EXTENSIONS[format]}`);
}

/**
 * Converts a qcow2 disk (an image, or a VM's overlay, which `qemu-img convert` flattens through
 * its backing chain) to the requested format in the store's export area, checksums it and
 * records it, downloadable until it expires.
 */
async function runExport(ctx: Ctx, source: string, virtualSize: number) {
  const { exportId, format, compress, ttlSeconds } = ctx.payload;
  const relative = exportFile(exportId, format);
  const target = path.join(ctx.imageStore, relative);
  const partial = `${target}.part`;
  await mkdir(path.dirname(target), { recursive: true });
  const convert = phaseProgress(ctx.progress, "convert", virtualSize, { from: 2, to: 85 });
  await ctx.qemuImg.convert(source, "qcow2", partial, format, {
    signal: ctx.signal,
    compress,
    options: exportOptions(format),
    onProgress: (percent) => convert.at((percent / 100) * virtualSize),
  });
  await convert.finish();
  const sizeBytes = (await stat(partial)).size;
  const sha256 = await hashFile(partial, phaseProgress(ctx.progress, "checksum", sizeBytes, { from: 85, to: 100 }), ctx.signal);
  await rename(partial, target);
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  await ctx.db.export.update({ where: { id: exportId }, data: { state: "ready", path: relative, sizeBytes: BigInt(sizeBytes), sha256, expiresAt } });
  return { exportId, format, sizeBytes, sha256, expiresAt: expiresAt.toISOString() };
}

async function settleExport(ctx: Ctx, _error: JobError): Promise<void> {
  const target = path.join(ctx.imageStore, exportFile(ctx.payload.exportId, ctx.payload.format));
  await Promise.all([rm(target, { force: true }), rm(`${target}.part`, { force: true })]);
  await ctx.db.export.updateMany({ where: { id: ctx.payload.exportId }, data: { state: "failed", path: null } });
}

async function alreadyDone(ctx: Ctx) {
  const row = await ctx.db.export.findUniqueOrThrow({ where: { id: ctx.payload.exportId } });
  if (row.state !== "ready" || row.sizeBytes === null || !row.sha256 || !row.expiresAt) return null;
  return { exportId: row.id, format: ctx.payload.format, sizeBytes: Number(row.sizeBytes), sha256: row.sha256, expiresAt: row.expiresAt.toISOString() };
}

const describe = (r: { format: string; sizeBytes: number; sha256: string }) => `exported as ${r.format}: ${formatSize(r.sizeBytes)}, sha256 ${r.sha256}`;

export const imageExport: JobHandler<"image.export"> = {
  async run(ctx) {
    const done = await alreadyDone(ctx);
    if (done) return done;
    const image = await ctx.db.image.findUniqueOrThrow({ where: { id: ctx.payload.imageId } });
    if (image.state !== "ready" || !image.path || image.virtualSize === null) {
      throw new IaasError("IMAGE_NOT_READY", `image '${image.name}' is ${image.state}`, { hint: "export a ready image" });
    }
    return runExport(ctx, path.join(ctx.imageStore, image.path), Number(image.virtualSize));
  },
  settle: settleExport,
  describe,
};

export const vmExport: JobHandler<"vm.export"> = {
  async run(ctx) {
    const done = await alreadyDone(ctx);
    if (done) return done;
    const vm = await ctx.db.vm.findUniqueOrThrow({ where: { id: ctx.payload.vmId } });
    if ((await ctx.runtime.runningPid(vm)) !== null) {
      throw new IaasError("INVALID_STATE", `VM '${vm.name}' is running; its disk cannot be exported consistently`, { hint: `stop it first: \`iaas vm stop ${vm.name} --wait\`` });
    }
    await ctx.note(`flattening the disk of VM '${vm.name}' (overlay and image) into one ${ctx.payload.format} file`);
    return runExport(ctx, ctx.runtime.files(vm.id).disk, Number(vm.diskBytes));
  },
  settle: settleExport,
  describe,
};
