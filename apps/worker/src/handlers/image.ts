import { rm, stat } from "node:fs/promises";
import path from "node:path";
import { IaasError, imageStateAfterFailedDelete } from "@iaas/contracts";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";

function abs(ctx: HandlerContext<"image.delete">, relative: string): string {
  return path.join(ctx.imageStore, relative);
}

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
    const state = imageStateAfterFailedDelete(image, present);
    await ctx.db.image.update({
      where: { id: image.id },
      // An image that was unusable before keeps saying why (the delete's own error is on its job).
      data: state === "error" ? { state } : { state, errorCode: error.code, errorMessage: error.message, errorHint: error.hint },
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
