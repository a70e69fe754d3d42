import { type Request, type Router } from "express";
import { inProject } from "../auth/scope.js";
import { guardedRouter } from "../auth/permissions.js";
import { ExportRequest, ImageCreateRequest, type ImageDeduplicated, type ImageList, type ImageUploadPartial } from "@iaas/contracts";
import type { Prisma, PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, sendAccepted, validate } from "../http/validate.js";
import { isAwaitingUpload, toExportDto, toImageDto } from "../services/dto.js";
import type { ExportService } from "../services/ExportService.js";
import type { ImageService } from "../services/ImageService.js";
import { requestHash } from "../services/JobSubmitter.js";
import { findImage } from "../services/resolve.js";
import { BY_NAME, pageArgs, pageRequest, pageResult } from "../http/paginate.js";

const withUsers = { vms: { select: { id: true, name: true } } } as const;

function meta(req: Request, body: unknown = req.body) {
  return { idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")), hash: requestHash(req.method, req.path, body) };
}

export function imageRoutes(deps: { db: PrismaClient; images: ImageService; exports: ExportService }): Router {
  const { db, images } = deps;
  const router = guardedRouter("/v1/images");

  // Only an image waiting for its upload has an offset worth a stat of its staging file.
  const dto = async (image: Parameters<typeof toImageDto>[0]) => toImageDto(image, isAwaitingUpload(image) ? await images.uploadOffset(image) : null);
  const show = async (id: string) => dto(await db.image.findUniqueOrThrow({ where: { id }, include: withUsers }));

  router.get("/", async (req, res) => {
    const page = pageRequest(req.query, BY_NAME);
    const rows = await db.image.findMany({ ...pageArgs<Prisma.ImageWhereInput>({ OR: [inProject(), { public: true }] }, BY_NAME, page), include: withUsers });
    const { items, nextCursor } = pageResult(rows, BY_NAME, page);
    res.json({ items: await Promise.all(items.map(dto)), nextCursor } satisfies ImageList);
  });

  router.post("/", async (req, res) => {
    const body = validate(ImageCreateRequest, req.body, "image create request");
    const created = await images.create(body, meta(req));
    switch (created.kind) {
      case "deduplicated":
        res.status(200).json({ image: await show(created.image.id), deduplicated: true } satisfies ImageDeduplicated);
        return;
      case "awaiting-upload":
        res.status(201).location(`/v1/images/${created.image.id}`).json(await show(created.image.id));
        return;
      case "job":
        sendAccepted(res, created.submitted, { image: await show(created.submitted.job.imageId ?? "") });
        return;
    }
  });

  router.get("/:ref", async (req, res) => {
    res.json(await show((await findImage(db, req.params.ref)).id));
  });

  router.head("/:ref/file", async (req, res) => {
    const image = await findImage(db, req.params.ref);
    res.setHeader("Upload-Offset", String(await images.uploadOffset(image)));
    if (image.uploadLength !== null) res.setHeader("Upload-Length", String(image.uploadLength));
    res.setHeader("Cache-Control", "no-store");
    res.status(204).end();
  });

  router.put("/:ref/file", async (req: Request<{ ref: string }>, res) => {
    const length = req.header("content-length");
    const range = req.header("content-range") ?? null;
    const outcome = await images.upload(req.params.ref, req, { contentLength: length === undefined ? null : Number(length), contentRange: range }, meta(req, { range, length: length ?? null }));
    if (outcome.kind === "partial") {
      res.setHeader("Upload-Offset", String(outcome.offset));
      res.status(200).json({ image: await show(outcome.image.id), offset: outcome.offset } satisfies ImageUploadPartial);
      return;
    }
    sendAccepted(res, outcome.submitted, { image: await show(outcome.submitted.job.imageId ?? "") });
  });

  router.post("/:ref/export", async (req, res) => {
    const body = validate(ExportRequest, req.body, "export request");
    const submitted = await deps.exports.exportImage(req.params.ref, body, meta(req));
    const created = await db.export.findUniqueOrThrow({ where: { jobId: submitted.job.id } });
    sendAccepted(res, submitted, { export: toExportDto(created) });
  });

  router.post("/:ref/verify", async (req, res) => {
    const submitted = await images.verify(req.params.ref, meta(req, null));
    // A replayed request may name an image deleted since.
    const image = await db.image.findUnique({ where: { id: submitted.job.imageId ?? "" }, include: withUsers });
    sendAccepted(res, submitted, { image: image ? toImageDto(image) : null });
  });

  router.delete("/:ref", async (req, res) => {
    const submitted = await images.remove(req.params.ref, meta(req, null));
    const image = await db.image.findUnique({ where: { id: submitted.job.imageId ?? "" }, include: withUsers });
    sendAccepted(res, submitted, { image: image ? toImageDto(image) : null });
  });

  return router;
}
